"""BM25 over the same chunks as the dense index, with a tokeniser that keeps section numbers and trade codes whole.

Tokens, from ``"Per R905.1.2, add RFG 240S shingles (CLM-24-0117)"``:
``r905.1.2 r905.1 r905`` (a section number and its parents, so "R905" alone still finds the subsections),
``rfg 240s rfg_240s`` (a trade code's parts and the code as one token), ``shingle`` (light plural stripping),
``clm-24-0117 clm 24 0117``. Stop words are dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.corpus.chunking import Chunk
from harness.errors import RetrievalError
from harness.retrieval.base import ScoredChunk, ranked

if TYPE_CHECKING:
    import bm25s

TOKENIZER_VERSION = 1  # bump when tokenise() changes, so cached indexes are rebuilt
_TOKEN = re.compile(r"[a-z0-9]+(?:[./\-][a-z0-9]+)*")
_SECTION = re.compile(r"^[a-z]{0,3}\d+(?:\.\d+)+$")
_MONEY = re.compile(r"^\d+\.\d\d$")
_TRADE_CODE = re.compile(r"\b([A-Z]{2,5})[ \t]+([A-Z0-9]*[A-Z][A-Z0-9]*|[0-9]+[A-Z]+[A-Z0-9]*)\b")
_STOPWORD_TEXT = (
    "a an and are as at be been but by can could do does did for from had has have how i if in into is it its may "
    "me must my no nor not of on or our shall should so such than that the their them then there these they this "
    "those to too was we were what when where which while who whom why will with would you your")
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _stem(word: str) -> str:
    """Strip a plural ending from plain words (digits and compounds stay as they are)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenise(text: str) -> list[str]:
    """Lowercase tokens for BM25 (see the module docstring)."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        token = match.group(0)
        if token in STOPWORDS:
            continue
        if _SECTION.match(token) and not _MONEY.match(token):
            parts = token.split(".")
            tokens.extend(".".join(parts[:n]) for n in range(len(parts), 0, -1))
        elif "-" in token or "/" in token:
            tokens.append(token)
            tokens.extend(_stem(part) for part in re.split(r"[/\-]", token) if part and part not in STOPWORDS)
        else:
            tokens.append(_stem(token))
    tokens.extend(f"{a.lower()}_{b.lower()}" for a, b in _TRADE_CODE.findall(text))
    return tokens


class BM25Index:
    """A bm25s index over chunks, cached on disk under a key made of the chunk ids, hashes and parameters.

    Args:
        chunks: what to index, in order.
        cache_dir: where cached indexes live (one sub-directory per key); ``None`` disables the cache.
        k1: term-frequency saturation.
        b: length normalisation.
    """

    name = "bm25"

    def __init__(self, chunks: Sequence[Chunk], cache_dir: str | os.PathLike[str] | None = None, *,
                 k1: float = 1.5, b: float = 0.75) -> None:
        self.chunks = list(chunks)
        self.k1 = k1
        self.b = b
        self.cache_key = self._key()
        self.loaded_from_cache = False
        self._model = self._load_or_build(Path(cache_dir) if cache_dir is not None else None)

    def _key(self) -> str:
        digest = hashlib.sha256(f"bm25s|{TOKENIZER_VERSION}|{self.k1}|{self.b}".encode())
        for chunk in self.chunks:
            digest.update(f"\n{chunk.id}\t{chunk.content_hash}".encode())
        return digest.hexdigest()

    def _build(self) -> bm25s.BM25:
        import bm25s  # scipy.sparse comes with it: keep it out of `harness ingest`, which needs no BM25

        model = bm25s.BM25(k1=self.k1, b=self.b)
        model.index([tokenise(chunk.text) for chunk in self.chunks], show_progress=False)
        return model

    def _load_or_build(self, cache_dir: Path | None) -> bm25s.BM25:
        if not self.chunks:
            raise RetrievalError("cannot build a BM25 index over zero chunks", hint="is the corpus empty?")
        if cache_dir is None:
            return self._build()
        target = cache_dir / self.cache_key[:16]
        marker = target / "harness.json"
        if marker.is_file():
            try:
                saved = json.loads(marker.read_text())
                if saved.get("key") == self.cache_key:
                    import bm25s

                    model = bm25s.BM25.load(str(target), show_progress=False)
                    self.loaded_from_cache = True
                    return model
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache entry is rebuilt below
        model = self._build()
        self._save(model, cache_dir, target)
        return model

    def _save(self, model: bm25s.BM25, cache_dir: Path, target: Path) -> None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".bm25-", dir=cache_dir))
            model.save(str(staging), show_progress=False)
            (staging / "harness.json").write_text(json.dumps({"key": self.cache_key, "chunks": len(self.chunks)}))
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)  # readers see a whole index or none
        except OSError as exc:
            raise RetrievalError(f"could not write the BM25 cache under {cache_dir}: {exc}",
                                 hint="check the store directory is writable") from exc

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (zeros when no query token is in the vocabulary)."""
        ids = self._model.get_tokens_ids(tokenise(query))
        if not ids:
            return np.zeros(len(self.chunks), dtype=np.float32)
        return np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float32)

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        """Top ``k`` chunks with a positive score, ties broken by chunk id."""
        return self._top(self.scores(query), k)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[ScoredChunk]]:
        """``search`` for each query. bm25s scores one query at a time (its ``retrieve`` loops too, and breaks ties
        its own way), so the batch saves the caller's per-query thread hops, not scoring passes."""
        return [self._top(self.scores(query), k) for query in queries]

    def _top(self, scores: np.ndarray, k: int) -> list[ScoredChunk]:
        positive = np.flatnonzero(scores > 0)
        if positive.size > 4 * k:  # only sort the head; ties at the cut are settled by ranked()
            cut = np.partition(scores[positive], -k)[-k]
            positive = positive[scores[positive] >= cut]
        items = [(self.chunks[i].id, self.chunks[i].doc_id, float(scores[i]), self.chunks[i].text) for i in positive]
        return ranked(items, k)


def prune_cache(cache_dir: str | os.PathLike[str], keep: Sequence[str]) -> int:
    """Delete cached indexes whose key is not in ``keep``; returns how many were removed."""
    root = Path(cache_dir)
    if not root.is_dir():
        return 0
    keep_dirs = {key[:16] for key in keep}
    removed = 0
    for entry in root.iterdir():
        if entry.is_dir() and entry.name not in keep_dirs:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
