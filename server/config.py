"""Settings: every environment variable Hubbub reads, parsed into one validated Struct.

The README's configuration table mirrors this file; keep them in step.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Network
    host: str = "127.0.0.1"
    port: Port = 8080
    trust_proxy_headers: bool = False  # take the client IP from X-Forwarded-For
    shutdown_timeout: PositiveFloat = 30.0  # seconds to finish in-flight requests on SIGTERM
    # Seconds between SIGTERM and closing the listener, while /ready answers 503, so load
    # balancers stop routing here before connections are refused. 0 in development.
    drain_seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    node_id: str = ""  # empty: hostname plus pid
    # Origins whose pages may call the API and open sockets (server/http/cors.py):
    # comma-separated exact origins, or "*"; empty: the server's own origin only.
    cors_allowed_origins: str = ""
    log_level: LogLevel = "INFO"

    # Storage; an unset URL selects the embedded default
    data_dir: str = "./var"
    database_url: str | None = None
    db_pool_min: PositiveInt = 2
    db_pool_max: PositiveInt = 20
    redis_url: str | None = None
    redis_key_prefix: str = "hubbub:"
    redis_pool_max: PositiveInt = 200  # connections per node; commands wait for a free one
    kafka_bootstrap_servers: str | None = None
    # Events: topics are created with these at start when missing; published outbox rows are
    # deleted after OUTBOX_RETENTION_HOURS.
    kafka_topic_partitions: PositiveInt = 6
    kafka_replication_factor: PositiveInt = 1
    outbox_retention_hours: PositiveInt = 24
    s3_endpoint_url: str | None = None
    s3_bucket: str = "hubbub-media"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str = "us-east-1"
    # Media: how long a media URL (signed by Hubbub, or presigned by S3) and a presigned
    # upload URL stay valid, in seconds; the decoded-pixel ceiling per image (x frames).
    media_url_ttl: Annotated[int, msgspec.Meta(ge=60, le=7 * 24 * 3600)] = 3600
    media_upload_ttl: Annotated[int, msgspec.Meta(ge=60, le=7 * 24 * 3600)] = 900
    media_max_pixels: Annotated[int, msgspec.Meta(ge=1_000_000)] = 40_000_000

    # Auth
    jwt_secret: str | None = None  # unset: generated once, kept in DATA_DIR/jwt_secret
    jwt_issuer: str = "hubbub"
    jwt_audience: str = "hubbub-api"
    access_token_ttl: PositiveInt = 900
    refresh_token_ttl: PositiveInt = 30 * 24 * 3600
    password_reset_ttl: PositiveInt = 600
    password_reset_max_attempts: PositiveInt = 5
    # argon2id cost; the defaults are OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).
    # Raising them slows every login and signup, on purpose.
    argon2_time_cost: PositiveInt = 2
    argon2_memory_kib: Annotated[int, msgspec.Meta(ge=8 * 1024)] = 19 * 1024
    argon2_parallelism: PositiveInt = 1

    # Limits
    rate_limit_per_minute: PositiveInt = 1000
    rate_limit_routes: str = ""  # "route.name=N,other.name=M" overrides per route
    max_json_body_bytes: PositiveInt = 64 * 1024
    posts_per_day: PositiveInt = 100
    feed_push_threshold: PositiveInt = 10_000
    # Feeds: ids kept per home timeline, seconds an unread timeline lives (rebuilt from
    # Postgres when gone), follower ids per fan-out batch, and the popular ranking's cache
    # lifetime (seconds) and engagement window (hours).
    feed_timeline_length: PositiveInt = 800
    feed_timeline_ttl: PositiveInt = 7 * 24 * 3600
    feed_fanout_batch: PositiveInt = 1000
    feed_popular_ttl: PositiveInt = 30
    feed_popular_window_hours: PositiveInt = 48

    # Actors and the realtime gateway: mailbox capacity per actor, seconds an idle actor stays
    # in memory, seconds a user stays online after their last socket closes (a reload does
    # not flap to offline), and each socket's event rate limit (sustained per second, burst).
    actor_mailbox_size: PositiveInt = 1000
    actor_idle_timeout: PositiveFloat = 300.0
    presence_grace_seconds: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    socket_events_per_second: PositiveFloat = 20.0
    socket_event_burst: PositiveInt = 40
    # Chat: the hot history each room keeps in Redis (or memory) in front of Postgres, as a
    # number of newest messages and a maximum age in seconds.
    chat_history_length: PositiveInt = 1000
    chat_history_ttl: PositiveInt = 7 * 24 * 3600

    # Calls: comma-separated STUN and TURN URLs handed to clients, the TURN REST secret
    # (coturn `static-auth-secret`) and how long a TURN credential lasts (seconds); seconds a
    # call rings before it counts as missed; participants per call (a mesh: keep it small).
    stun_urls: str = ""
    turn_urls: str = ""
    turn_secret: str | None = None
    turn_credential_ttl: PositiveInt = 86400
    call_ring_timeout: PositiveFloat = 30.0
    max_call_participants: Annotated[int, msgspec.Meta(ge=2, le=8)] = 8

    # Cluster (with REDIS_URL set): seconds between a node's heartbeats, and seconds without
    # one after which a node counts as dead (its actors move, its sockets' users go offline,
    # its calls end). A dead node leaves every view within timeout + heartbeat seconds.
    cluster_heartbeat_seconds: PositiveFloat = 1.0
    cluster_node_timeout_seconds: PositiveFloat = 3.0

    # Scheduled posts. Rules per author, checked when a post is scheduled or rescheduled (0
    # switches one off): posts waiting at once, seconds between two posts, posts in any
    # rolling hour and 24 hours. Retries: tries per target (the first included), and the
    # exponential backoff's first and largest step, in seconds.
    schedule_max_pending: NonNegativeInt = 100
    schedule_min_interval_seconds: NonNegativeInt = 60
    schedule_max_per_hour: NonNegativeInt = 10
    schedule_max_per_day: NonNegativeInt = 50
    schedule_max_attempts: PositiveInt = 5
    schedule_retry_base_seconds: PositiveFloat = 5.0
    schedule_retry_max_seconds: PositiveFloat = 900.0
    # The scheduler on every node: on or off, posts per claim, publishing rounds at once,
    # seconds a claim lasts unless renewed (a dead node's posts are taken over after it),
    # the longest sleep without a wake-up, and seconds one publish call may take.
    scheduler_enabled: bool = True
    scheduler_batch_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    scheduler_concurrency: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 8
    scheduler_lease_seconds: Annotated[float, msgspec.Meta(ge=1)] = 30.0
    scheduler_tick_seconds: PositiveFloat = 30.0
    scheduler_publish_timeout: PositiveFloat = 20.0
    # Publishing to connected accounts (server/publishing): the keys that encrypt their
    # tokens and secrets at rest (comma-separated URL-safe base64 of 32 bytes, the first
    # encrypts; unset: generated once, kept in DATA_DIR/publishing_key), whether webhook URLs
    # may be plain http to 127.0.0.1/localhost (development and tests only), seconds one
    # outbound request (a webhook delivery, an X API call) may take, and the X API's base URL.
    publishing_encryption_key: str | None = None
    publishing_allow_http_localhost: bool = False
    publishing_http_timeout: PositiveFloat = 10.0
    x_api_base_url: str = "https://api.x.com"

    # The home feed's circuit breaker (server/feed/breaker.py): failures in a row of its
    # stores (timelines, Postgres) that open it, and seconds it stays open (answering from
    # the popular ranking, marked degraded) before one trial read goes through.
    feed_breaker_failures: PositiveInt = 5
    feed_breaker_cooldown_seconds: PositiveFloat = 10.0
    # Event consumers: whether `hubbub serve` runs them (false, with Kafka: `hubbub worker`
    # processes do), and the port of the worker's health and metrics endpoint (0: none).
    run_consumers: bool = True
    worker_http_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8081

    @property
    def effective_node_id(self) -> str:
        return self.node_id or f"{socket.gethostname()}-{os.getpid()}"

    def cors_origins(self) -> tuple[str, ...]:
        """CORS_ALLOWED_ORIGINS parsed: () for none, ("*",) for any, else exact origins
        (lower-cased, as browsers send them)."""
        return _parse_origins(self.cors_allowed_origins)

    def route_rate_limits(self) -> dict[str, int]:
        """Parse RATE_LIMIT_ROUTES ("auth.login=20,users.follow=120") into {route: per_minute}."""
        return _parse_route_limits(self.rate_limit_routes)


_ROUTE_LIMIT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*=\s*(\d+)\s*$")


def _parse_route_limits(raw: str) -> dict[str, int]:
    limits: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        match = _ROUTE_LIMIT.match(part)
        if not match or int(match.group(2)) < 1:
            raise ConfigError(
                f"RATE_LIMIT_ROUTES: {part!r} is not of the form route.name=N with N >= 1"
            )
        limits[match.group(1)] = int(match.group(2))
    return limits


# scheme "://" host [":" port], nothing after: an origin as browsers send it (RFC 6454).
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.\-]*://[^/?#@\s]+$")


def _parse_origins(raw: str) -> tuple[str, ...]:
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    if "*" in entries:
        if len(entries) > 1:
            raise ConfigError("CORS_ALLOWED_ORIGINS: `*` must stand alone")
        return ("*",)
    for entry in entries:
        if not _ORIGIN.match(entry.lower()):
            raise ConfigError(
                f"CORS_ALLOWED_ORIGINS: {entry!r} is not an origin such as "
                "https://app.example.com (scheme, host, optional port; no path or slash)")
    return tuple(dict.fromkeys(entry.lower() for entry in entries))


_FIELDS = {name.upper(): name for name in Settings.__struct_fields__}
_PATH = re.compile(r"at `\$\.(\w+)`")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment. Empty values count as unset.

    Raises ConfigError naming the variable when a value does not parse or is out of range.
    """
    env = os.environ if environ is None else environ
    raw = {field: env[var] for var, field in _FIELDS.items() if env.get(var, "") != ""}
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        match = _PATH.search(str(exc))
        var = match.group(1).upper() if match else "configuration"
        value = env.get(var, "")
        message = _PATH.sub("", str(exc)).strip(" -")
        raise ConfigError(f"{var}={value!r} is invalid: {message}") from None
    settings.route_rate_limits()  # fail at start, not on the first request
    settings.cors_origins()
    if settings.jwt_secret is not None and len(settings.jwt_secret.encode()) < 32:
        raise ConfigError("JWT_SECRET must be at least 32 bytes long (HS256 key strength)")
    if settings.cluster_node_timeout_seconds <= 2 * settings.cluster_heartbeat_seconds:
        raise ConfigError("CLUSTER_NODE_TIMEOUT_SECONDS must exceed two "
                          "CLUSTER_HEARTBEAT_SECONDS (one late heartbeat is not a death)")
    if settings.db_pool_min > settings.db_pool_max:
        raise ConfigError("DB_POOL_MIN must not exceed DB_POOL_MAX")
    if settings.schedule_retry_base_seconds > settings.schedule_retry_max_seconds:
        raise ConfigError("SCHEDULE_RETRY_BASE_SECONDS must not exceed "
                          "SCHEDULE_RETRY_MAX_SECONDS")
    return settings
