"""The dispatcher reaching the fleet through gateways: hosts are gateway URLs, tokens come from ``token_env``."""

from __future__ import annotations

from pathlib import Path

import pytest
from _gateway import (
    KeyFiles,
    gateway_for,
    make_keys,
    raw_request,
    token_for,
    upstream_saw_nothing,
)
from _wait import eventually

from harness.config.fleet import Fleet, Host
from harness.dispatch import Dispatcher
from harness.errors import FleetUnavailable, InputError
from harness.fakes import FakeOllama, Reply
from harness.gateway.settings import GatewaySettings
from harness.providers.types import GenerationRequest

REQUEST = GenerationRequest(prompt="Is drip edge required at eaves under the IRC?", max_tokens=32)


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    return make_keys(tmp_path)


def gateway_fleet(urls: dict[str, str], token_envs: dict[str, str], **kwargs: object) -> Fleet:
    hosts = [
        Host(name=name, url=url, kind="ollama", model="llama3.2", max_concurrency=4, token_env=token_envs[name])
        for name, url in urls.items()
    ]
    return Fleet(hosts=hosts, **kwargs)  # type: ignore[arg-type]


async def test_race_through_two_gateways(keys: KeyFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN_A", token_for(keys.signing, scopes=("chat",), subject="race-a"))
    monkeypatch.setenv("GW_TOKEN_B", token_for(keys.signing, scopes=("chat",), subject="race-b"))
    with (
        FakeOllama(name="a", script=Reply.hang()) as fake_a,
        FakeOllama(name="b", script=Reply.ok("fast b", latency=0.05)) as fake_b,
        gateway_for([fake_a], keys.verifying) as gw_a,
        gateway_for([fake_b], keys.verifying) as gw_b,
    ):
        fleet = gateway_fleet({"a": gw_a.url, "b": gw_b.url}, {"a": "GW_TOKEN_A", "b": "GW_TOKEN_B"}, strategy="race")
        async with Dispatcher.from_fleet(fleet) as dispatcher:
            generation = await dispatcher.generate(REQUEST)
        assert (generation.text, generation.host) == ("fast b", "b")
        assert {a.host: a.outcome for a in generation.attempts} == {"a": "cancelled", "b": "ok"}
        # The loser's cancellation went through its gateway to its upstream, which saw the client go.
        assert eventually(lambda: fake_a.disconnects == 1)
        assert fake_a.completed == 0
        # Both upstreams got the request, neither got the token.
        for fake in (fake_a, fake_b):
            seen = fake.requests_to("/api/chat")
            assert len(seen) == 1 and "authorization" not in seen[0].headers


async def test_a_host_with_a_bad_token_loses_and_its_upstream_sees_nothing(
    keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stranger = make_keys(tmp_path / "other")
    monkeypatch.setenv("GW_TOKEN_A", token_for(stranger.signing, scopes=("chat",)))  # signed by a key we don't trust
    monkeypatch.setenv("GW_TOKEN_B", token_for(keys.signing, scopes=("chat",)))
    with (
        FakeOllama(name="a", script=Reply.ok("a")) as fake_a,
        FakeOllama(name="b", script=Reply.ok("b answers", latency=0.1)) as fake_b,
        gateway_for([fake_a], keys.verifying) as gw_a,
        gateway_for([fake_b], keys.verifying) as gw_b,
    ):
        fleet = gateway_fleet({"a": gw_a.url, "b": gw_b.url}, {"a": "GW_TOKEN_A", "b": "GW_TOKEN_B"}, strategy="race")
        async with Dispatcher.from_fleet(fleet) as dispatcher:
            generation = await dispatcher.generate(REQUEST)
        assert generation.host == "b"
        first = next(a for a in generation.attempts if a.host == "a")
        assert (first.outcome, first.status) == ("error", 401)
        assert upstream_saw_nothing(fake_a)
        assert fake_b.completed == 1


async def test_every_gateway_refusing_is_a_fleet_failure_naming_each_host(
    keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_TOKEN", token_for(keys.signing, scopes=("embed",)))  # no chat scope
    with FakeOllama() as fake, gateway_for([fake], keys.verifying) as gw:
        fleet = gateway_fleet({"only": gw.url}, {"only": "GW_TOKEN"}, strategy="race", fallback="none")
        async with Dispatcher.from_fleet(fleet) as dispatcher:
            with pytest.raises(FleetUnavailable) as info:
                await dispatcher.generate(REQUEST)
        assert info.value.reasons["only"].startswith("HTTP 403")
        assert upstream_saw_nothing(fake)


async def test_host_status_through_the_gateway_needs_the_models_scope(
    keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.providers.base import provider_for

    with FakeOllama(version="0.6.3") as fake, gateway_for([fake], keys.verifying) as gw:
        host = Host(name="gw", url=gw.url, kind="ollama", model="llama3.2", token_env="GW_TOKEN")
        monkeypatch.setenv("GW_TOKEN", token_for(keys.signing, scopes=("chat", "models")))
        provider = provider_for(host)
        try:
            status = await provider.status()
        finally:
            await provider.aclose()
        assert (status.reachable, status.version, status.model_present) == (True, "0.6.3", True)
        fake.reset_counters()
        monkeypatch.setenv("GW_TOKEN", token_for(keys.signing, scopes=("chat",)))
        provider = provider_for(host)
        try:
            refused = await provider.status()
        finally:
            await provider.aclose()
        assert refused.error is not None and "403" in refused.error
        assert upstream_saw_nothing(fake)


async def test_a_gateway_served_under_a_path_prefix(keys: KeyFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", token_for(keys.signing, scopes=("chat",)))
    with (
        FakeOllama(script=Reply.ok("through /gpu-b")) as fake,
        gateway_for([fake], keys.verifying, prefix="/gpu-b") as gw,
    ):
        fleet = gateway_fleet({"gpu-b": f"{gw.url}/gpu-b"}, {"gpu-b": "GW_TOKEN"}, strategy="single")
        async with Dispatcher.from_fleet(fleet) as dispatcher:
            generation = await dispatcher.generate(REQUEST)
        assert generation.text == "through /gpu-b"
        assert [r.path for r in fake.requests] == ["/api/chat"]  # the prefix is the gateway's, not Ollama's
        fake.reset_counters()
        headers = {"Authorization": f"Bearer {token_for(keys.signing)}"}
        for target in ("/api/chat", "/gpu-b/api/pull", "/gpu-bx/api/chat", "/other/api/chat"):
            assert raw_request(gw.port, "POST", target, headers=headers, body=b"{}").status == 404, target
        assert raw_request(gw.port, "POST", "/gpu-b/../api/chat", headers=headers, body=b"{}").status == 400
        assert upstream_saw_nothing(fake)


@pytest.mark.parametrize("prefix", ["gpu-b", "/gpu-b/", "/..", "/a/./b", "/a b", "/%2e"])
def test_a_prefix_that_is_not_a_plain_path_is_refused(prefix: str) -> None:
    with pytest.raises(InputError, match="prefix"):
        GatewaySettings(upstreams=("http://127.0.0.1:9",), allowed_hosts=frozenset({"x"}), prefix=prefix)
