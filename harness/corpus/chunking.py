"""Section-aware chunking with stable ids and content hashes.

A chunk never spans two Markdown sections. Its text starts with the heading path (``Title > R905.1.2 > Exception``),
then section content packed up to ``max_chars``, breaking on paragraphs, then lines, sentences and words. Each new
chunk of a section repeats up to ``overlap`` characters from the end of the previous one, cut at the same kinds of
boundary. Tables are never split inside a row; a table that does not fit is split between rows and every part
starts with the table's header row.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.config.suite import ChunkingConfig
from harness.corpus.documents import Corpus, Document

PATH_SEPARATOR = " > "
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_TABLE_SEPARATOR = re.compile(r"^\|?[ \t]*:?-{2,}:?[ \t]*(\|[ \t]*:?-{2,}:?[ \t]*)*\|?$")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    """A piece of one document section.

    Attributes:
        id: ``<doc id>#<n>``, n counting from 0 in document order.
        doc_id: the document's id.
        index: n.
        text: heading path, a blank line, then the content.
        heading_path: document title, then the section headings leading to this chunk.
        content_hash: sha256 of the chunking label and ``text``.
        start: offset in ``Document.body`` where the content starts.
        end: offset in ``Document.body`` where the content ends.
    """

    id: str
    doc_id: str
    index: int
    text: str
    heading_path: tuple[str, ...]
    content_hash: str
    start: int
    end: int

    @property
    def heading(self) -> str:
        return PATH_SEPARATOR.join(self.heading_path)


@dataclass(frozen=True)
class _Seg:
    """A span of the body kept whole inside one chunk."""

    start: int
    end: int
    sep: str = "\n\n"  # what joins it to the segment before it in the same chunk
    header: tuple[int, int] | None = None  # table header span to repeat when a chunk starts with this row
    is_header: bool = False  # a table header: must not end a chunk
    prose: bool = True  # may be cut at sentence/word starts to make overlap


def chunk_corpus(corpus: Corpus | Iterable[Document], config: ChunkingConfig) -> list[Chunk]:
    """Chunk every document, in corpus order."""
    return [chunk for doc in corpus for chunk in chunk_document(doc, config)]


def chunk_document(doc: Document, config: ChunkingConfig) -> list[Chunk]:
    """Chunk one document; same document and config give the same chunks, ids and hashes."""
    chunks: list[Chunk] = []
    body = doc.body
    for path, start, end in _sections(body, doc.title):
        prefix = _prefix(path, config.max_chars)
        budget = config.max_chars - len(prefix) - 2
        segments = _segments(body, start, end, budget)
        for group in _pack(body, segments, budget, config.overlap):
            text = prefix + "\n\n" + _render(body, group)
            index = len(chunks)
            digest = hashlib.sha256(f"{config.label}\n{text}".encode()).hexdigest()
            chunks.append(Chunk(id=f"{doc.id}#{index}", doc_id=doc.id, index=index, text=text, heading_path=path,
                                content_hash=digest, start=group[0].start, end=group[-1].end))
    return chunks


def _prefix(path: tuple[str, ...], max_chars: int) -> str:
    prefix = PATH_SEPARATOR.join(path)
    cap = max_chars // 3  # a very deep heading path must still leave room for content
    return prefix if len(prefix) <= cap else "…" + prefix[-(cap - 1):]


def _lines(body: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of each line in body[start:end], without the newline."""
    spans = []
    pos = start
    while pos < end:
        stop = body.find("\n", pos, end)
        stop = end if stop == -1 else stop
        spans.append((pos, stop))
        pos = stop + 1
    return spans


def _sections(body: str, title: str) -> list[tuple[tuple[str, ...], int, int]]:
    """Split the body on headings (outside code fences): (heading path, content start, content end)."""
    sections: list[tuple[tuple[str, ...], int, int]] = []
    stack: list[tuple[int, str]] = []
    path: tuple[str, ...] = (title,)
    content_start = 0
    in_fence = False
    for line_start, line_end in _lines(body, 0, len(body)):
        line = body[line_start:line_end]
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            continue
        sections.append((path, content_start, line_start))
        level, text = len(match.group(1)), match.group(2).strip()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
        # The H1 usually repeats the title; don't say it twice.
        names = [t for lvl, t in stack if not (lvl == 1 and t.casefold() == title.strip().casefold())]
        path = (title, *names)
        content_start = min(line_end + 1, len(body))
    sections.append((path, content_start, len(body)))
    return [(p, s, e) for p, s, e in sections if body[s:e].strip()]


def _blocks(body: str, start: int, end: int) -> list[tuple[str, int, int, list[tuple[int, int]]]]:
    """Paragraph, fenced-code and table blocks of a section: (kind, start, end, line spans)."""
    blocks: list[tuple[str, int, int, list[tuple[int, int]]]] = []
    current: list[tuple[int, int]] = []
    kind = ""
    in_fence = False

    def flush() -> None:
        nonlocal current
        if current:
            blocks.append((kind, current[0][0], current[-1][1], current))
        current = []

    for line_start, line_end in _lines(body, start, end):
        raw = body[line_start:line_end]
        line_end = line_start + len(raw.rstrip())
        stripped = raw.strip()
        if in_fence:
            current.append((line_start, line_end))
            in_fence = not _FENCE.match(raw)
            if not in_fence:
                flush()
            continue
        if _FENCE.match(raw):
            flush()
            kind, in_fence = "code", True
            current.append((line_start, line_end))
            continue
        if not stripped:
            flush()
            continue
        line_kind = "table" if stripped.startswith("|") else "text"
        if current and line_kind != kind:
            flush()
        kind = line_kind
        current.append((line_start + len(raw) - len(raw.lstrip()), line_end))
    flush()
    return blocks


