"""Event schemas for every topic (Faust Records, JSON, namespaced).

Field sizes are declared with Faust field descriptors and enforced by
:func:`streams.validation.decode_event`; the extra rules that span fields live in
each record's :meth:`problems`. Records never use pickle.

>>> ClickEvent(event_id="e1", user_id="u1", item_id="i1", kind="click", ts=1.7e9).problems()
[]
>>> ClickEvent(event_id="e1", user_id="u1", item_id="i1", kind="like", ts=1.7e9).problems()
["kind must be one of view, click, add_to_cart, purchase (got 'like')"]
"""

from __future__ import annotations

from typing import ClassVar, Optional

import faust
from faust.models.fields import FloatField, IntegerField, StringField

MAX_ID = 128
MAX_QUERY = 512
MAX_TITLE = 512
MAX_DESCRIPTION = 4096
MAX_TAGS = 32
MAX_TAG = 64
MAX_IMPRESSION_ITEMS = 200

#: Interaction kinds, weakest first.
CLICK_KINDS: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase")


def _id(required: bool = True) -> StringField:
    return StringField(min_length=1, max_length=MAX_ID, required=required)


class Event(faust.Record, abstract=True, serializer="json"):
    """Base of every input record."""

    #: Maximum length of list fields, by field name (checked by the decoder).
    list_limits: ClassVar[dict[str, tuple[int, int]]] = {}

    def problems(self) -> list[str]:
        """Rules that span fields; an empty list means valid."""
        return []


class ItemEvent(Event, namespace="streamrec.ItemEvent"):
    """A catalog upsert (or delete) on ``catalog.items``, keyed by item_id.

    Every content field is optional: an item with no text and no image is a
    behaviour-only item (zero content vector), found through co-visitation and
    trending but never by similarity.
    """

    item_id: str = _id()
    title: str = StringField(min_length=0, max_length=MAX_TITLE, required=False, default="")
    description: str = StringField(min_length=0, max_length=MAX_DESCRIPTION, required=False, default="")
    category: str = StringField(min_length=0, max_length=MAX_ID, required=False, default="")
    price: Optional[float] = FloatField(min_value=0, required=False, default=None)
    image: Optional[str] = None  # http(s) URL, file path, data: URI or bare base64
    tags: list[str] = []
    deleted: bool = False
    ts: Optional[float] = None
    in_stock: bool = True  # optional; an item sent without it is in stock

    list_limits: ClassVar[dict[str, tuple[int, int]]] = {"tags": (MAX_TAGS, MAX_TAG)}


class ClickEvent(Event, namespace="streamrec.ClickEvent"):
    """An interaction with an item on ``events.clicks``, keyed by user_id."""

    event_id: str = _id()
    user_id: str = _id()
    item_id: str = _id()
    kind: str = StringField(min_length=1, max_length=32)
    ts: float = FloatField()
    session_id: Optional[str] = _id(required=False)
    request_id: Optional[str] = _id(required=False)
    position: Optional[int] = IntegerField(min_value=0, max_value=10_000, required=False, default=None)

    def problems(self) -> list[str]:
        if self.kind not in CLICK_KINDS:
            return [f"kind must be one of {', '.join(CLICK_KINDS)} (got {self.kind!r})"]
        return []


class SearchEvent(Event, namespace="streamrec.SearchEvent"):
    """A search query on ``events.searches``, keyed by user_id."""

    event_id: str = _id()
    user_id: str = _id()
    query: str = StringField(min_length=1, max_length=MAX_QUERY)
    ts: float = FloatField()
    session_id: Optional[str] = _id(required=False)

    def problems(self) -> list[str]:
        if not self.query.strip():
            return ["query is blank"]
        return []


class ImpressionEvent(Event, namespace="streamrec.ImpressionEvent"):
    """What the site showed a user, on ``events.impressions``, keyed by user_id."""

    request_id: str = _id()
    user_id: str = _id()
    item_ids: list[str] = []
    ts: float = FloatField()
    surface: str = StringField(min_length=1, max_length=64, required=False, default="home")

    list_limits: ClassVar[dict[str, tuple[int, int]]] = {"item_ids": (MAX_IMPRESSION_ITEMS, MAX_ID)}

    def problems(self) -> list[str]:
        if not self.item_ids:
            return ["item_ids is empty"]
        return []


class RecItem(faust.Record, serializer="json", namespace="streamrec.RecItem"):
    """One recommended item with its score, the candidate source it came from and the probability
    it was chosen with; an exploration slot's item also names the sources (``arms``) chosen among."""

    item_id: str
    score: float
    source: str
    propensity: float = 1.0
    arms: list[str] = []


class Recommendation(faust.Record, serializer="json", namespace="streamrec.Recommendation"):
    """One refresh of a user's list, on ``recommendations`` and in Redis ``rec:{user_id}``."""

    user_id: str
    request_id: str
    items: list[RecItem]
    model_version: str
    policy: str
    generated_at: float
    trigger_ts: float
    surface: str = "home"
    trigger_event_id: Optional[str] = None
    bundles: dict[str, list[str]] = {}


#: The record decoded from each input topic kind.
INPUT_RECORDS: dict[str, type[Event]] = {
    "catalog": ItemEvent,
    "clicks": ClickEvent,
    "searches": SearchEvent,
    "impressions": ImpressionEvent,
}
