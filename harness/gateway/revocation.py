"""The jti deny-list: a text file of revoked token ids, one per line (``#`` comments), re-read when it changes."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from harness.errors import InputError


class DenyList:
    """Revoked jtis from ``path``, re-read when the file's mtime, size or inode changes.

    A stat at most every ``check_every_s`` keeps the cost off the request path; a file that disappears while running
    keeps the last list (failing open on a deletion would silently un-revoke every token).

    Raises:
        InputError: at construction, when the file is missing or unreadable.
    """

    def __init__(self, path: Path, *, check_every_s: float = 0.5) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self._signature: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._jtis: frozenset[str] = frozenset()
        try:
            self._reload()
        except OSError as exc:
            raise InputError(
                f"{path}: cannot read the jti deny-list ({exc.__class__.__name__})",
                hint="create it (an empty file is fine) or drop --deny-list",
            ) from exc

    def current(self) -> frozenset[str]:
        """The revoked jtis, re-read first if the file changed since the last look."""
        now = time.monotonic()
        if now - self._checked >= self.check_every_s:
            self._checked = now
            with contextlib.suppress(OSError):
                self._reload()
        return self._jtis

    def _reload(self) -> None:
        info = self.path.stat()
        signature = (info.st_mtime_ns, info.st_size, info.st_ino)
        if signature == self._signature:
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        self._jtis = frozenset(s for line in lines if (s := line.split("#", 1)[0].strip()))
        self._signature = signature
