"""What passes through the gateway: streaming, header stripping, limits, upstream failures, audit, revocation."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
from pathlib import Path

import httpx
import ollama
import pytest
from _gateway import (
    CHAT_BODY,
    KeyFiles,
    gateway_for,
    make_keys,
    parse_response,
    raw_request,
    token_for,
    upstream_saw_nothing,
)
from _wait import GENEROUS_S, eventually

from harness.fakes import FakeOllama, FakeOpenAI, Reply
from harness.gateway.keys import load_keyset


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_keys(tmp_path_factory.mktemp("keys"))


def auth(keys: KeyFiles, **kwargs: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(keys.signing, **kwargs)}"}  # type: ignore[arg-type]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- streaming ---------------------------------------------------------------------------------------------------


def test_streaming_chat_arrives_chunk_by_chunk(keys: KeyFiles) -> None:
    text = "Ice barrier from the eave to 24 inches inside the wall line"
    with FakeOllama(script=Reply.ok(text, chunk_delay=0.15)) as fake, gateway_for([fake], keys.verifying) as gw:
        body = {**CHAT_BODY, "stream": True}
        lines: list[dict[str, object]] = []
        completed_when_first_arrived = None
        with (
            httpx.Client(base_url=gw.url, headers=auth(keys), timeout=10) as client,
            client.stream("POST", "/api/chat", json=body) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/x-ndjson")
            for line in response.iter_lines():
                if completed_when_first_arrived is None:
                    # The first line is in our hands while the upstream is still generating the rest.
                    completed_when_first_arrived = fake.completed
                lines.append(json.loads(line))
    assert completed_when_first_arrived == 0
    assert fake.completed == 1
    words = text.split(" ")
    assert len(lines) == len(words) + 1 and lines[-1]["done"] is True
    assert "".join(str(line["message"]["content"]) for line in lines) == text  # type: ignore[index]


def test_official_ollama_client_streams_through_the_gateway(keys: KeyFiles) -> None:
    with FakeOllama(script=Reply.ok("Yes, at the eaves.")) as fake, gateway_for([fake], keys.verifying) as gw:
        client = ollama.Client(host=gw.url, headers=auth(keys))
        pieces = [
            part.message.content
            for part in client.chat(model="llama3.2", messages=[{"role": "user", "content": "q"}], stream=True)
        ]
        tags = client.list()
    assert "".join(p or "" for p in pieces) == "Yes, at the eaves."
    assert len(pieces) > 1
    assert [m.model for m in tags.models] == ["llama3.2:latest"]


def test_openai_sse_streams_through_when_enabled(keys: KeyFiles) -> None:
    with (
        FakeOpenAI(script=Reply.ok("one two three", chunk_delay=0.1)) as fake,
        gateway_for([fake], keys.verifying, openai=True) as gw,
    ):
        body = {"model": "gemma", "messages": [{"role": "user", "content": "q"}], "stream": True}
        events: list[str] = []
        completed_at_first = None
        with (
            httpx.Client(base_url=gw.url, headers=auth(keys), timeout=10) as client,
            client.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data:"):
                    if completed_at_first is None:
                        completed_at_first = fake.completed
                    events.append(line)
    assert completed_at_first == 0
    assert events[-1] == "data: [DONE]"
    assert len(events) >= 4


def chat_request_head(keys: KeyFiles, port: int, body: bytes) -> bytes:
    return (
        f"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {auth(keys)['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()


def audit_records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_client_disconnect_cancels_the_upstream_request(keys: KeyFiles, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with (
        FakeOllama(script=Reply.ok(latency=30.0)) as fake,
        gateway_for([fake], keys.verifying, audit_path=audit) as gw,
    ):
        body = json.dumps(CHAT_BODY).encode()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
            sock.sendall(chat_request_head(keys, gw.port, body) + body)
            assert eventually(lambda: fake.in_flight == 1)  # the upstream is generating
        # The gateway saw its client go and closed the upstream connection, long before the 30 s answer.
        assert eventually(lambda: fake.disconnects == 1)
        assert fake.completed == 0
        assert eventually(lambda: len(audit_records(audit)) == 1)
    [record] = audit_records(audit)
    assert (record["status"], record["reason"]) == (499, "client disconnected")


def test_a_client_that_leaves_while_queued_never_reaches_the_upstream(keys: KeyFiles, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with (
        FakeOllama(script=Reply.ok(latency=1.0)) as fake,
        gateway_for([fake], keys.verifying, max_upstream=1, queue_timeout_s=10.0, audit_path=audit) as gw,
    ):
        body = json.dumps(CHAT_BODY).encode()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as holder:
            holder.sendall(chat_request_head(keys, gw.port, body) + body)  # takes the only upstream slot for 1 s
            assert eventually(lambda: fake.in_flight == 1)
            with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as queued:
                queued.sendall(chat_request_head(keys, gw.port, body) + body)  # waits for the slot, then leaves
                assert eventually(lambda: gw.app.queued == 1)
            assert parse_response(holder.recv(65536)).status == 200
        assert eventually(lambda: len(audit_records(audit)) == 2)
        assert fake.generations == 1  # the departed client's request was dropped, not sent on
    assert sorted((r["status"], r["reason"]) for r in audit_records(audit)) == [
        (200, None),
        (499, "client disconnected"),
    ]


def test_the_request_deadline_covers_a_trickled_body(keys: KeyFiles, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with (
        FakeOllama() as fake,
        gateway_for([fake], keys.verifying, header_timeout_s=0.5, audit_path=audit) as gw,
        socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock,
    ):
        body = json.dumps(CHAT_BODY).encode()
        sock.sendall(chat_request_head(keys, gw.port, body))  # the headers arrive at once
        for byte in body:  # one byte per 0.1 s: the whole body would take far longer than the deadline
            if select.select([sock], [], [], 0.1)[0]:
                break  # the gateway answered
            sock.sendall(bytes([byte]))
        received = b""
        while data := sock.recv(4096):
            received += data
        assert parse_response(received).status == 408
        assert upstream_saw_nothing(fake)
        assert eventually(lambda: len(audit_records(audit)) == 1)
    [record] = audit_records(audit)
    assert (record["status"], record["reason"]) == (408, "the request body arrived too slowly")
    assert record["subject"] == "ci-nightly"  # the token was checked before the body was read


def test_client_disconnect_mid_stream_cancels_the_upstream(keys: KeyFiles) -> None:
    words = " ".join(f"w{i}" for i in range(100))
    with FakeOllama(script=Reply.ok(words, chunk_delay=GENEROUS_S)) as fake, gateway_for([fake], keys.verifying) as gw:
        with (
            httpx.Client(base_url=gw.url, headers=auth(keys), timeout=10) as client,
            client.stream("POST", "/api/chat", json={**CHAT_BODY, "stream": True}) as response,
        ):
            next(response.iter_lines())
        assert eventually(lambda: fake.disconnects == 1)
        assert fake.completed == 0


# --- headers -----------------------------------------------------------------------------------------------------


def test_credentials_cookies_and_hop_by_hop_headers_are_stripped(keys: KeyFiles) -> None:
    headers = {
        **auth(keys),
        "Cookie": "session=abc",
        "Connection": "close, X-Secret-Hop",
        "X-Secret-Hop": "must not pass",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "X-Forwarded-For": "10.9.8.7",
        "X-Trace": "kept",
    }
    reply = Reply.ok(headers={"Set-Cookie": "a=b", "Server": "ollama/0.6", "X-Upstream-Note": "kept"})
    with FakeOllama(script=reply) as fake, gateway_for([fake], keys.verifying) as gw:
        body = json.dumps(CHAT_BODY).encode()
        response = raw_request(gw.port, "POST", "/api/chat", headers=headers, body=body)
        seen = fake.requests_to("/api/chat")[0].headers
        upstream_netloc = fake.url.removeprefix("http://")
    assert response.status == 200
    for name in (
        "authorization",
        "cookie",
        "x-secret-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "x-forwarded-for",
    ):
        assert name not in seen, name
    assert seen["x-trace"] == "kept"
    assert seen["host"] == upstream_netloc  # the upstream sees its own name, not the gateway's
    assert "set-cookie" not in response.headers and "server" not in response.headers
    assert response.headers["x-upstream-note"] == "kept"
    assert upstream_netloc not in json.dumps(response.headers)


# --- limits ------------------------------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(keys: KeyFiles) -> None:
    with FakeOllama() as fake, gateway_for([fake], keys.verifying, rate_per_s=0.2, burst=3) as gw:
        headers = auth(keys)
        statuses = [httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=headers).status_code for _ in range(5)]
        refused = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=headers)
        # another subject has its own bucket
        other = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=auth(keys, subject="laptop"))
    assert statuses == [200, 200, 200, 429, 429]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 5  # one token every 5 s
    assert other.status_code == 200
    assert len(fake.requests_to("/api/chat")) == 4


def test_concurrent_upstream_requests_are_capped(keys: KeyFiles) -> None:
    with FakeOllama(script=Reply.ok(latency=0.3)) as fake, gateway_for([fake], keys.verifying, max_upstream=2) as gw:

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=gw.url, headers=auth(keys), timeout=20) as client:
                responses = await asyncio.gather(*(client.post("/api/chat", json=CHAT_BODY) for _ in range(6)))
            return [r.status_code for r in responses]

        statuses = asyncio.run(burst())
    assert statuses == [200] * 6
    assert fake.max_in_flight == 2


def test_concurrency_cap_queue_timeout_gives_503(keys: KeyFiles) -> None:
    with (
        FakeOllama(script=Reply.ok(latency=1.0)) as fake,
        gateway_for([fake], keys.verifying, max_upstream=1, queue_timeout_s=0.1) as gw,
    ):

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=gw.url, headers=auth(keys), timeout=20) as client:
                return await asyncio.gather(*(client.post("/api/chat", json=CHAT_BODY) for _ in range(3)))

        responses = asyncio.run(burst())
    assert sorted(r.status_code for r in responses) == [200, 503, 503]
    assert all(r.headers.get("retry-after") == "1" for r in responses if r.status_code == 503)
    assert fake.generations == 1


def test_header_read_timeout_closes_a_slow_client(keys: KeyFiles) -> None:
    with FakeOllama() as fake, gateway_for([fake], keys.verifying, header_timeout_s=0.3) as gw:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
            sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and never finish
            received = b""
            while data := sock.recv(4096):
                received += data
        assert parse_response(received).status == 408
        assert upstream_saw_nothing(fake)
        # the gateway still serves everyone else
        assert httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=auth(keys)).status_code == 200


# --- upstream failures -------------------------------------------------------------------------------------------


def test_dead_upstream_gives_a_generic_502(keys: KeyFiles) -> None:
    dead = closed_port_url()
    with gateway_for([dead], keys.verifying) as gw:
        response = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=auth(keys))
    assert response.status_code == 502
    assert response.json()["error"] == "upstream unavailable"
    hidden = dead.removeprefix("http://")
    assert hidden not in response.text and hidden not in json.dumps(dict(response.headers))
    assert hidden.split(":")[1] not in response.text


def test_upstream_that_resets_the_connection_gives_a_generic_502(keys: KeyFiles) -> None:
    with FakeOllama(script=Reply.reset()) as fake, gateway_for([fake], keys.verifying) as gw:
        response = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=auth(keys))
        assert response.status_code == 502
        assert response.json()["error"] == "upstream unavailable"
        assert fake.url.removeprefix("http://") not in response.text
        assert fake.resets == 1


def test_silent_upstream_gives_a_generic_504(keys: KeyFiles) -> None:
    with FakeOllama(script=Reply.hang()) as fake, gateway_for([fake], keys.verifying, upstream_timeout_s=0.3) as gw:
        response = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=auth(keys), timeout=10)
        assert response.status_code == 504
        assert response.json()["error"] == "upstream timed out"
        assert fake.url.removeprefix("http://") not in response.text
        assert eventually(lambda: fake.disconnects == 1)


def test_upstream_errors_pass_through_with_their_status(keys: KeyFiles) -> None:
    with FakeOllama(script=Reply.error(503, retry_after=2)) as fake, gateway_for([fake], keys.verifying) as gw:
        response = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=auth(keys))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert "server busy" in response.json()["error"]


def test_two_upstreams_share_the_load_and_a_dead_one_gives_502_not_a_hang(keys: KeyFiles) -> None:
    with FakeOllama(name="a") as a, FakeOllama(name="b") as b, gateway_for([a, b], keys.verifying) as gw:
        headers = auth(keys)
        for _ in range(4):
            assert httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=headers).status_code == 200
    assert len(a.requests) == 2 and len(b.requests) == 2


# --- audit, revocation, rotation ---------------------------------------------------------------------------------


def test_audit_lines_carry_no_token(keys: KeyFiles, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    token = token_for(keys.signing, jti="audit-jti")
    with FakeOllama() as fake, gateway_for([fake], keys.verifying, audit_path=audit) as gw:
        ok = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers={"Authorization": f"Bearer {token}"})
        refused = httpx.post(f"{gw.url}/api/pull", json={"name": "x"}, headers={"Authorization": f"Bearer {token}"})
        bad = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers={"Authorization": f"Bearer {token}x"})
        upstream = fake.url
    assert (ok.status_code, refused.status_code, bad.status_code) == (200, 404, 401)
    text = audit.read_text()
    assert token not in text
    for segment in token.split("."):
        assert segment not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["status"] for r in records] == [200, 404, 401]
    first = records[0]
    assert (first["subject"], first["jti"], first["route"], first["upstream"]) == (
        "ci-nightly",
        "audit-jti",
        "/api/chat",
        upstream,
    )
    assert first["bytes_in"] == len(ok.request.content) and first["bytes_out"] == len(ok.content)
    assert first["latency_ms"] > 0
    assert records[1]["upstream"] is None and records[2]["subject"] is None
    assert oct(audit.stat().st_mode & 0o777) == "0o600"


def test_deny_list_is_re_read_while_running(keys: KeyFiles, tmp_path: Path) -> None:
    deny = tmp_path / "revoked.txt"
    deny.write_text("")
    token = token_for(keys.signing, jti="soon-revoked")
    with FakeOllama() as fake, gateway_for([fake], keys.verifying, deny_list=deny) as gw:
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=headers).status_code == 200
        deny.write_text("soon-revoked  # leaked in a CI log\n")
        assert eventually(lambda: httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=headers).status_code == 401)
        requests_before = len(fake.requests)
        assert httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=headers).status_code == 401
        assert len(fake.requests) == requests_before


def test_key_rotation_old_keys_verify_until_removed(tmp_path: Path) -> None:
    from harness.gateway.keys import keygen, public_path

    private = tmp_path / "keys.json"
    keygen(private, "EdDSA")
    old_token = token_for(load_keyset(private))
    keygen(private, "EdDSA")  # rotate: the new key signs from now on
    rotated = load_keyset(private)
    new_token = token_for(rotated)
    assert new_token.split(".")[0] != old_token.split(".")[0]  # different kid in the header
    with FakeOllama() as fake:
        with gateway_for([fake], load_keyset(public_path(private))) as gw:
            for token in (old_token, new_token):
                response = httpx.post(
                    f"{gw.url}/api/chat", json=CHAT_BODY, headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code == 200
        # drop the old key from the public file, as an operator would
        document = json.loads(public_path(private).read_text())
        document["keys"] = document["keys"][1:]
        public_path(private).write_text(json.dumps(document))
        with gateway_for([fake], load_keyset(public_path(private))) as gw:
            fake.reset_counters()
            old = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers={"Authorization": f"Bearer {old_token}"})
            assert old.status_code == 401
            assert upstream_saw_nothing(fake)
            new = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers={"Authorization": f"Bearer {new_token}"})
            assert new.status_code == 200


def test_hs256_keys_work_end_to_end(tmp_path: Path) -> None:
    hs = make_keys(tmp_path, alg="HS256")
    with FakeOllama() as fake, gateway_for([fake], hs.verifying) as gw:
        response = httpx.post(f"{gw.url}/api/chat", json=CHAT_BODY, headers=auth(hs))
    assert response.status_code == 200


def test_many_concurrent_streams_each_get_their_own_answer(keys: KeyFiles) -> None:
    def echo(request: object) -> Reply:
        prompt = request.body["messages"][0]["content"]  # type: ignore[attr-defined]
        return Reply.ok(f"answer to {prompt}", latency=0.02)

    with FakeOllama(script=echo) as fake, gateway_for([fake], keys.verifying) as gw:
        errors: list[str] = []

        def one(index: int) -> None:
            body = {**CHAT_BODY, "messages": [{"role": "user", "content": f"q{index}"}], "stream": True}
            with httpx.stream("POST", f"{gw.url}/api/chat", json=body, headers=auth(keys), timeout=10) as response:
                text = "".join(json.loads(line)["message"]["content"] for line in response.iter_lines())
            if text != f"answer to q{index}":
                errors.append(f"{index}: {text}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert fake.completed == 20
