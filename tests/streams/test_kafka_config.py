"""Settings -> Kafka client kwargs: SASL/SSL mapping, and secrets never shown."""

from __future__ import annotations

import logging
import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.kafka_config import (
    RedactedStr,
    aiokafka_kwargs,
    faust_broker_credentials,
    faust_broker_url,
    kafka_python_kwargs,
    ssl_context,
)
from streams.settings import Settings

PASSWORD = "s3cr3t-Pa55w0rd"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA-style cert and its key, made with the openssl CLI (part of every Debian base)."""
    d = tmp_path_factory.mktemp("certs")
    cert, key = d / "client.pem", d / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return {"cafile": cert, "certfile": cert, "keyfile": key}


def sasl_settings(protocol: str = "SASL_PLAINTEXT", **extra: object) -> Settings:
    return Settings(
        kafka_bootstrap_servers="b1:9092, b2:9093",
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc-streamrec",
        kafka_sasl_password=SecretStr(PASSWORD),
        **extra,
    )


def test_plaintext_has_only_the_address() -> None:
    s = Settings(kafka_bootstrap_servers="127.0.0.1:9092")
    assert kafka_python_kwargs(s) == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT"}
    assert aiokafka_kwargs(s) == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT"}
    assert faust_broker_url(s) == "kafka://127.0.0.1:9092"
    assert faust_broker_credentials(s) is None


def test_overrides_win() -> None:
    s = Settings(kafka_bootstrap_servers="127.0.0.1:9092")
    assert kafka_python_kwargs(s, client_id="x")["client_id"] == "x"
    assert aiokafka_kwargs(s, security_protocol="SSL")["security_protocol"] == "SSL"


def test_no_address_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="STREAMREC_KAFKA_BOOTSTRAP_SERVERS"):
        kafka_python_kwargs(Settings())


def test_sasl_plaintext_mapping() -> None:
    kw = kafka_python_kwargs(sasl_settings())
    assert kw["bootstrap_servers"] == ["b1:9092", "b2:9093"]
    assert kw["security_protocol"] == "SASL_PLAINTEXT"
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_username"] == "svc-streamrec"
    assert kw["sasl_plain_password"] == PASSWORD
    assert not any(k.startswith("ssl") for k in kw)
    akw = aiokafka_kwargs(sasl_settings())
    assert akw["sasl_plain_password"] == PASSWORD and "ssl_context" not in akw


def test_ssl_files_only_with_ssl(certs: dict[str, Path]) -> None:
    files = {f"kafka_ssl_{k}": v for k, v in certs.items()}
    plain = kafka_python_kwargs(Settings(kafka_bootstrap_servers="b:9093", **files))
    assert not any(k.startswith("ssl") for k in plain)

    kw = kafka_python_kwargs(Settings(kafka_bootstrap_servers="b:9093", kafka_security_protocol="SSL", **files))
    assert kw["security_protocol"] == "SSL"
    assert kw["ssl_cafile"] == str(certs["cafile"])
    assert kw["ssl_certfile"] == str(certs["certfile"])
    assert kw["ssl_keyfile"] == str(certs["keyfile"])
    assert "sasl_mechanism" not in kw


def test_sasl_ssl_aiokafka_context(certs: dict[str, Path]) -> None:
    files = {f"kafka_ssl_{k}": v for k, v in certs.items()}
    s = sasl_settings("SASL_SSL", **files)
    kw = aiokafka_kwargs(s)
    assert kw["security_protocol"] == "SASL_SSL"
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["sasl_plain_password"] == PASSWORD
    ctx = kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1  # our cafile, not the system store
    assert not any(k in kw for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"))

    creds = faust_broker_credentials(s)
    assert creds.username == "svc-streamrec" and creds.password == PASSWORD
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.protocol.value == "SASL_SSL" and isinstance(creds.ssl_context, ssl.SSLContext)
    assert PASSWORD not in repr(creds)


def test_ssl_without_cafile_uses_system_store() -> None:
    ctx = ssl_context(Settings(kafka_bootstrap_servers="b:9093", kafka_security_protocol="SSL"))
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    assert ssl_context(Settings(kafka_bootstrap_servers="b:9093")) is None


def test_bad_cafile_fails_loudly(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    s = Settings(kafka_bootstrap_servers="b:9093", kafka_security_protocol="SSL", kafka_ssl_cafile=bogus)
    with pytest.raises(ssl.SSLError):
        aiokafka_kwargs(s)


def test_password_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    s = sasl_settings()
    assert PASSWORD not in repr(s) and PASSWORD not in str(s)
    assert PASSWORD not in repr(s.model_dump())
    for kw in (kafka_python_kwargs(s), aiokafka_kwargs(s)):
        assert PASSWORD not in repr(kw) and PASSWORD not in str(kw)
        assert PASSWORD not in "%s %r" % (kw, kw)  # noqa: UP031 - what logging does
        with caplog.at_level(logging.DEBUG):
            logging.getLogger("kafka.admin.client").debug("Starting with configuration: %s", kw)
        assert PASSWORD not in caplog.text
    # ...while clients still get the real value
    secret = kafka_python_kwargs(s)["sasl_plain_password"]
    assert isinstance(secret, RedactedStr)
    assert secret == PASSWORD and str(secret) == PASSWORD
    assert secret.encode() == PASSWORD.encode()
    assert "\0".join(["u", secret]).encode() == b"u\0" + PASSWORD.encode()


def test_sasl_needs_all_three_fields() -> None:
    with pytest.raises(ValueError, match="STREAMREC_KAFKA_SASL_PASSWORD"):
        Settings(kafka_bootstrap_servers="b:9092", kafka_security_protocol="SASL_SSL",
                 kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u")
