"""What a resume must refuse: records made from another corpus, embedder, chunking or suite must not mix.

Each check names what changed, so the user can tell an edited document from an edited suite.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.config.suite import Suite
from harness.corpus.documents import Corpus
from harness.errors import RunStoreError
from harness.store.records import CorpusInfo, Manifest

_SHOWN = 5  # names listed in a message before "and N more"


def document_digests(corpus: Corpus) -> dict[str, str]:
    """sha256 of each document's content and metadata, keyed by id, so a resume can name what changed."""
    out: dict[str, str] = {}
    for doc in corpus:
        content = [doc.path, doc.kind, doc.title, doc.jurisdiction, doc.date, doc.body, dict(doc.meta)]
        out[doc.id] = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return out


def check_resumable(manifest: Manifest, suite: Suite, corpus: Corpus, suite_path: Path, suite_sha: str) -> None:
    """Raise RunStoreError if the run was made from anything other than what would resume it now."""
    run_id = manifest.run_id or "?"
    if manifest.corpus is not None:
        _check_corpus(run_id, manifest.corpus, corpus)
    if manifest.suite is not None:
        _check_indexing(run_id, manifest.suite.config, suite)
    if manifest.suite is None or manifest.suite.sha256 != suite_sha:
        raise RunStoreError(
            f"run {run_id} was made with a different version of {suite_path}",
            hint="resume with the suite file it was started with, or start a new run",
        )


def _check_corpus(run_id: str, recorded: CorpusInfo, corpus: Corpus) -> None:
    if recorded.fingerprint == corpus.fingerprint:
        return
    before = recorded.document_sha256
    now = document_digests(corpus)
    changes = [f"{doc} changed" for doc in sorted(set(before) & set(now)) if before[doc] != now[doc]]
    changes += [f"{doc} added" for doc in sorted(set(now) - set(before))] if before else []
    changes += [f"{doc} removed" for doc in sorted(set(before) - set(now))]
    detail = _listing(changes) if changes else (
        f"fingerprint {recorded.fingerprint[:12]} is now {corpus.fingerprint[:12]}")
    raise RunStoreError(
        f"run {run_id}: corpus {corpus.name!r} changed since the run started ({detail})",
        hint="restore the corpus as it was, or start a new run: records of two corpus versions must not mix",
    )


def _check_indexing(run_id: str, recorded: dict[str, Any], suite: Suite) -> None:
    recorded_variants = {v.get("name"): v for v in recorded.get("variants") or [] if isinstance(v, dict)}
    changes: list[str] = []
    for variant in suite.variants:
        old = recorded_variants.get(variant.name)
        if old is None:
            continue  # the suite-hash check names a changed variant list
        for key, current in (
            ("embedder", suite.variant_embedder(variant).model_dump(mode="json")),
            ("chunking", suite.variant_chunking(variant).model_dump(mode="json")),
        ):
            before = old.get(key) or recorded.get(key)
            if before is not None and before != current:
                changes.append(f"variant {variant.name}: {key} {_short(before)} -> {_short(current)}")
    if changes:
        raise RunStoreError(
            f"run {run_id}: the suite's retrieval settings changed since the run started ({_listing(changes)})",
            hint="resume with the settings it was started with, or start a new run",
        )


def _short(config: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(config.items()) if value is not None)


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_SHOWN])
    return shown + (f"; and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
