"""Chroma as the dense index: one collection per corpus × embedder × chunking, kept in sync incrementally.

The collection name depends on the corpus *name*, the embedder label and the chunking label, never on the corpus
content: editing a document re-embeds only the chunks whose text changed (each record stores its content hash).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.config import Settings

from harness.corpus.chunking import Chunk
from harness.errors import RetrievalError
from harness.retrieval.base import ScoredChunk, ranked
from harness.retrieval.embedders import Embedder, normalise
from harness.retrieval.query_vectors import QueryVectors

CHROMA_URL_ENV = "HARNESS_CHROMA_URL"
INDEX_SCHEMA = 1  # bump when the record layout changes; old collections are then ignored
# sync_threshold at 100: with Chroma's default of 1,000, a collection's newest vectors are kept out of the saved HNSW
# graph and inserted again, in no fixed order, by every process that opens it, so the same query could rank
# differently from one run to the next (2-6 of 2,000 questions over the restoration corpus). Saved every 100, the
# graph is the same for every reader. Ingest time is unchanged (20,000 vectors: 13.7 s against 13.4).
HNSW_CONFIG: CreateHNSWConfiguration = {
    "space": "cosine", "ef_construction": 200, "ef_search": 200, "max_neighbors": 32, "sync_threshold": 100}
_PAGE = 5000
_QUERY_BATCH = 256  # query vectors per Chroma call: few calls, and a signal is still acted on within one

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class IndexKey:
    """What a collection holds: chunks of one corpus, chunked one way, embedded by one model."""

    corpus: str
    embedder: str
    chunking: str

    @property
    def collection_name(self) -> str:
        digest = hashlib.sha256(f"{INDEX_SCHEMA}|{self.corpus}|{self.embedder}|{self.chunking}".encode()).hexdigest()
        return f"rh-{digest[:12]}"


@dataclass(frozen=True)
class IngestReport:
    """What one sync did. ``embedded`` counts texts sent to the embedder (reused vectors are not counted)."""

    collection: str
    total: int
    added: int
    updated: int
    deleted: int
    unchanged: int
    embedded: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _translate(action: str, exc: Exception, where: str) -> RetrievalError:
    return RetrievalError(f"Chroma {action} failed at {where}: {exc}",
                          hint="check the store path is writable, or that the Chroma server is up "
                               f"(`chroma run --path <dir>`; ${CHROMA_URL_ENV})")


class ChromaStore:
    """A Chroma client: embedded ``PersistentClient(path)`` unless a server URL is given (argument or env).

    Args:
        path: directory for the embedded store.
        url: ``http://host:port`` of a ``chroma run`` server; defaults to ``$HARNESS_CHROMA_URL``.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, url: str | None = None) -> None:
        url = url or os.environ.get(CHROMA_URL_ENV) or None
        settings = Settings(anonymized_telemetry=False)
        self.url = url
        # Absolute: Chroma shares one client per path string, so a relative path could reach another store.
        self.path = Path(path).resolve() if path is not None else None
        if url:
            parsed = urlparse(url if "://" in url else f"http://{url}")
            if not parsed.hostname:
                raise RetrievalError(f"bad Chroma URL {url!r}", hint="write it as http://host:port")
            self.location = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 8000}"
            try:
                self.client = chromadb.HttpClient(host=parsed.hostname, port=parsed.port or 8000,
                                                  ssl=parsed.scheme == "https", settings=settings)
            except Exception as exc:  # connection refused, bad tenant, version mismatch ...
                raise _translate("connect", exc, self.location) from exc
        else:
            if self.path is None:
                raise RetrievalError("no Chroma store path or server URL given",
                                     hint=f"pass a store directory or set {CHROMA_URL_ENV}")
            self.location = str(self.path)
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                self.client = chromadb.PersistentClient(path=str(self.path), settings=settings)
            except Exception as exc:
                raise _translate("open", exc, self.location) from exc

    def open(self, key: IndexKey, embedder: Embedder, queries: QueryVectors | None = None) -> DenseIndex:
        """Get or create the collection for ``key``; ``embedder`` must be the one ``key.embedder`` names.

        ``queries`` holds query vectors already embedded by ``embedder`` (shared by every index it feeds)."""
        metadata = {"harness_schema": INDEX_SCHEMA, "corpus": key.corpus, "embedder": key.embedder,
                    "chunking": key.chunking}
        try:
            collection = self.client.get_or_create_collection(
                key.collection_name, configuration={"hnsw": CreateHNSWConfiguration(**HNSW_CONFIG)}, metadata=metadata,
                embedding_function=None)
        except Exception as exc:
            raise _translate(f"opening collection {key.collection_name}", exc, self.location) from exc
        return DenseIndex(self, key, embedder, collection, queries)

    def collection_names(self) -> list[str]:
        try:
            return sorted(c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections())
        except Exception as exc:
            raise _translate("listing collections", exc, self.location) from exc

    def drop(self, key: IndexKey) -> None:
        try:
            self.client.delete_collection(key.collection_name)
        except Exception as exc:
            raise _translate(f"deleting collection {key.collection_name}", exc, self.location) from exc

    def max_batch(self) -> int:
        try:
            return max(1, int(self.client.get_max_batch_size()))
        except Exception:  # older servers may not say; a conservative batch is fine
            return 1000


