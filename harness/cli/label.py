"""``harness label``: people score answers blind in a terminal, or import labels made elsewhere.

The session shows one answer at a time (question, reference, passages, answer; never its tier, host, model or
grade) in the order :func:`harness.grading.label_sample.label_queue` gives, and writes each label the moment it is
complete, so stopping (``q``, Ctrl-D, Ctrl-C) loses at most the answer on screen and the next session resumes where
this one stopped. Untrusted text (questions, answers, passages, notes) is shown as text: rich markup off, and
terminal control characters made visible, so an answer cannot restyle or take over the terminal.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from harness.cli.console import console, errors
from harness.config.criteria import CRITERIA, SCALE_MAX
from harness.errors import InputError
from harness.grading.passages import Passages, no_passages
from harness.store.labels import AnswerKey, LabelRecord, append_labels, check_labeller, labelled_by
from harness.store.records import CaseRecord

# C0 controls other than tab and newline, DEL and C1 controls: an answer must not drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
QUIT = {"q", "quit"}
SKIP = {"s", "skip"}


def safe(text: str | None) -> Text:
    """Untrusted text for the terminal: shown literally, control characters as visible escapes."""
    cleaned = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text or "")
    return Text(cleaned)


class Stop(Exception):
    """The labeller asked to stop (q, end of input, Ctrl-C)."""


class Skip(Exception):
    """The labeller skipped this answer: it stays in the queue for next time."""


Ask = Callable[[str], str]


@dataclass
class Session:
    """One labelling session over a run: who labels, the queue, and where the labels go."""

    run_dir: Path
    labeller: str
    records: dict[tuple[str, str], CaseRecord]
    passages: Passages
    ask: Ask
    out: Console
    labelled: int = 0
    skipped: int = 0

    def _answer(self, prompt: str) -> str:
        try:
            reply = self.ask(prompt)
        except (EOFError, KeyboardInterrupt):
            raise Stop from None
        reply = reply.strip()
        if reply.lower() in QUIT:
            raise Stop
        if reply.lower() in SKIP:
            raise Skip
        return reply

    def _score(self, name: str) -> int:
        criterion = CRITERIA[name]
        while True:
            reply = self._answer(f"{name} 0-{SCALE_MAX} (? anchors, s skip, q quit): ")
            if reply == "?":
                for value, anchor in enumerate(criterion.anchors):
                    self.out.print(f"  {value}: {anchor}", markup=False, highlight=False)
                continue
            if reply.isdigit() and 0 <= int(reply) <= SCALE_MAX:
                return int(reply)
            self.out.print(f"  please type a whole number 0..{SCALE_MAX}", markup=False, highlight=False)

    def _flag(self) -> bool:
        while True:
            reply = self._answer("confident but wrong? y/n: ").lower()
            if reply in {"y", "yes"}:
                return True
            if reply in {"n", "no"}:
                return False
            self.out.print("  please type y or n", markup=False, highlight=False)

    def show(self, key: AnswerKey, position: int, total: int) -> None:
        record = self.records[key[:2]]
        answer = record.generations[key[2]].text
        out = self.out
        out.print(Rule(f"answer {position} of {total}"))
        for heading, body in (("Question", record.question), ("Reference", record.reference or "(none)")):
            out.print(Text(heading, style="bold"))
            out.print(safe(body), highlight=False)
        out.print(Text("Passages", style="bold"))
        if self.passages.reason:
            out.print(Text(f"(not shown: {self.passages.reason})", style="dim"))
        elif self.passages.warning:
            out.print(Text(f"({self.passages.warning})", style="yellow"))
        for number, passage in enumerate(self.passages.of(record) if not self.passages.reason else [], 1):
            line = Text(f"[{number}] ", style="cyan")
            line.append(safe(passage))
            out.print(line, highlight=False)
        out.print(Text("Answer", style="bold"))
        out.print(safe(answer), highlight=False)
        out.print(Text("Criteria: " + "; ".join(f"{c.name}: {c.asks}" for c in CRITERIA.values()), style="dim"))

    def label_one(self, key: AnswerKey, position: int, total: int) -> bool:
        """Show one answer and take its label; True when written, False when skipped."""
        self.show(key, position, total)
        try:
            scores = {name: self._score(name) for name in CRITERIA}
            flag = self._flag()
            note = self._answer("note (Enter for none): ")
        except Skip:
            self.skipped += 1
            self.out.print("  skipped; it stays in your queue", markup=False, highlight=False)
            return False
        label = LabelRecord(case_id=key[0], variant=key[1], tier=key[2], labeller=self.labeller, scores=scores,
                            confident_but_wrong=flag, note=note or None)
        append_labels(self.run_dir, [label])
        self.labelled += 1
        return True


def run_session(session: Session, queue: list[AnswerKey], n: int) -> None:
    """Ask for labels from ``queue`` until ``n`` are written, the queue ends, or the labeller stops."""
    total = min(n, len(queue))
    for key in queue:
        if session.labelled >= n:
            break
        try:
            session.label_one(key, session.labelled + 1, total)
        except Stop:
            session.out.print("\nstopped; run the same command to continue", markup=False, highlight=False)
            break


def load_passages(run_dir: Path, suite_path: str | None, fingerprint: str | None) -> Passages:
    """The run's passages from its suite and corpus, or why they cannot be shown (the labelling goes on)."""
    from harness.errors import HarnessError
    from harness.grading.passages import rebuild_passages
    from harness.run.session import load_suite_and_corpus

    if not suite_path:
        return no_passages("the run does not name its suite file")
    path = Path(suite_path)
    if not path.is_file():
        return no_passages(f"the suite file {suite_path} is not here, so the corpus cannot be found")
    try:
        suite, corpus = load_suite_and_corpus(path)
    except HarnessError as exc:
        return no_passages(f"the suite or corpus did not load: {exc.message}")
    return rebuild_passages(suite, corpus, fingerprint)


