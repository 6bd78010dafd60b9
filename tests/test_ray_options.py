"""``--ray [ADDRESS]`` parsing and the address check, which need no Ray cluster (nor the ray package)."""

from __future__ import annotations

import socket

import pytest

from harness.cli.main import fill_optional_values
from harness.errors import InputError
from harness.retrieval.ray_cluster import check_reachable, parse_address


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
