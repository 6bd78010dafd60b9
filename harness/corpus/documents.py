"""Load a corpus: Markdown files with YAML front matter, validated, cross-references checked."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config.yaml_positions import YamlProblem, decode_utf8, parse_yaml
from harness.errors import CorpusError

KINDS = ("code", "estimate", "supplement")
REQUIRED = ("id", "kind", "title", "jurisdiction", "date")
LINK_FIELDS = ("supersedes", "superseded_by", "references")
_FENCE = "---"


@dataclass(frozen=True)
class Document:
    """One corpus document.

    Attributes:
        id: unique id; equals the file stem.
        kind: ``code``, ``estimate`` or ``supplement``.
        title: display title.
        jurisdiction: e.g. ``Marlow County``.
        date: ISO date string (``YYYY-MM-DD``).
        body: Markdown after the front matter.
        path: file path relative to the corpus root, POSIX style.
        meta: every other front-matter field (section, claim, version, supersedes, superseded_by, references, ...).
        body_line: 1-based line of the file where ``body`` starts.
    """

    id: str
    kind: str
    title: str
    jurisdiction: str
    date: str
    body: str
    path: str
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=True)
    body_line: int = 1

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(self.meta.get("references") or ())

    @property
    def section(self) -> str | None:
        return self.meta.get("section")

    @property
    def claim(self) -> str | None:
        return self.meta.get("claim")

    @property
    def supersedes(self) -> str | None:
        return self.meta.get("supersedes")

    @property
    def superseded_by(self) -> str | None:
        return self.meta.get("superseded_by")


@dataclass(frozen=True)
class Corpus:
    """A loaded corpus.

    Attributes:
        name: the corpus directory name, used to key indexes (content changes do not change it).
        root: the directory it was read from.
        documents: in path order.
        fingerprint: sha256 over every file's relative path and content (line endings normalised).
    """

    name: str
    root: Path
    documents: tuple[Document, ...]
    fingerprint: str
    _by_id: Mapping[str, Document] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def ids(self) -> list[str]:
        return [doc.id for doc in self.documents]

    def get(self, doc_id: str) -> Document:
        try:
            return self._by_id[doc_id]
        except KeyError:
            raise CorpusError(f"corpus {self.name!r} has no document {doc_id!r}",
                              hint=f"ids come from the `id:` front matter of files under {self.root}") from None

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._by_id

    def __iter__(self) -> Iterator[Document]:
        return iter(self.documents)

    def __len__(self) -> int:
        return len(self.documents)


def resolve_corpus(name_or_path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    """Turn a suite's ``corpus:`` value into a directory.

    A bare name (no path separator, not starting with ``.``) means ``<base>/corpora/<name>``; anything else is a
    path, relative to ``base`` when not absolute. ``base`` defaults to the current directory.
    """
    base_dir = Path(base) if base is not None else Path.cwd()
    text = os.fspath(name_or_path)
    is_bare = "/" not in text and os.sep not in text and not text.startswith(".")
    candidate = base_dir / "corpora" / text if is_bare else base_dir / Path(text).expanduser()
    if candidate.is_dir():
        return candidate
    if candidate.exists():
        raise CorpusError(f"corpus {text!r} is {candidate}, which is a file, not a directory",
                          hint="point `corpus:` at the directory that holds the .md documents")
    corpora = base_dir / "corpora"
    known = sorted(p.name for p in corpora.iterdir() if p.is_dir()) if corpora.is_dir() else []
    hint = f"corpora under {corpora}: {', '.join(known)}" if known else (
        f"run from the project root (where corpora/ lives) or give a path; looked in {base_dir}")
    raise CorpusError(f"corpus {text!r} not found (looked for directory {candidate})", hint=hint)


def load_corpus(root: str | os.PathLike[str], *, name: str | None = None) -> Corpus:
    """Read every ``**/*.md`` under ``root`` (except a top-level README.md) and validate it.

    Raises:
        CorpusError: naming the file and line of the first problem found.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise CorpusError(f"corpus directory {root_path} does not exist", hint="check the suite's `corpus:` value")
    files = sorted(p for p in root_path.rglob("*.md")
                   if p.is_file() and p.relative_to(root_path).as_posix() != "README.md")
    if not files:
        raise CorpusError(f"corpus {root_path} has no .md documents", hint="add Markdown files with YAML front matter")
    digest = hashlib.sha256()
    documents: list[Document] = []
    key_lines: dict[str, dict[str, int]] = {}
    first_path: dict[str, Path] = {}
    for path in files:
        text = _read_text(path)
        relative = path.relative_to(root_path).as_posix()
        digest.update(relative.encode() + b"\0" + text.encode() + b"\0")
        doc, lines = _parse_document(path, relative, text)
        if doc.id in first_path:
            raise CorpusError(f"{path}:{lines.get('id', 1)}: duplicate id {doc.id!r} (also in {first_path[doc.id]})",
                              hint="ids must be unique across the corpus; rename one file and its `id:`")
        first_path[doc.id] = path
        key_lines[doc.id] = lines
        documents.append(doc)
    by_id = {doc.id: doc for doc in documents}
    _check_links(documents, by_id, key_lines, root_path)
    return Corpus(name=name or root_path.resolve().name, root=root_path, documents=tuple(documents),
                  fingerprint=digest.hexdigest(), _by_id=by_id)


def _read_text(path: Path) -> str:
    try:
        return decode_utf8(path.read_bytes()).replace("\r\n", "\n")
    except YamlProblem as exc:
        raise CorpusError(f"{path}:{exc.line}: {exc.message}", hint=exc.hint) from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read: {exc.strerror or exc}", hint="check the file's permissions") from None


def _parse_document(path: Path, relative: str, text: str) -> tuple[Document, dict[str, int]]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != _FENCE:
        raise CorpusError(f"{path}:1: missing front matter (the file must start with a `---` line)",
                          hint="add YAML front matter between two `---` lines: id, kind, title, jurisdiction, date")
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() == _FENCE), None)
    if end is None:
        raise CorpusError(f"{path}:1: front matter is not closed", hint="add a `---` line after the YAML block")
    front_text = "\n".join(lines[1:end])
    meta, key_lines = _parse_front_matter(path, front_text)
    missing = [key for key in REQUIRED if meta.get(key) in (None, "")]
    if missing:
        raise CorpusError(f"{path}:1: front matter is missing required field(s): {', '.join(missing)}",
                          hint=f"every document needs: {', '.join(REQUIRED)}")

    def where(key: str) -> str:
        return f"{path}:{key_lines.get(key, 1)}"

    doc_id = str(meta.pop("id"))
    kind = str(meta.pop("kind"))
    if kind not in KINDS:
        raise CorpusError(f"{where('kind')}: kind {kind!r} is not one of {', '.join(KINDS)}",
                          hint="use code, estimate or supplement")
    if doc_id != path.stem:
        raise CorpusError(f"{where('id')}: id {doc_id!r} does not match the file name {path.name!r}",
                          hint=f"rename the file to {doc_id}.md or set `id: {path.stem}`")
    date_text = str(meta.pop("date"))  # the YAML reader keeps timestamps as written, so a bad one is ours to report
    try:
        dt.date.fromisoformat(date_text)
    except ValueError as exc:
        raise CorpusError(f"{where('date')}: date: {date_text!r} is not an ISO date ({exc})",
                          hint="write dates as YYYY-MM-DD with a real month and day") from None
    refs = meta.get("references")
    if refs is not None:
        if isinstance(refs, str):
            refs = [refs]
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise CorpusError(f"{where('references')}: references must be a list of document ids",
                              hint="write `references: [doc-a, doc-b]`")
        meta["references"] = tuple(refs)
    doc = Document(id=doc_id, kind=kind, title=str(meta.pop("title")), jurisdiction=str(meta.pop("jurisdiction")),
                   date=date_text, body="\n".join(lines[end + 1:]), path=relative, meta=meta, body_line=end + 2)
    return doc, key_lines


def _parse_front_matter(path: Path, front_text: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse the YAML between the fences; lines are file lines (+1 for the opening ``---``)."""
    try:
        parsed = parse_yaml(front_text)
    except YamlProblem as exc:
        line = exc.line + 1 if exc.line is not None else 1
        problem = exc.message.removeprefix("invalid YAML: ")
        raise CorpusError(f"{path}:{line}: front matter is not valid YAML: {problem}",
                          hint=exc.hint or "fix the YAML between the `---` lines") from exc
    if not isinstance(parsed.data, dict):
        raise CorpusError(f"{path}:2: front matter must be a YAML mapping", hint="write `key: value` lines")
    key_lines = {str(path_[0]): line + 1 for path_, line in parsed.lines.items() if len(path_) == 1}
    return {str(k): v for k, v in parsed.data.items()}, key_lines


def _check_links(documents: list[Document], by_id: Mapping[str, Document], key_lines: Mapping[str, Mapping[str, int]],
                 root: Path) -> None:
    problems: list[str] = []
    for doc in documents:
        for key in LINK_FIELDS:
            value = doc.meta.get(key)
            targets = value if isinstance(value, tuple | list) else ([value] if value else [])
            unknown = [str(t) for t in targets if str(t) not in by_id]
            if unknown:
                line = key_lines[doc.id].get(key, 1)
                problems.append(f"{root / doc.path}:{line}: {key} points at unknown id(s): {', '.join(unknown)}")
    if problems:
        raise CorpusError(f"{len(problems)} dangling cross-reference(s):\n  " + "\n  ".join(problems),
                          hint="every referenced id must be the `id:` of a document in this corpus")
