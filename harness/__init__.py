"""Evaluation harness for retrieval-augmented generation over a two-tier model fleet."""

from __future__ import annotations

__version__ = "0.1.0"
