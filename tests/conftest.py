"""Shared pytest fixtures: the ONE place that starts a broker and Redis for the tests.

* ``embedded`` (session): one :class:`~streams.runtime.EmbeddedRuntime` (Tansu + Valkey on
  loopback) for the whole run, stopped at the end.
* ``settings`` (function): a :class:`~streams.settings.Settings` pointing at it, with a
  unique ``app_id`` and unique topic names per test (so tests never see each other's
  messages, consumer groups or tables), 4 partitions, a free web port, no image downloads,
  and ``model_dir`` in a session-wide ``models`` directory (ONNX exports are made once).
* ``redis_client`` (function): a redis-py client (``decode_responses=True``) to the
  embedded Valkey, flushed before and after the test.
* ``model_dir`` (session): that shared models directory.

Any test that uses ``embedded`` (directly or through ``settings``/``redis_client``) is marked
``integration`` automatically, so ``pytest -m "not integration"`` runs the unit tests alone.
Marking explicitly works too::

    pytestmark = pytest.mark.integration          # a whole module

    @pytest.mark.integration
    def test_recommendation_lands_in_redis(settings, redis_client):
        ...
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402

from streams.runtime import EmbeddedRuntime  # noqa: E402
from streams.settings import Settings  # noqa: E402

#: Settings fields holding topic names; the ``settings`` fixture suffixes each per test.
TOPIC_FIELDS = tuple(
    name for name, info in Settings.model_fields.items() if name.startswith("topic_") and isinstance(info.default, str)
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "embedded" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def embedded() -> Iterator[EmbeddedRuntime]:
    """Tansu + Valkey on loopback, started once per test run."""
    with EmbeddedRuntime(startup_timeout=30) as runtime:
        yield runtime


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models directory for the whole run (exported ONNX files are reused across tests).

    ``<session basetemp>/models``: fixed, so other session fixtures can find it too.
    """
    path = tmp_path_factory.getbasetemp() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unique_id() -> str:
    """A short random id for names that must not collide between tests."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def settings(
    embedded: EmbeddedRuntime,
    model_dir: Path,
    tmp_path: Path,
    unique_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """Settings for one test against the embedded servers, isolated by a unique id."""
    # Hermetic: STREAMREC_* variables of the caller's shell must not leak into tests.
    for key in list(os.environ):
        if key.startswith("STREAMREC_"):
            monkeypatch.delenv(key)
    topics = {field: f"{Settings.model_fields[field].default}.{unique_id}" for field in TOPIC_FIELDS}
    return Settings(
        kafka_bootstrap_servers=embedded.bootstrap,
        redis_url=embedded.url,
        app_id=f"streamrec-test-{unique_id}",
        partitions=4,
        catalog_partitions=2,
        dlq_partitions=2,
        web_host="127.0.0.1",
        web_port=_free_port(),
        model_dir=model_dir,
        data_dir=tmp_path / "data",
        fetch_image_urls=False,
        **topics,
    )


@pytest.fixture
def redis_client(embedded: EmbeddedRuntime) -> Iterator[object]:
    """redis-py client (str responses) to the embedded Valkey; the db is flushed around the test."""
    import redis

    client = redis.Redis.from_url(embedded.url, decode_responses=True, socket_timeout=10)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()
