"""Which input a user's state record reflects, so an older record never replaces a newer one.

A worker cut off from the broker may still hold user-state records in its producer's
buffer; when the link returns they reach the ``users`` changelog *after* the records the
partition's new owner wrote meanwhile. Kafka would fence such a writer with transactions,
which the embedded broker lacks; a reader recovering the partition would otherwise end
with the stale state (its events after the cut lost).

Every state record therefore carries, in the Kafka header :data:`HEADER`, the highest
offset of each input topic (clicks, searches, impressions: the user's partition of each)
whose events the state reflects. A record reflecting less input than the one a reader
holds for the user (:func:`outdated`) is not applied: not by a worker recovering or
standing by for the table (:class:`~streams.user_table.VersionedTable`), nor by a serving
replica. A tombstone always applies. The tombstone of a forget request carries the
request's version (its clicks offset, with the input of the state it erased), and
readers keep it as the erased user's version: a record that does not reflect the
request (:func:`outdated` against an ``erased`` version), such as a cut-off worker's
late record of the state before it, cannot bring the user back. Records written before
the header existed apply as they did (last one wins).

>>> v = Version((10, -1, 3))
>>> Version.decode(v.encode()) == v, outdated(Version((9, -1, 3)), v), outdated(Version((11, -1, 0)), v), outdated(v, v)
(True, True, False, False)
>>> forgotten = Version((12, -1, 3), erased=True)
>>> outdated(Version((11, -1, 5)), forgotten), outdated(Version((13, -1, 3)), forgotten)
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple

from models.types import UserId

#: The record header carrying a state's :class:`Version`.
HEADER = "streamrec-input-offsets"


class Version(NamedTuple):
    """Per input topic (clicks, searches, impressions), the highest offset reflected (-1: none).

    ``erased``: the version of a forget request's tombstone, held for the forgotten user
    (not part of the header: a tombstone's version is always one).
    """

    offsets: tuple[int, ...]
    erased: bool = False

    def encode(self) -> bytes:
        return ",".join(str(o) for o in self.offsets).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> Version | None:
        """The version in a header value (None for a missing or unreadable one)."""
        if not raw:
            return None
        try:
            return cls(tuple(int(x) for x in raw.decode("ascii").split(",")))
        except (UnicodeDecodeError, ValueError):
            return None

    def merged(self, other: Version | None) -> Version:
        """The input of both (per topic, the higher offset); a state's version, never ``erased``."""
        if other is None or len(other.offsets) != len(self.offsets):
            return self._replace(erased=False)
        return Version(tuple(max(a, b) for a, b in zip(self.offsets, other.offsets, strict=True)))


def outdated(new: Version | None, held: Version | None) -> bool:
    """Whether a record of version ``new`` must not replace what ``held`` stands for.

    Against a state's version: ``new`` reflects less input (none beyond it, and less of
    some topic); equal versions reflect the same events, and the later record applies.
    Against an ``erased`` version (a forgotten user): ``new`` does not reflect all of its
    input, the forget request included. Unversioned records are never outdated, nor do
    they outdate anything."""
    if new is None or held is None or len(new.offsets) != len(held.offsets):
        return False
    if held.erased:
        return not all(n >= h for n, h in zip(new.offsets, held.offsets, strict=True)) or new.offsets == held.offsets
    if new == held:
        return False
    return all(n <= h for n, h in zip(new.offsets, held.offsets, strict=True))


def header_version(headers: Any) -> Version | None:
    """The :class:`Version` in a record's headers (a list of pairs or a mapping), if any."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name == HEADER:
            return Version.decode(value)
    return None


def batch_versions(
    messages: Iterable[tuple[str, str, int]], topics: Sequence[str], held: Mapping[UserId, Version]
) -> dict[UserId, Version]:
    """Each user's version after a batch: ``messages`` are (user, topic, offset) of the batch's
    input messages, ``topics`` the input topics in version order, ``held`` the users' versions
    before the batch."""
    at = {t: i for i, t in enumerate(topics)}
    highest: dict[UserId, list[int]] = {}
    for user, topic, offset in messages:
        slot = at.get(topic)
        if slot is None:
            continue
        offsets = highest.setdefault(user, [-1] * len(topics))
        offsets[slot] = max(offsets[slot], offset)
    return {u: Version(tuple(o)).merged(held.get(u)) for u, o in highest.items()}


def keep_newer(versions: MutableMapping[Any, Version], key: Any, value: bytes | None, version: Version | None) -> bool:
    """Whether a changelog record for ``key`` should be applied, given the ``versions`` held;
    updates ``versions`` when it is. A tombstone always applies; one with a version (a
    forget request's) leaves it behind as the key's ``erased`` version."""
    if value is None:
        if version is None:
            versions.pop(key, None)
        else:
            versions[key] = version._replace(erased=True)
        return True
    if outdated(version, versions.get(key)):
        return False
    if version is None:
        versions.pop(key, None)
    else:
        versions[key] = version
    return True