def record_metadata(chunk: Chunk) -> dict[str, Any]:
    """What a collection record stores beside the chunk's text and vector; ``hash`` drives incremental syncs."""
    return {"doc_id": chunk.doc_id, "hash": chunk.content_hash, "index": chunk.index, "heading": chunk.heading,
            "start": chunk.start, "end": chunk.end}


class DenseIndex:
    """One collection: incremental sync from chunks, cosine queries, and raw access to the stored vectors."""

    def __init__(self, store: ChromaStore, key: IndexKey, embedder: Embedder, collection: Any,
                 queries: QueryVectors | None = None) -> None:
        self.store = store
        self.key = key
        self.embedder = embedder
        self.collection = collection
        self.queries = queries if queries is not None else QueryVectors(embedder)

    @property
    def name(self) -> str:
        return self.key.collection_name

    def count(self) -> int:
        try:
            return int(self.collection.count())
        except Exception as exc:
            raise _translate(f"counting {self.name}", exc, self.store.location) from exc

    def stored_hashes(self, ids: Sequence[str] | None = None) -> dict[str, str]:
        """Chunk id -> content hash of every stored record, or of those of ``ids`` that are stored."""
        return {record_id: str((meta or {}).get("hash", ""))
                for record_id, meta, _ in self._records(("metadatas",), ids=ids)}

    def _records(self, include: Sequence[str], ids: Sequence[str] | None = None) -> list[tuple[str, Any, Any]]:
        """(id, metadata, embedding) for all records, or for ``ids``, fetched in pages."""
        out: list[tuple[str, Any, Any]] = []
        try:
            if ids is not None:
                for start in range(0, len(ids), _PAGE):
                    out.extend(self._unpack(self.collection.get(ids=list(ids[start:start + _PAGE]),
                                                                include=list(include))))
                return out
            offset = 0
            while True:
                page = self._unpack(self.collection.get(include=list(include), limit=_PAGE, offset=offset))
                out.extend(page)
                if len(page) < _PAGE:
                    return out
                offset += _PAGE
        except Exception as exc:
            raise _translate(f"reading {self.name}", exc, self.store.location) from exc

    @staticmethod
    def _unpack(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        ids = result["ids"]
        metas = result.get("metadatas")
        vectors = result.get("embeddings")
        return [(record_id, metas[i] if metas is not None else None, vectors[i] if vectors is not None else None)
                for i, record_id in enumerate(ids)]

    def sync(self, chunks: Sequence[Chunk], progress: Progress | None = None) -> IngestReport:
        """Make the collection hold exactly ``chunks``: embed new texts only, reuse stored vectors, delete the rest."""
        began = time.perf_counter()
        stored = self.stored_hashes()
        wanted = {chunk.id: chunk for chunk in chunks}
        if len(wanted) != len(chunks):
            raise RetrievalError(f"duplicate chunk ids while syncing {self.name}", hint="chunk ids must be unique")
        changed = [chunk for chunk in chunks if stored.get(chunk.id) != chunk.content_hash]
        deleted = [record_id for record_id in stored if record_id not in wanted]
        vectors = self._reuse(changed, stored)
        fresh: dict[str, str] = {}  # hash -> text, embedded once even if two chunks share it
        for chunk in changed:
            if chunk.content_hash not in vectors:
                fresh.setdefault(chunk.content_hash, chunk.text)
        vectors.update(self._embed(fresh, progress))
        self.write(changed, vectors)
        self.delete(deleted)
        added = sum(1 for chunk in changed if chunk.id not in stored)
        return IngestReport(collection=self.name, total=len(chunks), added=added, updated=len(changed) - added,
                            deleted=len(deleted), unchanged=len(chunks) - len(changed), embedded=len(fresh),
                            seconds=time.perf_counter() - began)

    def _reuse(self, changed: Sequence[Chunk], stored: dict[str, str]) -> dict[str, np.ndarray]:
        """Stored vectors whose text hash reappears (e.g. a chunk renumbered after an insert earlier in its doc)."""
        id_by_hash = {digest: record_id for record_id, digest in stored.items()}
        wanted = sorted({id_by_hash[c.content_hash] for c in changed if c.content_hash in id_by_hash})
        if not wanted:
            return {}
        return {stored[record_id]: np.asarray(vector, dtype=np.float32)
                for record_id, _, vector in self._records(("embeddings",), ids=wanted)}

    def _embed(self, texts_by_hash: dict[str, str], progress: Progress | None) -> dict[str, np.ndarray]:
        # Longest first, as sentence-transformers orders one encode() call: batches of similar length pad less.
        hashes = sorted(texts_by_hash, key=lambda h: (-len(texts_by_hash[h]), h))
        out: dict[str, np.ndarray] = {}
        step = max(1, getattr(self.embedder, "batch_size", 64)) * 4
        for start in range(0, len(hashes), step):
            batch = hashes[start:start + step]
            matrix = self.embedder.embed([texts_by_hash[h] for h in batch])
            out.update(zip(batch, matrix, strict=True))
            if progress is not None:
                progress(min(start + step, len(hashes)), len(hashes))
        return out

    def write(self, chunks: Sequence[Chunk], vectors: dict[str, np.ndarray]) -> None:
        """Upsert ``chunks`` with their vectors (content hash -> vector): keyed by chunk id, so writing the same
        batch twice leaves the same records."""
        batch = self.store.max_batch()
        for start in range(0, len(chunks), batch):
            part = chunks[start:start + batch]
            try:
                self.collection.upsert(
                    ids=[c.id for c in part],
                    embeddings=np.stack([vectors[c.content_hash] for c in part]),
                    documents=[c.text for c in part],
                    metadatas=[record_metadata(c) for c in part],
                )
            except Exception as exc:
                raise _translate(f"writing to {self.name}", exc, self.store.location) from exc

    def stored_vectors(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Content hash -> stored vector, for those of ``hashes`` some record already holds (any chunk id)."""
        if not hashes:
            return {}
        try:
            result = self.collection.get(where={"hash": {"$in": list(hashes)}}, include=["metadatas", "embeddings"])
        except Exception as exc:
            raise _translate(f"reading {self.name}", exc, self.store.location) from exc
        return {str((meta or {}).get("hash", "")): np.asarray(vector, dtype=np.float32)
                for _, meta, vector in self._unpack(result)}

    def delete(self, ids: Sequence[str]) -> None:
        batch = self.store.max_batch()
        for start in range(0, len(ids), batch):
            try:
                self.collection.delete(ids=list(ids[start:start + batch]))
            except Exception as exc:
                raise _translate(f"deleting from {self.name}", exc, self.store.location) from exc

    def query(self, text_or_vector: str | np.ndarray | Sequence[float], k: int) -> list[ScoredChunk]:
        """Top ``k`` chunks by cosine similarity (Chroma's HNSW search), ties broken by chunk id."""
        if isinstance(text_or_vector, str):
            vector = self.queries.get(text_or_vector)
        else:
            vector = normalise(np.asarray(text_or_vector, dtype=np.float32))[0]
        return self.query_many(vector[None, :], k)[0]

    def query_many(self, vectors: np.ndarray, k: int, *, texts: bool = True) -> list[list[ScoredChunk]]:
        """Top ``k`` chunks for each row of ``vectors`` (unit length), in a few Chroma calls rather than one each;
        ``texts=False`` leaves the chunks' text out (empty), for a caller that needs only ids and scores."""
        total = self.count()
        if total == 0 or k <= 0:
            return [[] for _ in range(len(vectors))]
        out: list[list[ScoredChunk]] = []
        include = ["metadatas", "distances", "documents"] if texts else ["metadatas", "distances"]
        for start in range(0, len(vectors), _QUERY_BATCH):
            try:
                result = self.collection.query(query_embeddings=vectors[start:start + _QUERY_BATCH],
                                               n_results=min(k, total), include=include)
            except Exception as exc:
                raise _translate(f"querying {self.name}", exc, self.store.location) from exc
            documents = result["documents"] or [[None] * len(ids) for ids in result["ids"]]  # None when left out
            for ids, metas, distances, chunk_texts in zip(result["ids"], result["metadatas"], result["distances"],
                                                          documents, strict=True):
                items = [(record_id, str((meta or {}).get("doc_id", record_id.rsplit("#", 1)[0])),
                          1.0 - float(distance), text or "")
                         for record_id, meta, distance, text in zip(ids, metas, distances, chunk_texts, strict=True)]
                out.append(ranked(items, k))
        return out

    def embeddings(self) -> tuple[list[str], list[str], np.ndarray]:
        """All stored vectors, sorted by chunk id: ``(chunk ids, doc ids, matrix)``."""
        records = sorted(self._records(("metadatas", "embeddings")), key=lambda record: record[0])
        if not records:
            return [], [], np.zeros((0, 0), dtype=np.float32)
        ids = [record_id for record_id, _, _ in records]
        docs = [str((meta or {}).get("doc_id", record_id.rsplit("#", 1)[0])) for record_id, meta, _ in records]
        return ids, docs, np.asarray(np.stack([np.asarray(v, dtype=np.float32) for _, _, v in records]))
