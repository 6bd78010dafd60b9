"""Blind labelling in the browser: the per-session CSRF token, and the form -> label.

Which answer comes next is :func:`harness.grading.label_sample.label_queue`, the same order as the terminal labeller.

Labels are written through :func:`harness.store.labels.append_labels`, the same code as the terminal labeller, so
a label is checked (every criterion 0..3, the labeller an id) and never written twice for one answer and person.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.config.criteria import CRITERIA, SCALE_MAX
from harness.errors import InputError
from harness.store.labels import AnswerKey, LabelRecord, check_labeller

QUEUE_SIZE = 50
NOTE_MAX = 2000


@dataclass
class Sessions:
    """Per-browser-session CSRF tokens (an HMAC of the session id under a key made at start), and the opaque ids
    that stand for the answer on screen, so the page never names its tier."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    pending: dict[str, tuple[str, AnswerKey]] = field(default_factory=dict)  # ticket -> (run, answer)

    def new_session(self) -> str:
        return secrets.token_urlsafe(24)

    def token(self, session: str) -> str:
        return hmac.new(self.key, session.encode(), hashlib.sha256).hexdigest()

    def check(self, session: str | None, token: str | None) -> None:
        if not session or not token or not hmac.compare_digest(self.token(session), token):
            raise InputError("the label form's session token is missing or wrong",
                             hint="reload the labelling page and label again")

    def ticket(self, run: str, key: AnswerKey) -> str:
        for ticket, held in self.pending.items():
            if held == (run, key):
                return ticket
        ticket = secrets.token_urlsafe(12)
        self.pending[ticket] = (run, key)
        return ticket

    def redeem(self, run: str, ticket: str) -> AnswerKey:
        held = self.pending.get(ticket)
        if held is None or held[0] != run:
            raise InputError("this answer is no longer on offer", hint="reload the labelling page")
        return held[1]

    def done(self, ticket: str) -> None:
        self.pending.pop(ticket, None)


def label_from_form(form: Mapping[str, str], key: AnswerKey) -> LabelRecord:
    """A label from the posted form: every criterion 0..3, the flag, a note; a missing or bad field is an InputError."""
    labeller = check_labeller(form.get("labeller", ""))
    scores = {}
    for name in CRITERIA:
        text = form.get(f"score_{name}", "")
        if not text.isdigit() or not 0 <= int(text) <= SCALE_MAX:
            raise InputError(f"{name}: choose a score from 0 to {SCALE_MAX}", hint="score every criterion")
        scores[name] = int(text)
    note = form.get("note", "").strip()
    if len(note) > NOTE_MAX:
        raise InputError(f"the note is {len(note)} characters long", hint=f"keep it under {NOTE_MAX}")
    return LabelRecord(case_id=key[0], variant=key[1], tier=key[2], labeller=labeller, scores=scores,
                       confident_but_wrong=form.get("cbw", "") == "1", note=note or None)
