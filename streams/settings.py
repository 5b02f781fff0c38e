"""Settings for every streamrec process, read once at the entry point.

Every field can be set from the environment with the ``STREAMREC_`` prefix, e.g.
``STREAMREC_KAFKA_BOOTSTRAP_SERVERS=broker1:9092,broker2:9092``. With neither a Kafka
nor a Redis address set, the CLI starts the embedded broker and Redis.

>>> s = Settings(kafka_bootstrap_servers=None, redis_url=None)
>>> s.embedded
True
>>> s.topic_clicks, s.partitions
('events.clicks', 8)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

#: 1995-01-01T00:00:00Z: events older than this are rejected as absurd by default.
DEFAULT_MIN_EVENT_TS = 788918400.0


class SurfaceSettings(BaseModel):
    """One serving surface: its list length, the candidate sources it draws from, its filter.

    ``filter`` takes the JSON of a request filter (see :mod:`models.filters`), e.g.
    ``{"in_stock": true}``; it applies to the surface's published lists and to every
    ``/v1/rank`` request for the surface.
    """

    model_config = {"extra": "forbid"}

    top_k: int | None = Field(default=None, ge=1, le=200, description="items per list (unset: STREAMREC_TOP_K)")
    sources: list[Literal["search", "covisit", "interest", "trending"]] = Field(
        default=["search", "covisit", "interest", "trending"], min_length=1
    )
    filter: dict[str, object] = Field(default_factory=dict)


def _default_surfaces() -> dict[str, SurfaceSettings]:
    return {
        "home": SurfaceSettings(),
        "search": SurfaceSettings(sources=["search", "covisit", "interest"]),
    }


def _default_model_dir() -> Path:
    return Path.home() / ".cache" / "streamrec" / "models"


class Settings(BaseSettings):
    """All knobs of a streamrec deployment (env prefix ``STREAMREC_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMREC_", extra="forbid")

    # --- Kafka -----------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; unset means the embedded broker"
    )
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_fetch_max_wait_s: float = Field(
        default=0.005, gt=0, description="longest a fetch waits for data (latency vs. idle requests)"
    )
    item_stats_dedup_events: int = Field(
        default=200_000, ge=0,
        description="events whose item-stats increments each reader remembers, so a crashed worker's resent "
        "increments are applied once",
    )
    item_state_fetch_wait_s: float = Field(
        default=0.1, gt=0, description="fetch wait of the item-vector/item-stats follower (freshness vs. polling cost)"
    )
    kafka_session_timeout_s: float = Field(default=10.0, gt=0)
    kafka_rebalance_timeout_s: float = Field(default=5.0, gt=0)
    kafka_heartbeat_interval_s: float = Field(default=1.0, gt=0)

    # --- Redis -----------------------------------------------------------------
    redis_url: SecretStr | None = Field(
        default=None, description="redis://[:password@]host:port/db or rediss://; unset means embedded"
    )
    rec_ttl_s: int = Field(default=7 * 24 * 3600, gt=0, description="TTL of rec:{user_id} keys")
    redis_key_prefix: str = ""

    # --- Topics ----------------------------------------------------------------
    app_id: str = Field(default="streamrec", description="consumer group id and table prefix")
    topic_catalog: str = "catalog.items"
    topic_clicks: str = "events.clicks"
    topic_searches: str = "events.searches"
    topic_impressions: str = "events.impressions"
    topic_recommendations: str = "recommendations"
    #: The other surfaces' lists (key ``{surface}:{user_id}``), so ``redis-rebuild`` restores them too.
    topic_surface_recommendations: str = "recommendations.surfaces"
    topic_dlq: str = "events.dlq"
    topic_item_vectors: str = "streamrec.item-vectors"
    topic_item_stats: str = "streamrec.item-stats"
    partitions: int = Field(default=8, ge=1, description="partitions of every user-keyed topic")
    catalog_partitions: int = Field(default=4, ge=1)
    dlq_partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    item_stats_retention_s: int = Field(default=14 * 24 * 3600, gt=0)
    create_topics_on_start: bool = True

    # --- Recommendation --------------------------------------------------------
    top_k: int = Field(default=10, ge=1, le=200)
    refresh_debounce_s: float = Field(
        default=0.02, ge=0, description="events of one user inside this window give one refresh"
    )
    event_batch_size: int = Field(default=2000, ge=1, description="most events in one micro-batch")
    exclude_recent: int = Field(default=5, ge=0, description="leave out the user's N latest items (bought ones always)")
    history_size: int = Field(
        default=20, ge=1, le=10_000, description="latest items remembered per user (co-visitation, exclusion)"
    )
    long_half_life_s: float = Field(default=30 * 24 * 3600, gt=0)
    short_half_life_s: float = Field(default=30 * 60, gt=0)
    query_half_life_s: float = Field(default=15 * 60, gt=0)
    trending_half_life_s: float = Field(default=3600, gt=0)
    candidates_per_source: int = Field(default=100, ge=1)
    surfaces: dict[str, SurfaceSettings] = Field(
        default_factory=_default_surfaces,
        description='serving surfaces by name, JSON, e.g. {"home": {}, "search": {"top_k": 20, '
        '"sources": ["search", "interest"], "filter": {"in_stock": true}}}; "home" is always published',
    )
    similar_k: int = Field(
        default=20, ge=0, le=500, description="nearest items kept per item at similar:{item_id} (0: none)"
    )
    rank_max_items: int = Field(default=1000, ge=1, le=100_000, description="most items in one /v1/rank request")
    rank_max_batch: int = Field(default=100, ge=1, description="most requests in one /v1/rank/batch call")
    web_token: SecretStr | None = Field(
        default=None,
        description="bearer token that web requests changing state must carry (/v1/rank with shown: true, which "
        "logs an impression); unset: such requests are refused",
    )
    redis_cluster: bool = Field(
        default=False, description="the Redis URL is a Redis Cluster node; keys take the user id as hash tag"
    )

    # --- Models ----------------------------------------------------------------
    model_dir: Path = Field(default_factory=_default_model_dir, description="ONNX exports are cached here")
    text_model_path: Path | None = Field(default=None, description="unset: the packaged MiniLM")
    image_weights_path: Path | None = Field(default=None, description="unset: the packaged EfficientNet-Lite0")
    image_embedding_dim: int = Field(default=128, ge=8, description="image features are projected to this")
    image_weight: float = Field(default=0.5, ge=0, le=1, description="share of the image in the fused vector")
    providers: list[str] = Field(default=["CUDAExecutionProvider", "CPUExecutionProvider"])
    ranker_dir: Path | None = Field(
        default=None,
        description="folder of learned-ranker bundles; the newest is served (unset: <model_dir>/rankers). "
        "With no bundle the transparent blend ranks",
    )
    ranker_poll_s: float = Field(
        default=10.0, ge=0, description="how often a worker looks for a newer ranker bundle (0: only at start)"
    )
    ranker_threads: int = Field(default=1, ge=0, description="onnxruntime CPU threads of the ranker (0: all cores)")
    retrieval: Literal["auto", "numpy", "onnx"] = Field(
        default="auto",
        description="nearest-item search of candidate generation: onnx runs it in onnxruntime with the item "
        "matrix resident on the device; auto does that when a GPU provider is in use, and on the CPU for "
        "catalogs of at least retrieval_min_items items, else numpy",
    )
    retrieval_min_items: int = Field(
        default=10_000, ge=0,
        description="with retrieval=auto on the CPU, the catalog size (item rows) from which onnxruntime runs the "
        "nearest-item search instead of numpy (0: numpy at every size)",
    )
    fetch_image_urls: bool = Field(default=True, description="download http(s) item images")
    image_fetch_timeout_s: float = 3.0
    image_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    image_root: Path | None = Field(
        default=None, description="item images given as file paths must lie under this folder"
    )

    # --- Validation ------------------------------------------------------------
    max_event_bytes: int = Field(default=64 * 1024, gt=0)
    max_catalog_event_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    min_event_ts: float = DEFAULT_MIN_EVENT_TS
    max_clock_skew_s: float = Field(default=3600.0, ge=0)

    # --- Abuse, duplicates and retention (per user, kept in the user's state) ---
    dedup_window: int = Field(
        default=128, ge=0, le=10_000, description="latest event ids per user whose redelivery is ignored (0: off)"
    )
    user_rate_limit_per_s: float = Field(
        default=5.0, ge=0, description="sustained events/s one user's state takes, by event time (0: no limit)"
    )
    user_rate_burst: int = Field(default=100, ge=1, description="events one user may send at once before the limit")
    user_state_ttl_s: float = Field(
        default=180 * 24 * 3600.0, ge=0, description="a user's state is erased this long after their last event (0: kept)"
    )
    state_sweep_interval_s: float = Field(
        default=3600.0, gt=0, description="how often a worker erases expired user states from its partitions"
    )

    # --- Exploration, slates and feedback (see models/slate.py, models/user_bandit.py) ---
    bandit_policy: Literal["thompson", "ucb", "linucb", "epsilon_greedy", "random"] = Field(
        default="thompson", description="each user's policy over candidate sources for the exploration slots"
    )
    explore_slots: int = Field(default=1, ge=0, description="items per list whose source the bandit picks (0: greedy)")
    fresh_slots: int = Field(default=1, ge=0, description="items per list for new catalog items not yet informed")
    mmr_lambda: float = Field(default=0.9, ge=0, le=1, description="MMR: relevance weight against similarity (1: off)")
    category_cap: int = Field(default=0, ge=0, description="most items of one category per list (0: no cap)")
    slate_pool: int = Field(default=50, ge=1, description="most relevant candidates per user the slate is built from")
    freq_free: int = Field(default=2, ge=0, description="impressions without a click before an item is down-weighted")
    freq_decay: float = Field(
        default=1.0, gt=0, le=1,
        description="relevance factor per further unclicked impression (1: no frequency capping, the default)",
    )
    feedback_window_s: float = Field(default=1800.0, gt=0, description="a click within this long after its impression is a reward of 1")
    fresh_informed_after: int = Field(default=20, ge=1, description="impressions after which a new item is no longer fresh")
    fresh_max_age_s: float = Field(default=7 * 24 * 3600.0, gt=0, description="a new item stops being fresh this long after it arrived")
    bundle_size: int = Field(default=3, ge=0, description='"frequently bought together" items per item (0: none)')

    # --- Worker ----------------------------------------------------------------
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    data_dir: Path = Field(default=Path(".streamrec"), description="worker scratch space")
    log_level: str = "info"
    lag_interval_s: float = Field(
        default=5.0, gt=0, description="how often the worker reads its consumer group's lag for /metrics"
    )

    skipped_input_timeout_s: float = Field(
        default=10.0, gt=0,
        description="an input partition whose message at the committed offset was skipped by the consumer "
        "(neither processed nor held, or held while later ones were processed) for this long is read again "
        "from that offset; one merely held by a stream, for three times this long",
    )
    skipped_input_check_s: float = Field(default=1.0, gt=0, description="how often that check runs")

    @field_validator("kafka_bootstrap_servers", mode="before")
    @classmethod
    def _blank_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("redis_url", mode="before")
    @classmethod
    def _blank_url_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _check_sasl(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "kafka_security_protocol SASL_* needs STREAMREC_KAFKA_SASL_MECHANISM, "
                "STREAMREC_KAFKA_SASL_USERNAME and STREAMREC_KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _check_history(self) -> Settings:
        if self.exclude_recent > self.history_size:
            raise ValueError(
                f"exclude_recent ({self.exclude_recent}) cannot exceed history_size ({self.history_size}): "
                "a user's state only remembers history_size items; raise STREAMREC_HISTORY_SIZE"
            )
        return self

    @model_validator(mode="after")
    def _check_surfaces(self) -> Settings:
        # models.filters is pure numpy; imported here so that reading settings imports no models
        from models.filters import FilterError, ItemFilter

        if "home" not in self.surfaces:
            raise ValueError('STREAMREC_SURFACES must include "home" (the list at rec:{user_id})')
        home = self.surfaces["home"]
        if home.filter or home.sources != SurfaceSettings().sources or home.top_k not in (None, self.top_k):
            raise ValueError('surface "home" is the refresh\'s main list: leave its sources, filter and top_k unset '
                             "(its length is STREAMREC_TOP_K); configure another surface for a different mix")
        for name, surface in self.surfaces.items():
            if not name or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"surface name {name!r} must be letters, digits, - or _")
            try:
                ItemFilter.from_json(surface.filter)
            except FilterError as exc:
                raise ValueError(f"surface {name!r}: {exc}") from exc
        return self

    @property
    def embedded(self) -> bool:
        """True when neither Kafka nor Redis is configured: run the embedded servers."""
        return self.kafka_bootstrap_servers is None and self.redis_url is None

    @property
    def bootstrap_list(self) -> list[str]:
        """The bootstrap servers as a list (raises if none is configured)."""
        if not self.kafka_bootstrap_servers:
            raise RuntimeError("no Kafka address configured; set STREAMREC_KAFKA_BOOTSTRAP_SERVERS")
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    def max_event_ts(self) -> float:
        """Latest acceptable event timestamp right now (clock skew allowed)."""
        return time.time() + self.max_clock_skew_s

    def to_env(self) -> dict[str, str]:
        """These settings as ``STREAMREC_*`` variables (secrets revealed: for child processes only)."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, (list, dict)):
                value = json.dumps(self.model_dump(mode="json", include={name})[name])
            env[f"STREAMREC_{name.upper()}"] = str(value)
        return env

    @property
    def resolved_ranker_dir(self) -> Path:
        """Where ranker bundles are looked for."""
        return self.ranker_dir if self.ranker_dir is not None else self.model_dir / "rankers"

    def rec_key(self, user_id: str, surface: str = "home") -> str:
        """Redis key of a user's latest recommendation for a surface.

        On a Redis Cluster the user id is the key's hash tag, so all of a user's keys
        share one slot.

        >>> Settings().rec_key("u1", "search"), Settings(redis_cluster=True).rec_key("u1")
        ('rec:search:u1', 'rec:{u1}')
        """
        user = f"{{{user_id}}}" if self.redis_cluster else user_id
        if surface == "home":
            return f"{self.redis_key_prefix}rec:{user}"
        return f"{self.redis_key_prefix}rec:{surface}:{user}"

    def similar_key(self, item_id: str) -> str:
        """Redis key of an item's nearest items (``similar:{item_id}``)."""
        item = f"{{{item_id}}}" if self.redis_cluster else item_id
        return f"{self.redis_key_prefix}similar:{item}"

    def isolated(self, tag: str) -> Settings:
        """A copy whose topics, consumer group and Redis keys carry ``tag``, so a run
        (a benchmark, an evaluation) shares a broker and Redis with nothing else.

        >>> s = Settings().isolated("run1")
        >>> s.topic_clicks, s.app_id, s.redis_key_prefix
        ('events.clicks.run1', 'streamrec-run1', 'run1:')
        """
        topics = {name: f"{getattr(self, name)}.{tag}" for name in type(self).model_fields if name.startswith("topic_")}
        return self.model_copy(update={**topics, "app_id": f"{self.app_id}-{tag}", "redis_key_prefix": f"{tag}:"})

    def bundle_key(self, item_id: str) -> str:
        """Redis key of an item's "frequently bought together" items.

        >>> Settings().bundle_key("i1")
        'bundle:i1'
        """
        return f"{self.redis_key_prefix}bundle:{item_id}"
