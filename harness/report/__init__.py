"""Rendering only: Markdown, HTML and charts of runs read through the store (and of capacity results). Untrusted text
is escaped here; nothing in this room calls a model or decides a verdict."""
