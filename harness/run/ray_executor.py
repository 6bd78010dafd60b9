"""The run's Ray executor: retrieval and its metrics fan out to a pool of actors holding the retrievers.

Only retrieval leaves the driver. Each actor builds the suite's retrievers once (the dense index on the shared Chroma
server, BM25 from the corpus it is handed) and retrieves batches of (case, variant) pairs. The driver submits every
batch at once, collects results as they finish (``ray.wait``) and stays the single writer of the run store, so the
lock, resume, the response cache, the budget and grading work exactly as in a local run. Generation stays on the
driver too, behind the fleet's one slot pool: at most ``max_concurrency`` calls are in flight per host however many
nodes retrieve.

A worker that dies mid-batch is restarted by Ray and its batch retried (retrieval is deterministic and writes
nothing, so a retry is harmless); the driver records each (case, variant) once, the first time it arrives.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from harness.config.suite import Case, Suite
from harness.corpus.documents import Corpus
from harness.retrieval.base import ScoredChunk
from harness.retrieval.chroma_store import CHROMA_URL_ENV, ChromaStore
from harness.retrieval.ray_cluster import RayAddress, cluster_cpus, connect
from harness.retrieval.ray_ingest import require_server
from harness.run.runner import Retrieved, retrieve_case
from harness.store.records import RetrievalRecord

_WAIT_S = 0.5  # how long one ray.wait blocks, so a SIGINT is acted on within about this


class RetrievalWorker:
    """One actor: the suite's retrievers, built once, answering batches of (case index, variant) pairs."""

    def __init__(self, suite: Suite, corpus: Corpus, chroma_url: str) -> None:
        from harness.retrieval.build import build_retrievers

        self.suite = suite
        # BM25 caches go to a private directory; the dense index is the Chroma server's collection.
        store_dir = Path(tempfile.mkdtemp(prefix="harness-ray-"))
        self.retrievers = build_retrievers(suite, corpus, store_dir, chroma_url=chroma_url).retrievers
        for retriever in self.retrievers.values():  # load the query embedder now, not inside the first case's latency
            retriever.search(suite.cases[0].question if suite.cases else "warm-up", 1)

    def retrieve(self, batch: list[tuple[int, str]]) -> list[tuple[int, str, RetrievalRecord, list[ScoredChunk]]]:
        out = []
        for index, variant in batch:
            case = self.suite.cases[index]
            record, hits = retrieve_case(self.retrievers[variant], case, self.suite.k, self.suite.metrics)
            out.append((index, variant, record, list(hits)))
        return out


class RayRetrieval:
    """Retrieval of a run's pending pairs on a Ray cluster, streamed back as batches finish.

    Args:
        address: where to run.
        suite, corpus: what the actors retrieve over (shipped to each actor once).
        chroma_url: the Chroma server holding the dense collections (already synced by the driver).
        batch: (case, variant) pairs per task.
        actors: pool size; default one per CPU of the cluster.
    """

    def __init__(self, address: RayAddress, suite: Suite, corpus: Corpus, chroma_url: str, *, batch: int = 8,
                 actors: int | None = None) -> None:
        self.address = address
        self.suite = suite
        self.corpus = corpus
        self.chroma_url = chroma_url
        self.batch = max(1, batch)
        self.actors = actors

    async def __call__(self, pending: Sequence[tuple[Case, str]]) -> AsyncIterator[Retrieved]:
        if not pending:
            return
        ray = connect(self.address)
        position = {case.id: index for index, case in enumerate(self.suite.cases)}
        pairs = [(position[case.id], variant) for case, variant in pending]
        batches = [pairs[start:start + self.batch] for start in range(0, len(pairs), self.batch)]
        size = min(len(batches), self.actors or cluster_cpus(ray))
        actor_class = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(RetrievalWorker)
        suite_ref, corpus_ref = ray.put(self.suite), ray.put(self.corpus)
        # SPREAD: one actor per node first, so every node retrieves.
        pool = [actor_class.options(scheduling_strategy="SPREAD").remote(suite_ref, corpus_ref, self.chroma_url)
                for _ in range(size)]
        waiting: list[Any] = [pool[number % size].retrieve.remote(batch) for number, batch in enumerate(batches)]
        seen: set[tuple[int, str]] = set()
        try:
            while waiting:
                done, waiting = await asyncio.to_thread(ray.wait, waiting, num_returns=1, timeout=_WAIT_S)
                for ref in done:
                    for index, variant, record, hits in await asyncio.to_thread(ray.get, ref):
                        if (index, variant) in seen:
                            continue
                        seen.add((index, variant))
                        yield Retrieved(self.suite.cases[index], variant, record, hits)
        finally:  # interrupted or done: killing the actors drops whatever they still had queued
            for actor in pool:
                ray.kill(actor)


def ray_retrieval(options: Any, suite: Suite, corpus: Corpus, chroma_url: str | None) -> RayRetrieval:
    """The executor for ``--ray``: the actors reach the dense collections on the Chroma server."""
    url = chroma_url or os.environ.get(CHROMA_URL_ENV) or ""
    return RayRetrieval(options.parsed(), suite, corpus, str(require_server(ChromaStore(url=url) if url else None).url),
                        batch=options.case_batch)
