"""Every Kafka client of streamrec over TLS, against a real broker that only TLS reaches.

The embedded broker cannot serve TLS itself (Tansu 0.6 answered aiokafka's handshake
with "early eof"), so a TLS terminator (:mod:`tests.streams.tls_proxy`) stands in front
of a dedicated one, as a TLS-terminating load balancer would, and the broker advertises
the terminator's port: every connection, bootstrap and per-broker alike, must speak TLS
and trust the terminator's certificate. The topic set-up and producer (kafka-python)
and a worker process (Faust and aiokafka) take their TLS settings from
``STREAMREC_KAFKA_SECURITY_PROTOCOL=SSL`` and ``STREAMREC_KAFKA_SSL_CAFILE`` alone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from agents.refresh import recommendation_from_json
from streams.demo.catalog import demo_catalog, items_by_category
from streams.kafka_config import kafka_python_kwargs
from streams.producer import create_producer
from streams.runtime import EmbeddedBroker
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess
from tests.conftest import self_signed_certificate
from tests.streams.tls_proxy import TlsTerminator

pytestmark = pytest.mark.integration


def test_the_worker_and_the_tools_reach_a_tls_only_broker(settings: Settings, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with TlsTerminator(None, cert, key) as tls, EmbeddedBroker(advertised_port=tls.port, startup_timeout=30) as broker:
        tls.target_port = broker.port
        s = settings.model_copy(update={"kafka_bootstrap_servers": tls.address, "kafka_security_protocol": "SSL",
                                        "kafka_ssl_cafile": cert})

        # Without TLS, or without trusting the certificate, nothing gets through.
        for kwargs in ({**kafka_python_kwargs(s), "security_protocol": "PLAINTEXT"},
                       {k: v for k, v in kafka_python_kwargs(s).items() if k != "ssl_cafile"}):
            with pytest.raises(KafkaError, match="bootstrap"):
                KafkaAdminClient(**kwargs, request_timeout_ms=3000, bootstrap_timeout_ms=5000).close()
        assert tls.forwarded == 0

        ensure_topics(s)
        catalog = demo_catalog(seed=7, images=False)
        producer = create_producer(s)
        client = redis.Redis.from_url(s.redis_url.get_secret_value(), decode_responses=True)  # type: ignore[union-attr]
        try:
            with WorkerProcess(s, tmp_path / "worker.log") as worker:
                worker.wait_ready(timeout=300)
                for it in catalog:
                    producer.send(s.topic_catalog, key=it["item_id"].encode(), value=json.dumps(it).encode())
                producer.flush()
                worker.wait_ready(min_items=len(catalog), timeout=300)
                kitchen = items_by_category(catalog)["kitchen"]
                for n, item in enumerate(kitchen[:3]):
                    event = {"event_id": f"tls-{n}", "user_id": "over-tls", "item_id": item, "kind": "view",
                             "ts": time.time()}
                    producer.send(s.topic_clicks, key=b"over-tls", value=json.dumps(event).encode())
                producer.flush()
                deadline = time.monotonic() + 120
                while True:
                    raw = client.get(s.rec_key("over-tls"))
                    if raw and recommendation_from_json(raw)["trigger_event_id"] == "tls-2":
                        break
                    worker.check_alive()
                    assert time.monotonic() < deadline, worker.log_tail(40)
                    time.sleep(0.3)
                assert recommendation_from_json(raw)["items"]
        finally:
            producer.close(timeout=10)
            client.close()
        assert tls.forwarded > 0 and s.kafka_security_protocol == "SSL"
