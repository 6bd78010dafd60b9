"""Key files: write them (``keygen``) and read them into a ``KeySet``. The only I/O behind ``tokens``.

A key file is JSON, mode 0600::

    {"version": 1, "keys": [{"kid": "k-20261130-1a2b3c", "alg": "EdDSA", "private_key": "-----BEGIN PRIVATE KEY..."},
                            {"kid": "k-20261201-4d5e6f", "alg": "HS256", "secret": "<base64url>"}]}

``keygen`` appends a key to an existing file (rotation: the newest key signs, older ones still verify until they are
removed) and, for EdDSA, writes ``FILE.pub`` holding only public keys, which is all a gateway needs.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from harness.errors import ConfigError, InputError
from harness.gateway.tokens import ALGORITHMS, Algorithm, Key, KeySet

KEYS_ENV = "HARNESS_GATEWAY_KEYS"
FILE_VERSION = 1
_HS256_SECRET_BYTES = 32


def public_path(path: Path) -> Path:
    """Where keygen writes the public half of an EdDSA key file."""
    return path.with_name(path.name + ".pub")


def resolve_keys_path(path: Path | None) -> Path:
    """``--keys`` if given, else ``$HARNESS_GATEWAY_KEYS``; an InputError when neither is set."""
    if path is not None:
        return path
    from_env = os.environ.get(KEYS_ENV, "").strip()
    if not from_env:
        raise InputError(
            f"no key file: pass --keys FILE or set {KEYS_ENV}",
            hint="create one with `harness gateway keygen --out gateway-keys.json`",
        )
    return Path(from_env)


def load_keyset(path: Path) -> KeySet:
    """Read and check a key file.

    Raises:
        InputError: the file is missing, is not a regular file, or can be read or written by group or others.
        ConfigError: the file's content is malformed (names the field).
    """
    check_private_file(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the key file ({exc.__class__.__name__})", hint="check the path") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON ({exc.msg})", path=str(path), line=exc.lineno, hint="regenerate it with keygen"
        ) from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError("a non-empty list is required", path=str(path), field="keys", hint="run keygen")
    keys: dict[str, Key] = {}
    for index, entry in enumerate(entries):
        key = _parse_entry(entry, path, f"keys[{index}]")
        if key.kid in keys:
            raise ConfigError(f"duplicate kid {key.kid!r}", path=str(path), field=f"keys[{index}].kid")
        keys[key.kid] = key
    return KeySet(keys)


def check_private_file(path: Path) -> None:
    """A key file must exist, be a regular file and be private to its owner (no group/other bits)."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise InputError(
            f"{path}: key file not found", hint="create one with `harness gateway keygen --out FILE`"
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: the key file is not a regular file", hint="point --keys at the JSON key file")
    if info.st_mode & 0o077:
        raise InputError(
            f"{path}: the key file is readable or writable by others (mode {stat.S_IMODE(info.st_mode):04o})",
            hint=f"chmod 600 {path}",
        )


def _parse_entry(entry: Any, path: Path, where: str) -> Key:
    if not isinstance(entry, dict):
        raise ConfigError("each key must be an object", path=str(path), field=where)
    kid, alg = entry.get("kid"), entry.get("alg")
    if not isinstance(kid, str) or not kid:
        raise ConfigError("kid must be a non-empty string", path=str(path), field=f"{where}.kid")
    if alg not in ALGORITHMS:
        raise ConfigError(
            f"alg {alg!r} is not supported", path=str(path), field=f"{where}.alg", hint=f"use {' or '.join(ALGORITHMS)}"
        )
    try:
        if alg == "HS256":
            secret = base64.urlsafe_b64decode(_text(entry, "secret", path, where) + "==")
            if len(secret) < _HS256_SECRET_BYTES:
                raise ConfigError("the HS256 secret is shorter than 32 bytes", path=str(path), field=f"{where}.secret")
            return Key(kid, "HS256", verifying=secret, signing=secret)
        if "private_key" in entry:
            private = serialization.load_pem_private_key(_text(entry, "private_key", path, where).encode(), None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ConfigError("not an Ed25519 private key", path=str(path), field=f"{where}.private_key")
            return Key(kid, "EdDSA", verifying=private.public_key(), signing=private)
        public = serialization.load_pem_public_key(_text(entry, "public_key", path, where).encode())
    except ValueError as exc:
        raise ConfigError(
            f"the key material does not parse ({exc.__class__.__name__})", path=str(path), field=where
        ) from exc
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError("not an Ed25519 public key", path=str(path), field=f"{where}.public_key")
    return Key(kid, "EdDSA", verifying=public)


def _text(entry: dict[str, Any], name: str, path: Path, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string", path=str(path), field=f"{where}.{name}")
    return value


def new_key_entry(alg: Algorithm, *, now: float | None = None) -> dict[str, str]:
    """A fresh key as a key-file entry, with a kid that sorts by creation date."""
    stamp = time.strftime("%Y%m%d", time.gmtime(now))
    kid = f"k-{stamp}-{secrets.token_hex(3)}"
    if alg == "HS256":
        secret = base64.urlsafe_b64encode(secrets.token_bytes(_HS256_SECRET_BYTES)).decode().rstrip("=")
        return {"kid": kid, "alg": "HS256", "secret": secret}
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {"kid": kid, "alg": "EdDSA", "private_key": pem}


def keygen(path: Path, alg: Algorithm) -> tuple[str, Path | None]:
    """Add a new key to ``path`` (created if absent, mode 0600); for EdDSA also rewrite ``path.pub``.

    Returns:
        The new kid, and the public file written (None for HS256: the gateway needs the secret itself).
    """
    entries: list[dict[str, Any]] = []
    if path.exists():
        check_private_file(path)
        load_keyset(path)  # refuse to extend a damaged file
        entries = json.loads(path.read_text(encoding="utf-8"))["keys"]
    entry = new_key_entry(alg)
    entries.append(entry)
    _write_private(path, {"version": FILE_VERSION, "keys": entries})
    if alg != "EdDSA" and not any(e.get("alg") == "EdDSA" for e in entries[:-1]):
        return entry["kid"], None
    public_entries = [_public_entry(e) for e in entries if e.get("alg") == "EdDSA"]
    pub = public_path(path)
    _write_private(pub, {"version": FILE_VERSION, "keys": public_entries})
    return entry["kid"], pub


def _public_entry(entry: dict[str, Any]) -> dict[str, str]:
    private = serialization.load_pem_private_key(entry["private_key"].encode(), None)
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return {"kid": entry["kid"], "alg": "EdDSA", "public_key": pem}


def _write_private(path: Path, document: dict[str, Any]) -> None:
    """Write atomically, created 0600 from the start (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
