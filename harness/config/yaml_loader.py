"""Load YAML files keeping line numbers, and turn pydantic errors into ``file:line: field: message``.

Parsing, its caps and the line index live in ``yaml_positions``; this module adds the file and the pydantic side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.config.yaml_positions import MAX_YAML_BYTES, LinePath, YamlProblem, decode_utf8, line_of, parse_yaml
from harness.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)


class YamlDocument:
    """Parsed YAML data plus the line of every node, for error messages."""

    def __init__(self, path: Path, data: Any, lines: dict[LinePath, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line_of(self, location: LinePath) -> int | None:
        return line_of(self.lines, location)

    def error(self, message: str, location: LinePath, *, hint: str = "") -> ConfigError:
        return ConfigError(
            message, path=str(self.path), line=self.line_of(location), field=format_location(location), hint=hint
        )


def format_location(location: LinePath) -> str:
    """``('cases', 3, 'relevant')`` -> ``cases[3].relevant``."""
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: str | Path) -> YamlDocument:
    """Parse a YAML file safely, raising ConfigError with the line for every problem the parser finds."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError as exc:
        raise ConfigError("file not found", path=str(path), hint="check the path") from exc
    except IsADirectoryError as exc:
        raise ConfigError("is a directory, not a YAML file", path=str(path), hint="pass the YAML file") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", path=str(path)) from exc
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(
            f"file is larger than {MAX_YAML_BYTES // 1_000_000} MB",
            path=str(path),
            hint="a suite or fleet file this large is almost certainly not the file you meant; split it",
        )
    try:
        parsed = parse_yaml(decode_utf8(raw))
    except YamlProblem as exc:
        raise ConfigError(exc.message, path=str(path), line=exc.line, hint=exc.hint) from exc
    return YamlDocument(path, parsed.data, parsed.lines)


def validate(model: type[Model], document: YamlDocument) -> Model:
    """Validate parsed YAML against a pydantic model; the first error becomes a ConfigError with file:line."""
    if not isinstance(document.data, dict):
        raise ConfigError(
            "expected a mapping at the top level",
            path=str(document.path),
            line=1,
            hint=f"see the README for the {model.__name__} format",
        )
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = tuple(first["loc"])
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = f"unknown key {location[-1]!r}"
            hint = f"allowed keys here: {_allowed_keys(model, location[:-1])}"
        else:
            hint = "" if len(exc.errors()) == 1 else f"{len(exc.errors()) - 1} more error(s) after this one"
        raise document.error(message, location, hint=hint) from exc


def _allowed_keys(model: type[BaseModel], location: LinePath) -> str:
    """Names the fields allowed at ``location`` by walking the model's field annotations."""
    current: Any = model
    for part in location:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return "see the README"
        current = _model_in(fields[part].annotation)
    fields = getattr(current, "model_fields", None)
    return ", ".join(sorted(fields)) if fields else "see the README"


def _model_in(annotation: Any) -> Any:
    """The first BaseModel class found inside an annotation such as ``list[Case] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
