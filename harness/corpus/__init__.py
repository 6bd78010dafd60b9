"""Corpus documents (Markdown + YAML front matter) and section-aware chunking."""

from harness.corpus.chunking import Chunk, chunk_corpus, chunk_document
from harness.corpus.documents import Corpus, Document, load_corpus, resolve_corpus

__all__ = ["Chunk", "Corpus", "Document", "chunk_corpus", "chunk_document", "load_corpus", "resolve_corpus"]
