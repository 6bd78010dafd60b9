"""``harness gateway keygen | token | serve`` as a user runs them: a real process, real exit codes."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _gateway import CHAT_BODY

from harness.fakes import FakeOllama

REPO = Path(__file__).resolve().parents[1]


def harness(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    result = harness("keygen", "--out", str(path))
    assert result.returncode == 0, result.stderr
    return path


def test_keygen_token_serve_round_trip(key_file: Path, tmp_path: Path) -> None:
    public = key_file.with_name("keys.json.pub")
    assert stat.S_IMODE(key_file.stat().st_mode) == stat.S_IMODE(public.stat().st_mode) == 0o600
    minted = harness(
        "token",
        "--sub",
        "ci-nightly",
        "--scope",
        "generate,chat",
        "--ttl",
        "1h",
        env={"HARNESS_GATEWAY_KEYS": str(key_file)},
    )
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert token.count(".") == 2 and minted.stdout == token + "\n"  # stdout holds the token and nothing else

    port = free_port()
    audit = tmp_path / "audit.jsonl"
    with FakeOllama() as fake:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.cli.main",
                "gateway",
                "serve",
                "--upstream",
                fake.url,
                "--port",
                str(port),
                "--keys",
                str(public),
                "--audit-log",
                str(audit),
            ],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            response = _first_answer(port, token)
            assert response.status_code == 200 and response.json()["done"] is True
            assert len(fake.requests_to("/api/chat")) == 1
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=20)
    assert token not in audit.read_text() and '"status":200' in audit.read_text()


def _first_answer(port: int, token: str) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.post(
                f"http://127.0.0.1:{port}/api/chat", json=CHAT_BODY, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_world_readable_key_file_is_exit_2(key_file: Path) -> None:
    os.chmod(key_file, 0o644)
    for args in (
        ["token", "--sub", "x", "--scope", "chat", "--keys", str(key_file)],
        ["serve", "--upstream", "http://127.0.0.1:9", "--keys", str(key_file), "--port", "0"],
    ):
        result = harness(*args)
        assert result.returncode == 2
        assert "chmod 600" in result.stderr and "Traceback" not in result.stderr


def test_missing_key_file_is_exit_2(tmp_path: Path) -> None:
    result = harness("serve", "--upstream", "http://127.0.0.1:9", "--keys", str(tmp_path / "none.json"))
    assert result.returncode == 2 and "key file not found" in result.stderr
    no_keys = harness("token", "--sub", "x", "--scope", "chat", env={"HARNESS_GATEWAY_KEYS": ""})
    assert no_keys.returncode == 2 and "HARNESS_GATEWAY_KEYS" in no_keys.stderr


@pytest.mark.parametrize("upstream", ["ftp://10.0.0.1/", "file:///etc/passwd", "127.0.0.1:11434", "http://"])
def test_non_http_upstream_is_exit_2(key_file: Path, upstream: str) -> None:
    result = harness("serve", "--upstream", upstream, "--keys", str(key_file), "--port", "0")
    assert result.returncode == 2
    assert "http(s)" in result.stderr and "Traceback" not in result.stderr


def test_taken_port_is_exit_2(key_file: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = harness("serve", "--upstream", "http://127.0.0.1:9", "--keys", str(key_file), "--port", str(port))
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token", "--sub", "x", "--scope", "chat", "--ttl", "48h"], "TTL"),
        (["token", "--sub", "x", "--scope", "pull"], "scope"),
        (["token", "--sub", "x", "--scope", "chat", "--ttl", "soon"], "--ttl"),
        (["serve", "--upstream", "http://127.0.0.1:9", "--leeway", "120", "--port", "0"], "leeway"),
    ],
)
def test_bad_flags_are_exit_2(key_file: Path, args: list[str], message: str) -> None:
    result = harness(*args, "--keys", str(key_file))
    assert result.returncode == 2
    assert message in result.stderr


def test_keygen_rotation_and_hs256(tmp_path: Path) -> None:
    hs = tmp_path / "hs.json"
    assert harness("keygen", "--out", str(hs), "--alg", "HS256").returncode == 0
    assert not hs.with_name("hs.json.pub").exists()
    assert harness("keygen", "--out", str(hs), "--alg", "RS256").returncode == 2
