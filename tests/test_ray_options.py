"""``--ray [ADDRESS]`` parsing and the address check, which need no Ray cluster (nor the ray package)."""

from __future__ import annotations

import socket

import pytest

from harness.cli.main import fill_optional_values
from harness.errors import InputError
from harness.retrieval.ray_cluster import RAY_CLIENT_START_FAILED, check_reachable, parse_address


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["ingest", "s.yaml", "--ray"], ["ingest", "s.yaml", "--ray", "local"]),
        (["ingest", "s.yaml", "--ray", "--json"], ["ingest", "s.yaml", "--ray", "local", "--json"]),
        (["ingest", "--ray", "s.yaml"], ["ingest", "--ray", "local", "s.yaml"]),
        (["run", "s.yaml", "--ray", "10.0.0.1:6379"], ["run", "s.yaml", "--ray", "10.0.0.1:6379"]),
        (["run", "s.yaml", "--ray", "ray://head:10001", "-q"], ["run", "s.yaml", "--ray", "ray://head:10001", "-q"]),
        (["run", "s.yaml"], ["run", "s.yaml"]),
    ],
)
def test_a_bare_ray_flag_means_a_local_instance(given: list[str], expected: list[str]) -> None:
    assert fill_optional_values(given) == expected


def test_addresses_and_their_default_ports() -> None:
    assert parse_address(None).local and parse_address("").local and parse_address("local").local
    assert parse_address("auto").auto
    assert parse_address("head:6380").endpoint() == ("head", 6380)
    assert parse_address("head").endpoint() == ("head", 6379)
    client = parse_address("ray://head")
    assert client.client and client.endpoint() == ("head", 10001)
    with pytest.raises(InputError, match="bad Ray address"):
        parse_address("head:notaport").endpoint()


def test_an_address_nobody_answers_is_an_input_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(InputError, match=f"no Ray cluster answers at 127.0.0.1:{port}") as caught:
        check_reachable(parse_address(f"127.0.0.1:{port}"))
    assert caught.value.exit_code == 2 and "ray start --head" in caught.value.hint
    check_reachable(parse_address("local"))  # nothing to reach: Ray starts one


class _RayJoiningThrough:
    """Stands in for ``ray`` at the one call ``connect`` makes: ``init``, failing as Ray Client does when its
    per-connection server died at start-up (ray/util/client/worker.py raises ConnectionAbortedError with this text)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.inits = 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs: object) -> None:
        self.inits += 1
        if self.inits <= self.failures:
            raise ConnectionAbortedError(f"{RAY_CLIENT_START_FAILED}:\nStarting Ray client server failed")


@pytest.mark.parametrize(("failures", "inits", "joined"), [(0, 1, True), (2, 3, True), (3, 3, False)])
def test_joining_is_tried_again_when_ray_clients_server_dies_at_start_up(
    monkeypatch: pytest.MonkeyPatch, failures: int, inits: int, joined: bool
) -> None:
    from harness.retrieval import ray_cluster

    fake = _RayJoiningThrough(failures)
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: fake)
    monkeypatch.setattr(ray_cluster, "check_reachable", lambda address: None)
    monkeypatch.setattr(ray_cluster, "_quiet_ray_data", lambda: None)
    address = parse_address("ray://127.0.0.1:10001")
    if joined:
        assert ray_cluster.connect(address) is fake
    else:
        with pytest.raises(InputError, match=RAY_CLIENT_START_FAILED):
            ray_cluster.connect(address)
    assert fake.inits == inits


def test_other_join_failures_are_not_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.retrieval import ray_cluster

    fake = _RayJoiningThrough(0)

    def refuse(**kwargs: object) -> None:
        fake.inits += 1
        raise ConnectionError("ray client connection timeout")

    fake.init = refuse  # type: ignore[method-assign]
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: fake)
    monkeypatch.setattr(ray_cluster, "check_reachable", lambda address: None)
    with pytest.raises(InputError, match="could not join"):
        ray_cluster.connect(parse_address("ray://127.0.0.1:10001"))
    assert fake.inits == 1