def label(
    run_dir: Annotated[Path, typer.Argument(help="a run directory; or `import` RUN_DIR FILE", show_default=False)],
    import_args: Annotated[list[Path] | None, typer.Argument(help="with `import`: RUN_DIR FILE.csv|.jsonl",
                                                              show_default=False)] = None,
    labeller: Annotated[str | None, typer.Option("--labeller", help="who labels (default: your login name)")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="answers to label in this session")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="the queue's seed; the same seed gives everyone one order")] = 0,
) -> None:
    """Label answers blind in the terminal (stop any time, run again to resume), or `label import RUN_DIR FILE`."""
    if str(run_dir) == "import" and import_args:
        if len(import_args) != 2:
            raise InputError("`harness label import` takes RUN_DIR and FILE",
                             hint="e.g. harness label import reports/nightly/RUN labels.csv")
        _import(import_args[0], import_args[1])
        return
    if import_args:
        raise InputError(f"unexpected argument(s) after {run_dir}: {' '.join(map(str, import_args))}",
                         hint="label with `harness label RUN_DIR`; import with `harness label import RUN_DIR FILE`")
    _label(run_dir, labeller, n, seed)


def _label(run_dir: Path, labeller: str | None, n: int, seed: int) -> None:
    from harness.grading.label_sample import graded_answers, label_queue
    from harness.store.loaded import load_run

    name = check_labeller(labeller or getpass.getuser())
    view = load_run(run_dir)
    done = labelled_by(run_dir, name)
    queue = label_queue(graded_answers(view.records), name, done, None, seed)
    if not queue:
        errors.print(f"nothing to label: {name} has labelled {len(done)} answer(s), and no graded answer is left",
                     markup=False, highlight=False)
        return
    suite = view.manifest.suite
    fingerprint = view.manifest.corpus.fingerprint if view.manifest.corpus else None
    passages = load_passages(run_dir, suite.path if suite else None, fingerprint)
    session = Session(run_dir, name, {r.key: r for r in view.records}, passages,
                      ask=lambda prompt: console.input(Text(prompt)), out=console)
    console.print(f"{name}: {len(done)} labelled before; {len(queue)} graded answer(s) left; "
                  f"this session asks up to {n}. Type q to stop; labels are saved one by one.",
                  markup=False, highlight=False)
    run_session(session, queue, n)
    console.print(f"{name}: {session.labelled} labelled this session ({len(done) + session.labelled} in all), "
                  f"{session.skipped} skipped, {len(queue) - session.labelled} left",
                  markup=False, highlight=False)


def _import(run_dir: Path, path: Path) -> None:
    from harness.grading.label_sample import graded_answers
    from harness.store.label_import import import_labels
    from harness.store.loaded import load_run

    view = load_run(run_dir)
    labels = import_labels(run_dir, path, graded_answers(view.records))
    people = sorted({label.labeller for label in labels})
    console.print(f"imported {len(labels)} label(s) by {', '.join(people)} into {run_dir}/labels.jsonl",
                  markup=False, highlight=False)
