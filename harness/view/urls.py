"""Where each page lives: under the server's routes, or as files of a static bundle (relative links, so the bundle
opens from ``file://`` or any static host). Templates build every link through one of these, never by hand.

A case's id is untrusted text: on the server it travels in the query string (URL-encoded); in a bundle a case page
is named by its record's position, so no id ever becomes a file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from harness.view.catalog import RunRef


def _query(params: dict[str, str]) -> str:
    return "?" + urlencode(params) if params else ""


def _run_path(ref: RunRef) -> str:
    return f"runs/{quote(ref.suite)}/{quote(ref.run_id)}"


class ServerUrls:
    static = False
    labelling = True

    def __init__(self, read_only: bool = False) -> None:
        self.labelling = not read_only

    def runs(self, **params: str) -> str:
        return "/" + _query({k: v for k, v in params.items() if v})

    def run(self, ref: RunRef) -> str:
        return f"/{_run_path(ref)}"

    def cases(self, ref: RunRef, params: dict[str, str] | None = None) -> str:
        return f"/{_run_path(ref)}/cases" + _query(params or {})

    def cases_ready(self, ref: RunRef) -> str:
        return f"/{_run_path(ref)}/cases/ready"

    def case(self, ref: RunRef, case_id: str, variant: str, index: int) -> str:
        return f"/{_run_path(ref)}/case" + _query({"case": case_id, "variant": variant})

    def report(self, ref: RunRef, anchor: str = "") -> str:
        return f"/{_run_path(ref)}/report.html" + (f"#{quote(anchor)}" if anchor else "")

    def diff(self, a: RunRef, b: RunRef) -> str:
        return "/diff" + _query({"a": str(a), "b": str(b)})

    def diff_case(self, a: RunRef, b: RunRef, case_id: str, variant: str, index: int) -> str:
        return "/diff/case" + _query({"a": str(a), "b": str(b), "case": case_id, "variant": variant})

    def label(self, ref: RunRef, labeller: str = "") -> str:
        return f"/{_run_path(ref)}/label" + _query({"labeller": labeller} if labeller else {})

    def asset(self, name: str) -> str:
        return f"/static/{quote(name)}"

    def has_diff(self, a: RunRef, b: RunRef) -> bool:
        return True  # the server diffs any two runs on request


@dataclass
class StaticUrls:
    """Links between the files of a bundle, relative to the page at ``depth`` folders below the bundle's root."""

    depth: int = 0
    diff_pairs: dict[tuple[RunRef, RunRef], int] | None = None
    static = True
    labelling = False

    @property
    def root(self) -> str:
        return "../" * self.depth

    def at(self, depth: int) -> StaticUrls:
        return StaticUrls(depth, self.diff_pairs)

    def runs(self, **params: str) -> str:
        return f"{self.root}index.html"

    def run(self, ref: RunRef) -> str:
        return f"{self.root}{_run_path(ref)}/index.html"

    def cases(self, ref: RunRef, params: dict[str, str] | None = None) -> str:
        return f"{self.root}{_run_path(ref)}/cases.html"

    def cases_ready(self, ref: RunRef) -> str:
        return ""  # a bundle's table is whole

    def case(self, ref: RunRef, case_id: str, variant: str, index: int) -> str:
        return f"{self.root}{_run_path(ref)}/case/{index}.html"

    def report(self, ref: RunRef, anchor: str = "") -> str:
        return f"{self.root}{_run_path(ref)}/report.html" + (f"#{quote(anchor)}" if anchor else "")

    def diff(self, a: RunRef, b: RunRef) -> str:
        return f"{self.root}diff/{self.pair(a, b)}.html"

    def diff_case(self, a: RunRef, b: RunRef, case_id: str, variant: str, index: int) -> str:
        return f"{self.root}diff/{self.pair(a, b)}/{index}.html"

    def label(self, ref: RunRef, labeller: str = "") -> str:
        return ""

    def asset(self, name: str) -> str:
        return f"{self.root}assets/{quote(name)}"

    def pair(self, a: RunRef, b: RunRef) -> int:
        return (self.diff_pairs or {})[(a, b)]

    def has_diff(self, a: RunRef, b: RunRef) -> bool:
        return (a, b) in (self.diff_pairs or {})


Urls = ServerUrls | StaticUrls
