"""The aiohttp-backed httpx transport: TLS verification, httpx's error types, and use from more than one event loop."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.providers.transport import AiohttpTransport

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def _serve(handler, tls: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    return server, server.sockets[0].getsockname()[1]


async def _answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(ANSWER)
    await writer.drain()
    writer.close()


async def test_https_upstream_is_verified_against_the_given_trust(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server, port = await _serve(_answer_ok, server_tls)
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(transport=AiohttpTransport(verify=trusting)) as client:
            response = await client.get(f"https://localhost:{port}/api/version")
        assert response.status_code == 200 and response.text == "ok"
        # the default trust store does not know this certificate: refused, as an httpx connect error
        async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await client.get(f"https://localhost:{port}/api/version")
    finally:
        server.close()
        await server.wait_closed()


async def test_failures_arrive_as_httpx_errors() -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.close()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    cut, cut_port = await _serve(cut_short)
    quiet, quiet_port = await _serve(silent)
    closed, closed_port = await _serve(_answer_ok)
    closed.close()
    await closed.wait_closed()
    try:
        async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=httpx.Timeout(0.3)) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{cut_port}/")
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"http://127.0.0.1:{quiet_port}/")
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{closed_port}/")
    finally:
        for server in (cut, quiet):
            server.close()
            await server.wait_closed()


def test_one_transport_serves_successive_event_loops() -> None:
    """A provider built once and used from two ``asyncio.run`` calls: the second loop gets its own connections."""
    transport = AiohttpTransport()

    async def once() -> str:
        server, port = await _serve(_answer_ok)
        try:
            response = await httpx.AsyncClient(transport=transport).get(f"http://127.0.0.1:{port}/")
            return response.text
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(once()) == "ok"
    assert asyncio.run(once()) == "ok"

    async def close() -> None:
        await transport.aclose()

    asyncio.run(close())
