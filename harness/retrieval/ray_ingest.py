"""Ingest on a Ray cluster: chunking and embedding as a Ray Data pipeline that writes into a Chroma server.

The pipeline, for one collection (corpus × chunking × embedder)::

    documents ──flat_map(chunk)──► chunk rows ──map_batches(EmbedWriter actor pool)──► (id, status, embedded) rows
                                                 one model load per actor; each batch looks up its ids' stored
                                                 hashes, reuses stored vectors by hash, embeds the rest, upserts

Every batch is idempotent: records are keyed by chunk id and carry their content hash, so a batch that Ray retries
after a worker died writes the same records again. The driver only tallies the small result rows and deletes the
records of chunks that no longer exist, so a second ingest embeds nothing and a changed document re-embeds only its
changed chunks, exactly as :meth:`DenseIndex.sync` does in one process; a corpus that has not changed at all is
seen on the driver and never reaches the cluster. Ray is imported only here (and in the run's
Ray executor), lazily, so the package loads without it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from typing import Any

from harness.config.suite import ChunkingConfig, EmbedderConfig
from harness.corpus.chunking import Chunk, chunk_corpus, chunk_document
from harness.corpus.documents import Corpus, Document
from harness.errors import InputError, RetrievalError
from harness.retrieval.chroma_store import CHROMA_URL_ENV, ChromaStore, DenseIndex, IndexKey, IngestReport
from harness.retrieval.embedders import get_embedder
from harness.retrieval.ray_cluster import RayAddress, cluster_accelerators, cluster_cpus, connect

DEFAULT_BATCH_SIZE = 256  # chunks per map_batches batch: one Chroma lookup, one embed call and one upsert each
_DOC_FIELDS = ("id", "kind", "title", "jurisdiction", "date", "body", "path")

RaySync = Callable[[Corpus, ChunkingConfig, EmbedderConfig, DenseIndex], IngestReport]


def require_server(store: ChromaStore | None) -> ChromaStore:
    """Ray workers on other machines cannot reach an embedded store: ``--ray`` needs a Chroma server."""
    if store is None or not store.url:
        raise InputError(f"--ray needs a Chroma server every Ray worker can reach, and {CHROMA_URL_ENV} is not set",
                         hint=f"start one (`chroma run --path DIR --host 0.0.0.0`) and set {CHROMA_URL_ENV}="
                              "http://HOST:8000, or pass --chroma-url")
    return store


def ray_sync(address: RayAddress, *, batch_size: int = DEFAULT_BATCH_SIZE, actors: int | None = None) -> RaySync:
    """A sync function for :class:`~harness.retrieval.build.IndexSet` that runs the pipeline on ``address``."""
    if batch_size < 1:
        raise InputError(f"--ray-batch-size must be at least 1, got {batch_size}", hint="e.g. --ray-batch-size 256")

    def sync(corpus: Corpus, chunking: ChunkingConfig, embedder: EmbedderConfig, index: DenseIndex) -> IngestReport:
        return ray_ingest(corpus, chunking, embedder, index, address, batch_size=batch_size, actors=actors)

    return sync


def ray_ingest(corpus: Corpus, chunking: ChunkingConfig, embedder: EmbedderConfig, index: DenseIndex,
               address: RayAddress, *, batch_size: int = DEFAULT_BATCH_SIZE,
               actors: int | None = None) -> IngestReport:
    """Bring ``index`` (a collection on a Chroma server) up to date with ``corpus`` through a Ray Data pipeline."""
    began = time.perf_counter()
    url = require_server(index.store).url
    if (unchanged := _unchanged(corpus, chunking, index)) is not None:
        return replace(unchanged, seconds=time.perf_counter() - began)
    ray = connect(address)
    job = dict(documents=[{name: getattr(doc, name) for name in _DOC_FIELDS} for doc in corpus],
               chunking=chunking.model_dump(mode="json"), embedder=embedder.model_dump(mode="json"),
               key=asdict(index.key), chroma_url=str(url), batch_size=batch_size,
               actors=actors or _pool_size(ray), gpus=cluster_accelerators(ray) > 0)
    # Ray Data does not run over Ray Client: there the pipeline's driver runs as a task on the cluster.
    rows = ray.get(ray.remote(num_cpus=0)(_run_pipeline).remote(job)) if address.client else _run_pipeline(job)
    return _finish(index, rows, time.perf_counter() - began)


def _unchanged(corpus: Corpus, chunking: ChunkingConfig, index: DenseIndex) -> IngestReport | None:
    """The report of a collection already in sync (chunking here is cheap next to embedding), else None: an
    unchanged corpus needs no cluster, no actor pool and no model load."""
    chunks = chunk_corpus(corpus, chunking)
    stored = index.stored_hashes()
    if len(stored) != len(chunks) or any(stored.get(chunk.id) != chunk.content_hash for chunk in chunks):
        return None
    return IngestReport(collection=index.name, total=len(chunks), added=0, updated=0, deleted=0,
                        unchanged=len(chunks), embedded=0, seconds=0.0)


def _pool_size(ray: Any) -> int:
    gpus = cluster_accelerators(ray)
    return max(1, int(gpus)) if gpus > 0 else cluster_cpus(ray)


def _run_pipeline(job: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Build and drain the pipeline; returns (chunk id, status, embedded) per chunk. ``job`` holds plain values only,
    as it is shipped to a task in client mode."""
    import ray.data

    # Ray Data restarts a killed actor and retries its batch, which is safe: the write is idempotent.
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # Ray Data sets its own levels on import
    ray.data.DataContext.get_current().enable_progress_bars = False
    resources: dict[str, Any] = {"num_gpus": 1} if job["gpus"] else {"num_cpus": 1}
    blocks = max(1, min(len(job["documents"]), 4 * job["actors"]))
    dataset = ray.data.from_items(job["documents"], override_num_blocks=blocks)
    # No CPU reserved for chunking (it is light): were it to wait for one, an actor pool holding every CPU would
    # starve it, and the pipeline would stall on a one-CPU node. A pool of one task per actor keeps a zero-CPU stage
    # from starting a worker process per block.
    chunks = dataset.flat_map(functools.partial(_chunk_rows, chunking=job["chunking"]), num_cpus=0,
                              compute=ray.data.TaskPoolStrategy(size=job["actors"]))
    written = chunks.map_batches(
        EmbedWriter,
        fn_constructor_kwargs={"embedder": job["embedder"], "key": job["key"], "chroma_url": job["chroma_url"]},
        batch_size=job["batch_size"],
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=job["actors"]),
        **resources,
    )
    return [(str(row["id"]), str(row["status"]), bool(row["embedded"])) for row in written.iter_rows()]


