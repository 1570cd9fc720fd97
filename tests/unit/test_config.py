"""Settings come from the environment, with clear errors naming the variable."""

from __future__ import annotations

import pytest

from server.config import ConfigError, load_settings


def test_defaults_are_the_embedded_setup() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port, settings.data_dir) == ("127.0.0.1", 8080, "./var")
    assert settings.database_url is None and settings.redis_url is None
    assert settings.rate_limit_per_minute == 1000
    assert settings.access_token_ttl == 900
    assert settings.feed_push_threshold == 10_000 and settings.posts_per_day == 100


def test_contract_names_are_read() -> None:
    settings = load_settings({
        "HOST": "0.0.0.0", "PORT": "9000", "DATA_DIR": "/data", "JWT_SECRET": "s3cret-" + "x" * 32,
        "RATE_LIMIT_PER_MINUTE": "60", "ACCESS_TOKEN_TTL": "60", "LOG_LEVEL": "DEBUG",
        "NODE_ID": "node-a", "DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://r",
        "TRUST_PROXY_HEADERS": "true", "FEED_PUSH_THRESHOLD": "5", "POSTS_PER_DAY": "7",
    })
    assert settings.port == 9000 and settings.host == "0.0.0.0"
    assert settings.jwt_secret == "s3cret-" + "x" * 32 and settings.rate_limit_per_minute == 60
    assert settings.effective_node_id == "node-a"
    assert settings.trust_proxy_headers is True
    assert (settings.feed_push_threshold, settings.posts_per_day) == (5, 7)


def test_empty_values_count_as_unset() -> None:
    assert load_settings({"DATABASE_URL": "", "PORT": ""}).database_url is None


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PORT": "eighty"}, "PORT='eighty'"),
        ({"PORT": "70000"}, "PORT='70000'"),
        ({"RATE_LIMIT_PER_MINUTE": "0"}, "RATE_LIMIT_PER_MINUTE"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"RATE_LIMIT_ROUTES": "auth.login"}, "RATE_LIMIT_ROUTES"),
        ({"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}, "DB_POOL_MIN"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"ARGON2_MEMORY_KIB": "64"}, "ARGON2_MEMORY_KIB"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        load_settings(env)


def test_route_limits_parse() -> None:
    settings = load_settings({"RATE_LIMIT_ROUTES": "auth.login=20, users.follow=120"})
    assert settings.route_rate_limits() == {"auth.login": 20, "users.follow": 120}
