"""Load YAML keeping line numbers, and turn pydantic errors into ``file:line: field: message``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)
LinePath = tuple[str | int, ...]


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that records the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if key in seen:
            raise ConfigError(
                f"duplicate key {key!r} (first at line {seen[key]})",
                path=getattr(loader, "source_path", None),
                line=key_node.start_mark.line + 1,
                hint="remove one of the two entries",
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _index_lines(node: yaml.Node, prefix: LinePath, lines: dict[LinePath, int]) -> None:
    lines[prefix] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*prefix, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*prefix, key), lines)
            lines[(*prefix, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*prefix, index), lines)


class YamlDocument:
    """Parsed YAML data plus the line of every node, for error messages."""

    def __init__(self, path: Path, data: Any, lines: dict[LinePath, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line_of(self, location: LinePath) -> int | None:
        """Line of the deepest node on ``location`` that has one (pydantic locations may go deeper than YAML)."""
        for end in range(len(location), -1, -1):
            line = self.lines.get(tuple(location[:end]))
            if line is not None:
                return line
        return None

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
    """Parse a YAML file, raising ConfigError with the line for syntax errors and duplicate keys."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", path=str(path), hint="check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", path=str(path)) from exc
    loader = _LineLoader(text)
    loader.source_path = str(path)  # type: ignore[attr-defined]
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(
            f"invalid YAML: {exc.problem or exc.context}",
            path=str(path),
            line=mark.line + 1 if mark else None,
            hint="fix the YAML syntax (indentation, quotes, colons)",
        ) from exc
    finally:
        loader.dispose()
    lines: dict[LinePath, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return YamlDocument(path, data, lines)


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