def _gap(body: str, prev_end: int, start: int) -> str:
    gap = body[prev_end:start]
    newlines = gap.count("\n")
    return "\n\n" if newlines >= 2 else "\n" if newlines else " "


def _segments(body: str, start: int, end: int, budget: int) -> list[_Seg]:
    segments: list[_Seg] = []
    for kind, b_start, b_end, lines in _blocks(body, start, end):
        if b_end - b_start <= budget:
            segments.append(_Seg(b_start, b_end, prose=kind == "text"))
        elif kind == "table":
            segments.extend(_table_segments(body, lines))
        else:
            spans = _split(body, b_start, b_end, budget, level=0)
            segments.extend(_Seg(s, e, sep=_gap(body, spans[i - 1][1], s) if i else "\n\n", prose=kind == "text")
                            for i, (s, e) in enumerate(spans))
    return segments


def _table_segments(body: str, lines: list[tuple[int, int]]) -> list[_Seg]:
    has_header = len(lines) >= 2 and _TABLE_SEPARATOR.match(body[lines[1][0]:lines[1][1]].strip()) is not None
    if not has_header:
        return [_Seg(s, e, sep="\n" if i else "\n\n", prose=False) for i, (s, e) in enumerate(lines)]
    header = (lines[0][0], lines[1][1])
    rows = [_Seg(s, e, sep="\n", header=header, prose=False) for s, e in lines[2:]]
    return [_Seg(*header, is_header=True, prose=False), *rows]


def _split(body: str, start: int, end: int, budget: int, level: int) -> list[tuple[int, int]]:
    """Split a span that is too long: into lines, then sentences, then words (a long word stays whole)."""
    if end - start <= budget or level > 2:
        return [(start, end)]
    if level == 0:
        pieces = [(s, e) for s, e in _lines(body, start, end) if e > s]
    else:
        pieces = _sentences(body, start, end) if level == 1 else _words(body, start, end)
    if len(pieces) <= 1:
        return _split(body, start, end, budget, level + 1)
    return [span for s, e in pieces for span in _split(body, s, e, budget, level + 1)]


def _sentences(body: str, start: int, end: int) -> list[tuple[int, int]]:
    cuts = [start] + [m.end() for m in _SENTENCE_END.finditer(body, start, end) if m.end() < end]
    spans = []
    for i, cut in enumerate(cuts):
        stop = cuts[i + 1] if i + 1 < len(cuts) else end
        piece_end = cut + len(body[cut:stop].rstrip())
        if piece_end > cut:
            spans.append((cut, piece_end))
    return spans


def _words(body: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _WORD.finditer(body, start, end)]


def _render(body: str, group: list[_Seg]) -> str:
    parts: list[str] = []
    first = group[0]
    if first.header is not None:
        parts.append(body[first.header[0]:first.header[1]] + "\n")
    for i, seg in enumerate(group):
        if i:
            parts.append(seg.sep)
        parts.append(body[seg.start:seg.end])
    return "".join(parts)


def _rendered_len(body: str, group: list[_Seg]) -> int:
    return len(_render(body, group)) if group else 0


def _pack(body: str, segments: list[_Seg], budget: int, overlap: int) -> list[list[_Seg]]:
    """Greedily fill chunks; each new chunk starts with an overlap tail of the previous one."""
    groups: list[list[_Seg]] = []
    current: list[_Seg] = []
    for i, seg in enumerate(segments):
        # A table header must be followed by at least its first row in the same chunk.
        follow = segments[i + 1].end - segments[i + 1].start + 1 if seg.is_header and i + 1 < len(segments) else 0
        if current and _rendered_len(body, [*current, seg]) + follow > budget:
            groups.append(current)
            carried = _overlap(body, current, overlap)
            while carried and _rendered_len(body, [*carried, seg]) + follow > budget:
                carried = carried[1:]
            current = [*carried, seg]
        else:
            current.append(seg)
    if current:
        groups.append(current)
    return groups


def _overlap(body: str, group: list[_Seg], overlap: int) -> list[_Seg]:
    """The tail of ``group`` to repeat: whole segments, else a sentence or word tail of the last prose segment."""
    if overlap <= 0:
        return []
    carried: list[_Seg] = []
    for seg in reversed(group):
        if seg.is_header or _rendered_len(body, [seg, *carried]) > overlap:
            break
        carried.insert(0, seg)
    if carried or not group[-1].prose:
        return carried
    last = group[-1]
    for splitter in (_sentences, _words):
        starts = [s for s, _ in splitter(body, last.start, last.end) if s > last.start and last.end - s <= overlap]
        if starts:
            return [_Seg(min(starts), last.end, sep=last.sep, prose=True)]
    return []
