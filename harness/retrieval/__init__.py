"""Retrieval: embedders, the Chroma dense index, BM25, hybrid fusion and ANN fidelity.

Entry points live in ``harness.retrieval.build`` (``ingest``, ``build_retrievers``, ``open_store``). This package
is the only one that imports chromadb, sentence_transformers or bm25s; nothing is imported here so that
``import harness.retrieval`` stays cheap.
"""
