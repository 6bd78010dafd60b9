"""The response cache: content-addressed answers under ``.harness/cache/``, so an unchanged call is never made twice.

The key is the sha256 of:
- the tier and, per host, its kind, model, endpoint and model digest where known (llama.cpp: the GGUF's sha256;
  Ollama: the digest ``/api/tags`` gives; the cloud: the model name, which Anthropic pins to a snapshot);
- the prompt and every generation option (system, max_tokens, temperature, seed, stop, num_ctx). Whether the answer
  is streamed does not change it, so it is left out.

An A/B that changes only retrieval therefore re-uses every answer whose context did not change. Only answers are
stored: an error, a timeout or a budget refusal raises, and nothing is written. A replayed answer keeps the latency and
cost of the call that made it, and its record says ``cached: true`` with where it came from (the run that made it,
when, and the model digest that served it); it is not charged to the run's budget again, and reports never count its
latency or cost as measured (``harness.store.frames.fresh_calls``).

Three modes (:data:`~harness.config.suite.CacheMode`): ``read-write`` replays what it finds and stores what it asks;
``write-only`` asks every model and stores answers the cache lacks (a monitoring run: ``harness nightly``'s default);
``off`` neither reads nor writes. An entry is never replaced, so an A/B keeps replaying the answers it started from.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config.suite import CacheMode
from harness.errors import RunStoreError
from harness.providers.types import Attempt, CacheEntry, Generation, GenerationRequest, ServerTiming, Tier, Usage
from harness.run.tiers import AnswerTier, tier_kind

KEY_VERSION = 1
DEFAULT_CACHE_DIR = Path(".harness/cache")
DB_NAME = "responses.sqlite3"
BUSY_TIMEOUT_MS = 30_000

Identity = dict[str, Any]
UNKNOWN_DIGEST = "unknown"


@dataclass(frozen=True)
class ServedBy:
    """What serves a tier: the identity its cache key covers, and each host's model digest with where it came from."""

    identity: Identity
    digests: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # host name -> (digest, source)

    def digest_of(self, host: str) -> tuple[str | None, str]:
        return self.digests.get(host, (None, UNKNOWN_DIGEST))


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
        _add_origin_column(connection)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS file_digests (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"
        )
    except sqlite3.DatabaseError as exc:
        raise RunStoreError(f"{path}: the response cache cannot be opened: {exc}",
                            hint="delete the file to start an empty cache, or run with --no-cache") from exc
    return connection


def _add_origin_column(connection: sqlite3.Connection) -> None:
    """Caches written before provenance was kept lack the ``origin`` column; their entries read with no run id."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(responses)")}
    if "origin" in columns:
        return
    try:
        connection.execute("ALTER TABLE responses ADD COLUMN origin TEXT")
    except sqlite3.OperationalError as exc:  # another process added it first
        if "duplicate column" not in str(exc):
            raise


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


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
        """The stored answer, marked ``cached`` and carrying its entry's provenance; ``None`` on a miss."""
        row = self.db.execute("SELECT generation, created, origin FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        origin = json.loads(row[2]) if row[2] else {}
        entry = CacheEntry(
            key=key,
            made_at=_iso(float(row[1])),
            run_id=origin.get("run_id"),
            model_digest=origin.get("model_digest"),
            digest_source=origin.get("digest_source"),
        )
        return replace(generation_from_json(row[0]), cached=True, cache_entry=entry)

    def put(
        self,
        key: str,
        tier: str,
        generation: Generation,
        *,
        run_id: str | None = None,
        model_digest: str | None = None,
        digest_source: str | None = None,
    ) -> CacheEntry | None:
        """Store an answer unless the key has one already (entries are never replaced); the new entry, or ``None``."""
        data = json.dumps(asdict(replace(generation, cached=False, cache_entry=None)), sort_keys=True)
        origin = json.dumps({"run_id": run_id, "model_digest": model_digest, "digest_source": digest_source},
                            sort_keys=True)
        created = time.time()
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO responses (key, tier, created, generation, origin) VALUES (?, ?, ?, ?, ?)",
            (key, tier, created, data, origin),
        )
        if cursor.rowcount != 1:
            return None
        return CacheEntry(key, _iso(created), run_id, model_digest, digest_source)

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
    data.pop("cache_entry", None)
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
    """A tier behind the cache. Reading (``read-write``): a hit is answered from disk. Every call made is stored if it
    answered and the cache has no answer for its key yet, with the run that made it and the model digest that served
    it."""

    inner: AnswerTier
    cache: ResponseCache
    identity: Callable[[], Awaitable[ServedBy]]
    read: bool = True
    run_id: str | None = None
    hits: int = 0
    misses: int = 0
    name: str = field(init=False)
    kind: Tier = field(init=False)
    _served_by: ServedBy | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name
        self.kind = tier_kind(self.inner)

    async def served_by(self) -> ServedBy:
        async with self._lock:  # probe the hosts once per run, not once per call
            if self._served_by is None:
                self._served_by = await self.identity()
            return self._served_by

    async def answer(self, request: GenerationRequest) -> Generation:
        served = await self.served_by()
        key = cache_key(self.name, served.identity, request)
        if self.read and (found := self.cache.get(key)) is not None:
            self.hits += 1
            return found
        self.misses += 1
        generation = await self.inner.answer(request)  # raises on errors, timeouts and budget refusals: never stored
        if generation.tier != self.kind:  # a fleet call the cloud answered is not the fleet tier's answer
            return generation
        digest, source = served.digest_of(generation.host)
        entry = self.cache.put(key, self.name, generation, run_id=self.run_id, model_digest=digest,
                               digest_source=source)
        return generation if entry is None else replace(generation, cache_entry=entry)

    async def aclose(self) -> None:
        await self.inner.aclose()


def reads(mode: CacheMode) -> bool:
    """Whether a run in this mode replays stored answers."""
    return mode == "read-write"
