"""The response cache: content-addressed answers under ``.harness/cache/``, so an unchanged call is never made twice.

The key is the sha256 of:
- the tier and, per host, its kind, model, endpoint and model digest where known (llama.cpp: the GGUF's sha256;
  Ollama: the digest ``/api/tags`` gives; the cloud: the model name, which Anthropic pins to a snapshot);
- the prompt and every generation option (system, max_tokens, temperature, seed, stop, num_ctx). Whether the answer
  is streamed does not change it, so it is left out.

An A/B that changes only retrieval therefore re-uses every answer whose context did not change. Only answers are
stored: an error, a timeout or a budget refusal raises, and nothing is written. A replayed answer keeps the latency and
cost of the call that made it, and its record says ``cached: true``; it is not charged to the run's budget again.

Storage is one SQLite file in WAL mode (``bench/cache.py`` measured it against a directory of one file per key:
see the README), safe under concurrent writers: ``INSERT OR IGNORE`` of the same key is idempotent, and readers never
see half an entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import RunStoreError
from harness.providers.types import Attempt, Generation, GenerationRequest, ServerTiming, Tier, Usage
from harness.run.tiers import AnswerTier

KEY_VERSION = 1
DEFAULT_CACHE_DIR = Path(".harness/cache")
DB_NAME = "responses.sqlite3"
BUSY_TIMEOUT_MS = 30_000

Identity = dict[str, Any]


def cache_key(tier: str, identity: Identity, request: GenerationRequest) -> str:
    """sha256 over the tier, what serves it, and the request without its transport-only ``stream`` flag."""
    options = asdict(request)
    options.pop("stream", None)
    payload = {"v": KEY_VERSION, "tier": tier, "served_by": identity, "request": options}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, tier TEXT NOT NULL, created REAL NOT NULL, "
            "generation TEXT NOT NULL)"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS file_digests (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"
        )
    except sqlite3.DatabaseError as exc:
        raise RunStoreError(f"{path}: the response cache cannot be opened: {exc}",
                            hint="delete the file to start an empty cache, or run with --no-cache") from exc
    return connection


@dataclass
class ResponseCache:
    """One SQLite file of answers keyed by :func:`cache_key`. Open one per process; it is safe across processes."""

    path: Path
    _db: sqlite3.Connection | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, directory: Path = DEFAULT_CACHE_DIR) -> ResponseCache:
        cache = cls(directory / DB_NAME)
        cache._db = _connect(cache.path)
        return cache

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = _connect(self.path)
        return self._db

    def get(self, key: str) -> Generation | None:
        row = self.db.execute("SELECT generation FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else generation_from_json(row[0])

    def put(self, key: str, tier: str, generation: Generation) -> None:
        data = json.dumps(asdict(replace(generation, cached=False)), sort_keys=True)
        self.db.execute("INSERT OR IGNORE INTO responses (key, tier, created, generation) VALUES (?, ?, ?, ?)",
                        (key, tier, time.time(), data))

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- memo of file digests (a GGUF is hashed once per path, size and mtime) -----------------------------------

    def file_sha256(self, path: Path) -> str:
        """The file's sha256, memoised by path + size + mtime, so a 250 MB model is hashed once."""
        stat = path.stat()
        key = str(path.resolve())
        row = self.db.execute("SELECT size, mtime_ns, sha256 FROM file_digests WHERE path = ?", (key,)).fetchone()
        if row is not None and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
            return str(row[2])
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        value = digest.hexdigest()
        self.db.execute("INSERT OR REPLACE INTO file_digests (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
                        (key, stat.st_size, stat.st_mtime_ns, value))
        return value


def generation_from_json(text: str) -> Generation:
    data = json.loads(text)
    return Generation(
        **{
            **data,
            "usage": Usage(**data.get("usage") or {}),
            "timing": ServerTiming(**data.get("timing") or {}),
            "attempts": tuple(Attempt(**a) for a in data.get("attempts") or ()),
            "cached": True,
        }
    )


@dataclass
class CachedTier:
    """A tier behind the cache: a hit is answered from disk, a miss is asked of the tier and stored if it answered."""

    inner: AnswerTier
    cache: ResponseCache
    identity: Callable[[], Awaitable[Identity]]
    hits: int = 0
    misses: int = 0
    name: Tier = field(init=False)
    _served_by: Identity | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    async def served_by(self) -> Identity:
        async with self._lock:  # probe the hosts once per run, not once per call
            if self._served_by is None:
                self._served_by = await self.identity()
            return self._served_by

    async def answer(self, request: GenerationRequest) -> Generation:
        key = cache_key(self.name, await self.served_by(), request)
        found = self.cache.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        generation = await self.inner.answer(request)  # raises on errors, timeouts and budget refusals: never stored
        if generation.tier == self.name:  # a local call the cloud answered is not the local tier's answer
            self.cache.put(key, self.name, generation)
        return generation

    async def aclose(self) -> None:
        await self.inner.aclose()