def _chunk_rows(row: dict[str, Any], chunking: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Chunks of one document as plain rows (chunking reads only the id, title and body)."""
    doc = Document(id=str(row["id"]), kind=str(row["kind"]), title=str(row["title"]),
                   jurisdiction=str(row["jurisdiction"]), date=str(row["date"]), body=str(row["body"]),
                   path=str(row["path"]))
    for chunk in chunk_document(doc, ChunkingConfig(**chunking)):
        fields = asdict(chunk)
        fields["heading_path"] = list(chunk.heading_path)
        yield fields


def _chunk_of(row: dict[str, Any]) -> Chunk:
    return Chunk(id=str(row["id"]), doc_id=str(row["doc_id"]), index=int(row["index"]), text=str(row["text"]),
                 heading_path=tuple(str(part) for part in row["heading_path"]), content_hash=str(row["content_hash"]),
                 start=int(row["start"]), end=int(row["end"]))


class EmbedWriter:
    """One Ray actor of the embedding pool: loads the model once (through the embedder factory), then per batch
    embeds the chunks whose text the collection lacks and upserts the changed ones."""

    def __init__(self, embedder: dict[str, Any], key: dict[str, str], chroma_url: str) -> None:
        self.embedder = get_embedder(EmbedderConfig(**embedder))
        self.index = ChromaStore(url=chroma_url).open(IndexKey(**key), self.embedder)

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        chunks = [_chunk_of(row) for row in batch.to_dict(orient="records")]
        stored = self.index.stored_hashes([chunk.id for chunk in chunks])
        changed = [chunk for chunk in chunks if stored.get(chunk.id) != chunk.content_hash]
        vectors = self.index.stored_vectors(sorted({chunk.content_hash for chunk in changed}))
        fresh: dict[str, str] = {}
        for chunk in changed:
            if chunk.content_hash not in vectors:
                fresh.setdefault(chunk.content_hash, chunk.text)
        if fresh:
            vectors.update(zip(fresh, self.index.embedder.embed(list(fresh.values())), strict=True))
        self.index.write(changed, vectors)
        changed_ids = {chunk.id for chunk in changed}
        counted: set[str] = set()  # a text embedded once counts once, as in DenseIndex.sync
        statuses, flags = [], []
        for chunk in chunks:
            state = "unchanged" if chunk.id not in changed_ids else "updated" if chunk.id in stored else "added"
            statuses.append(state)
            flags.append(chunk.content_hash in fresh and chunk.content_hash not in counted)
            counted.add(chunk.content_hash)
        return pd.DataFrame({"id": [chunk.id for chunk in chunks], "status": statuses, "embedded": flags})


def _finish(index: DenseIndex, rows: list[tuple[str, str, bool]], seconds: float) -> IngestReport:
    """Delete the records of chunks that are gone and tally what the pipeline did."""
    seen = Counter(record_id for record_id, _, _ in rows)
    duplicates = sorted(record_id for record_id, count in seen.items() if count > 1)
    if duplicates:
        raise RetrievalError(f"duplicate chunk ids while syncing {index.name}: {', '.join(duplicates[:5])}",
                             hint="chunk ids must be unique")
    gone = [record_id for record_id in index.stored_hashes() if record_id not in seen]
    index.delete(gone)
    status = Counter(state for _, state, _ in rows)
    return IngestReport(collection=index.name, total=len(rows), added=status["added"], updated=status["updated"],
                        deleted=len(gone), unchanged=status["unchanged"],
                        embedded=sum(1 for _, _, embedded in rows if embedded), seconds=seconds)
