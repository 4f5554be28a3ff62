"""The settings of a replicated deployment: Sentinels, replicas, and what they refuse."""

from __future__ import annotations

import pytest

from services.core.config import ConfigError
from services.core.redis_client import RedisTarget, configured_target, sentinel_options
from services.core.settings import Settings, settings_from_env


def test_sentinels_are_parsed_into_nodes_and_select_a_sentinel_target() -> None:
    settings = Settings(redis_sentinels="a:26379,b.example:26380")
    assert settings.sentinel_nodes == (("a", 26379), ("b.example", 26380))
    target = configured_target(settings.redis_url, settings.sentinel_nodes, "liaison")
    assert target == RedisTarget("redis://", (("a", 26379), ("b.example", 26380)), "liaison")
    assert configured_target(None, (), "liaison") is None  # the embedded server
    assert configured_target("redis://h", (), "x") == RedisTarget("redis://h")


def test_the_url_gives_the_sentinel_clients_credentials_and_tls_but_not_the_host() -> None:
    options = sentinel_options(RedisTarget("rediss://svc:s3cret@ignored:1/2", (("a", 1),)))
    assert (options["username"], options["password"], options["db"]) == ("svc", "s3cret", 2)
    assert not {"host", "port"} & options.keys()
    assert options["connection_class"].__name__ == "HiredisSentinelSSLConnection"
    plain = sentinel_options(RedisTarget("redis://", (("a", 1),)))
    assert plain["connection_class"].__name__ == "HiredisSentinelConnection"


def test_replicated_durability_waits_for_the_configured_replicas() -> None:
    settings = Settings(durability="replicated", redis_replicas=2)
    assert settings.publisher_options["replicas"] == 2
    assert settings.publisher_options["durable"] is True
    assert Settings(redis_replicas=2).publisher_options["replicas"] == 0  # standard: no WAIT


def test_replicated_without_a_replica_count_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIAISON_DURABILITY", "replicated")
    with pytest.raises(ConfigError, match=r"^LIAISON_DURABILITY=replicated needs LIAISON_REDIS_"):
        settings_from_env()


def test_a_malformed_sentinel_list_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIAISON_REDIS_SENTINELS", "a:26379;b")
    with pytest.raises(ConfigError, match=r"^LIAISON_REDIS_SENTINELS: "):
        settings_from_env()
