"""Kafka client keyword arguments built from :class:`~streams.settings.Settings`.

One mapping for kafka-python (admin, lag, topic tools), one for aiokafka, and the broker
URL and credentials for Faust, so every client in streamrec connects the same way.

The SASL password travels as :class:`RedactedStr`: a ``str`` that behaves as the real
password everywhere a client uses it, but whose ``repr`` is a mask, so printing or logging
the kwargs (kafka-python logs its whole config at DEBUG) never shows it.

>>> from pydantic import SecretStr
>>> from streams.settings import Settings
>>> s = Settings(kafka_bootstrap_servers="b1:9092, b2:9092", kafka_security_protocol="SASL_PLAINTEXT",
...              kafka_sasl_mechanism="PLAIN", kafka_sasl_username="svc", kafka_sasl_password=SecretStr("hunter2"))
>>> kw = kafka_python_kwargs(s)
>>> kw["bootstrap_servers"], kw["sasl_plain_username"], kw["sasl_plain_password"] == "hunter2"
(['b1:9092', 'b2:9092'], 'svc', True)
>>> "hunter2" in repr(kw) or "hunter2" in str(kw)
False
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = [
    "RedactedStr",
    "aiokafka_kwargs",
    "faust_broker_credentials",
    "faust_broker_url",
    "kafka_python_kwargs",
    "ssl_context",
    "uses_sasl",
    "uses_ssl",
]

_MASK = "**********"


class RedactedStr(str):
    """A secret string: equal to and usable as the real value, masked in ``repr``.

    ``str(x)``, ``x.encode()`` and string operations give the real value (clients need it);
    ``repr(x)``, and so the repr of any dict or list holding it, gives a mask.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"'{_MASK}'"


def uses_ssl(settings: Settings) -> bool:
    """True for the SSL and SASL_SSL security protocols."""
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(settings: Settings) -> bool:
    """True for the SASL_PLAINTEXT and SASL_SSL security protocols."""
    return settings.kafka_security_protocol.startswith("SASL")


def _password(settings: Settings) -> RedactedStr | None:
    secret = settings.kafka_sasl_password
    return None if secret is None else RedactedStr(secret.get_secret_value())


def _sasl_kwargs(settings: Settings) -> dict[str, Any]:
    if not uses_sasl(settings):
        return {}
    return {
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": _password(settings),
    }


def kafka_python_kwargs(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Connection kwargs for kafka-python's KafkaAdminClient/KafkaConsumer/KafkaProducer.

    Only connection settings (valid for every kafka-python client); ``overrides`` are
    merged last (e.g. ``client_id=...``). SSL file paths are passed only when the protocol
    uses SSL.
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_list,
        "security_protocol": settings.kafka_security_protocol,
    }
    kwargs.update(_sasl_kwargs(settings))
    if uses_ssl(settings):
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(settings, f"kafka_{key}")
            if value is not None:
                kwargs[key] = str(value)
    kwargs.update(overrides)
    return kwargs


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """An SSL context for aiokafka/Faust (None unless the protocol uses SSL).

    Without a CA file the system trust store is used; hostnames are always checked.
    """
    if not uses_ssl(settings):
        return None
    from aiokafka.helpers import create_ssl_context

    def path(value: object) -> str | None:
        return None if value is None else str(value)

    return create_ssl_context(
        cafile=path(settings.kafka_ssl_cafile),
        certfile=path(settings.kafka_ssl_certfile),
        keyfile=path(settings.kafka_ssl_keyfile),
    )


def aiokafka_kwargs(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Connection kwargs for aiokafka's AIOKafkaConsumer/AIOKafkaProducer/AIOKafkaAdminClient."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_list,
        "security_protocol": settings.kafka_security_protocol,
    }
    kwargs.update(_sasl_kwargs(settings))
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    kwargs.update(overrides)
    return kwargs


def faust_broker_url(settings: Settings) -> str:
    """The ``broker`` value for ``faust.App``: ``"kafka://h1:p1;h2:p2"``.

    >>> from streams.settings import Settings
    >>> faust_broker_url(Settings(kafka_bootstrap_servers="a:1,b:2"))
    'kafka://a:1;b:2'
    """
    return "kafka://" + ";".join(settings.bootstrap_list)


def faust_broker_credentials(settings: Settings) -> Any:
    """The ``broker_credentials`` value for ``faust.App`` (None for PLAINTEXT).

    SASL gives ``faust.SASLCredentials`` (with the SSL context for SASL_SSL), SSL alone
    gives the ``ssl.SSLContext``.
    """
    if uses_sasl(settings):
        import faust
        from faust.types.auth import SASLMechanism

        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=_password(settings),
            mechanism=SASLMechanism(settings.kafka_sasl_mechanism),
            ssl_context=ssl_context(settings),
        )
    return ssl_context(settings)
