"""The viewer's web app (Starlette): routes to the pages, the security headers, and the labelling endpoint.

Safety: every response carries a Content-Security-Policy that allows only our own script and style files (no inline
script, no other origin); label writes need the session's CSRF token and a same-origin request; a run named in a URL
is checked like ``--run-id`` and kept inside the reports folder (:class:`harness.view.catalog.Catalog`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harness.errors import HarnessError, InputError
from harness.grading.label_sample import label_queue
from harness.store.labels import append_labels, check_labeller, labelled_by
from harness.view.case_detail import case_detail
from harness.view.catalog import Catalog, NotFound, RunRef, parse_ref
from harness.view.labelling import NOTE_MAX, QUEUE_SIZE, Sessions, label_from_form
from harness.view.pages import FIRST_PAGE_WAIT_S, SMALL_RUN_BYTES, STATIC, Outliner, Pages, PassageLoader
from harness.view.rows import SORTABLE, CaseQuery
from harness.view.urls import ServerUrls

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# The run's own report.html is self-contained: its styles are inline and its charts data: images; no script at all.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'"
SESSION_COOKIE = "harness_view_session"
MAX_FORM_BYTES = 64 * 1024
LABEL_SEED = 0
READY_WAIT_S = 20.0


class Forbidden(InputError):
    """A request the viewer refuses on principle (HTTP 403): a label while read-only, or from another origin."""


class SecurityHeaders:
    """Adds the CSP and friends to every response (a page may set a stricter CSP of its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = {
                    b"content-security-policy": CSP.encode(), b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"same-origin", b"x-frame-options": b"DENY",
                    b"cache-control": b"no-store",
                }  # fmt: skip
                headers += [(name, value) for name, value in extra.items() if name not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class Viewer:
    """The app's state: the catalog, the page builder, the labelling sessions, and whether labelling is on."""

    def __init__(self, reports_dir: Path, *, read_only: bool = False, outline: Outliner | None = None,
                 passages: PassageLoader | None = None, first_page_wait: float = FIRST_PAGE_WAIT_S,
                 small_run_bytes: int = SMALL_RUN_BYTES) -> None:
        # The cases table of each run is kept on disk beside it, unless nothing may be written.
        self.catalog = Catalog(reports_dir, write_index=not read_only)
        self.pages = Pages(self.catalog, outline, passages, first_page_wait=first_page_wait,
                           small_run_bytes=small_run_bytes)
        self.urls = ServerUrls(read_only=read_only)
        self.read_only = read_only
        self.sessions = Sessions()
        self.skipped: dict[tuple[str, str], set[tuple[str, str, str]]] = {}

    # ------------------------------------------------------------------------------------------ helpers

    def _ref(self, request: Request) -> RunRef:
        ref = RunRef(request.path_params["suite"], request.path_params["run_id"])
        self.catalog.path(ref)  # checked like --run-id, inside the reports folder
        return ref

    def _page(self, html: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(html, status_code=status)

    def error(self, exc: HarnessError, status: int = 400) -> HTMLResponse:
        return self._page(self.pages.error(self.urls, exc.message, exc.hint, status), status)

    async def _run(self, build: Any, *args: Any) -> str:
        # Loading a big run parses every record: off the event loop, so other pages keep being served.
        return await asyncio.to_thread(build, *args)

    # ------------------------------------------------------------------------------------------ routes

    async def runs(self, request: Request) -> Response:
        params = request.query_params
        return self._page(await self._run(self.pages.runs, self.urls, params.get("suite", ""),
                                          params.get("status", "")))

    async def run(self, request: Request) -> Response:
        ref = self._ref(request)
        has_report = (self.catalog.path(ref) / "report.html").is_file()
        return self._page(await self._run(self.pages.run, self.urls, ref, has_report))

    async def report(self, request: Request) -> Response:
        path = self.catalog.path(self._ref(request)) / "report.html"
        if not path.is_file():
            raise InputError("this run has no report.html", hint="write it with `harness report RUN_DIR`")
        headers = {"content-security-policy": REPORT_CSP}
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=headers)

    async def cases(self, request: Request) -> Response:
        ref = self._ref(request)
        query = CaseQuery.parse(request.query_params, SORTABLE)
        return self._page(await self._run(self.pages.cases, self.urls, ref, query))

    async def cases_ready(self, request: Request) -> Response:
        """Whether the run's table is built, answered when it is or after ``READY_WAIT_S`` (a preview page asks)."""
        ready = await asyncio.to_thread(self.pages.rows_ready, self._ref(request), READY_WAIT_S)
        return JSONResponse({"ready": ready})

    async def case(self, request: Request) -> Response:
        ref = self._ref(request)
        params = request.query_params
        return self._page(await self._run(self.pages.case, self.urls, ref, params.get("case", ""),
                                          params.get("variant", "")))

    async def diff(self, request: Request) -> Response:
        a, b = self._pair(request)
        return self._page(await self._run(self.pages.diff, self.urls, a, b))

    async def diff_case(self, request: Request) -> Response:
        a, b = self._pair(request)
        params = request.query_params
        return self._page(await self._run(self.pages.diff_case, self.urls, a, b, params.get("case", ""),
                                          params.get("variant", "")))

    def _pair(self, request: Request) -> tuple[RunRef, RunRef]:
        a = parse_ref(request.query_params.get("a", ""), "a")
        b = parse_ref(request.query_params.get("b", ""), "b")
        self.catalog.path(a)
        self.catalog.path(b)
        return a, b

    # ------------------------------------------------------------------------------------------ labelling

    async def label(self, request: Request) -> Response:
        if self.read_only:
            raise Forbidden("labelling is off: the viewer was started with --read-only",
                             hint="restart `harness view` without --read-only to label")
        ref = self._ref(request)
        if request.method == "POST":
            return await self._save_label(request, ref)
        labeller = request.query_params.get("labeller", "")
        session = request.cookies.get(SESSION_COOKIE) or self.sessions.new_session()
        if labeller:
            check_labeller(labeller)
            skip = request.query_params.get("skip", "")
            if skip:
                key = self.sessions.redeem(str(ref), skip)
                self.skipped.setdefault((str(ref), labeller), set()).add(key)
        html = await self._run(self._label_page, ref, labeller, session, "")
        response = self._page(html)
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict", path="/")
        return response

    def _label_page(self, ref: RunRef, labeller: str, session: str, message: str) -> str:
        context: dict[str, Any] = {"ref": ref, "labeller": labeller, "item": None, "done": 0, "remaining": 0,
                                   "csrf": "", "ticket": "", "message": message}
        if labeller:
            # From the cases table and one record read at its offset: a label saved changes labels.jsonl only, so
            # the next answer comes without loading the whole run again.
            labelled = labelled_by(self.catalog.path(ref), labeller)
            skipped = self.skipped.get((str(ref), labeller), set())
            queue = label_queue(self.pages.graded_answers(ref), labeller, labelled | skipped, QUEUE_SIZE, LABEL_SEED)
            context.update(done=len(labelled), remaining=len(queue))
            if queue:
                case_id, variant, tier = queue[0]
                record, _ = self.pages.record(ref, case_id, variant)
                detail = case_detail(self.catalog.manifest(ref), record, [], self.pages.run_passages(ref))
                text = record.generations[tier].text or ""
                context.update(
                    item={"record": record, "passages": detail.passages, "passages_note": detail.passages_note,
                          "text": text},
                    csrf=self.sessions.token(session),
                    ticket=self.sessions.ticket(str(ref), queue[0]),
                )
        return self.pages.render("label.html", self.urls, **context)

    async def _save_label(self, request: Request, ref: RunRef) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise Forbidden("a label may only be posted from the viewer's own pages", hint="label from the viewer")
        fields = await _form_fields(request)
        session = request.cookies.get(SESSION_COOKIE)
        self.sessions.check(session, fields.get("csrf"))
        assert session is not None
        ticket = fields.get("ticket", "")
        key = self.sessions.redeem(str(ref), ticket)
        labeller = check_labeller(fields.get("labeller", ""))
        try:
            label = label_from_form(fields, key)
            await asyncio.to_thread(append_labels, self.catalog.path(ref), [label])
        except InputError as exc:
            html = await self._run(self._label_page, ref, labeller, session, f"{exc.message} ({exc.hint})")
            return self._page(html, 400)
        self.sessions.done(ticket)
        return RedirectResponse(self.urls.label(ref, labeller), status_code=303)


async def _form_fields(request: Request) -> dict[str, str]:
    """A posted urlencoded form (the only kind the label page sends), read within a size limit."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise InputError("a label must be posted as a form", hint="label from the viewer's page")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InputError("the label form is too large", hint=f"keep the note under {NOTE_MAX} characters")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"the label form cannot be read: {exc}", hint="label from the viewer's page") from None


def create_app(reports_dir: Path, *, read_only: bool = False, outline: Outliner | None = None,
               passages: PassageLoader | None = None, first_page_wait: float = FIRST_PAGE_WAIT_S,
               small_run_bytes: int = SMALL_RUN_BYTES) -> Starlette:
    viewer = Viewer(reports_dir, read_only=read_only, outline=outline, passages=passages,
                    first_page_wait=first_page_wait, small_run_bytes=small_run_bytes)

    async def harness_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HarnessError)
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, Forbidden) else 400
        return viewer.error(exc, status)

    run = "/runs/{suite}/{run_id}"
    routes = [
        Route("/", viewer.runs),
        Route(run, viewer.run),
        Route(f"{run}/report.html", viewer.report),
        Route(f"{run}/cases", viewer.cases),
        Route(f"{run}/cases/ready", viewer.cases_ready),
        Route(f"{run}/case", viewer.case),
        Route(f"{run}/label", viewer.label, methods=["GET", "POST"]),
        Route("/diff", viewer.diff),
        Route("/diff/case", viewer.diff_case),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)],
                    exception_handlers={HarnessError: harness_error})
    app.state.viewer = viewer
    return app
