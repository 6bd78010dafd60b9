"""The one YAML reader: safe loading with caps, and the line of every node for error messages.

Suites, fleet files and corpus front matter all go through here, so the caps that stop hostile input hold everywhere:

- the text must be UTF-8 (a bad byte is reported with its line);
- the file may not exceed ``MAX_YAML_BYTES``;
- aliases may not expand the document past ``MAX_NODES`` nodes, and may not refer to themselves. Aliases are shared
  references in the parsed graph, so the count is made on the graph, memoised per node, before anything walks it.
- timestamps stay strings, so a date such as ``2024-13-45`` is checked (and reported) by the caller, not raised by
  PyYAML as a bare ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

LinePath = tuple[str | int, ...]

MAX_YAML_BYTES = 2_000_000
MAX_NODES = 200_000


class YamlProblem(Exception):
    """A YAML text cannot be accepted; callers turn it into their own input error with the file name.

    Args:
        message: what is wrong.
        line: 1-based line in the text given to the parser (callers add their own offset), when known.
        hint: what to do about it.
    """

    def __init__(self, message: str, *, line: int | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.hint = hint


@dataclass(frozen=True)
class PositionedYaml:
    """Parsed data plus the 1-based line of every mapping key and sequence item, keyed by its path."""

    data: Any
    lines: dict[LinePath, int]

    def line_of(self, location: LinePath) -> int | None:
        return line_of(self.lines, location)


def line_of(lines: dict[LinePath, int], location: LinePath) -> int | None:
    """Line of the deepest node on ``location`` that has one (pydantic locations may go deeper than YAML)."""
    for end in range(len(location), -1, -1):
        line = lines.get(tuple(location[:end]))
        if line is not None:
            return line
    return None


class _SafeLineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and keeps timestamps as the text written."""


def _construct_mapping(loader: _SafeLineLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key such as `? [a, b]`
            raise YamlProblem(
                "a mapping key must be a plain value, not a list or mapping",
                line=key_node.start_mark.line + 1,
                hint="write keys as plain strings",
            ) from None
        if first is not None:
            raise YamlProblem(
                f"duplicate key {key!r} (first at line {first})",
                line=key_node.start_mark.line + 1,
                hint="remove one of the two entries",
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


def _construct_timestamp_as_text(loader: _SafeLineLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_SafeLineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_SafeLineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_as_text)


def decode_utf8(data: bytes) -> str:
    """Decode UTF-8 text (a leading BOM is dropped), reporting the line of the first undecodable byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlProblem(
            f"byte 0x{data[exc.start]:02x} at line {line} is not valid UTF-8 (the expected encoding)",
            line=line,
            hint="save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
        ) from None


def parse_yaml(text: str, *, max_nodes: int = MAX_NODES) -> PositionedYaml:
    """Parse one YAML document safely and index the line of every node.

    Raises:
        YamlProblem: syntax errors, duplicate keys, unhashable keys, alias expansion past ``max_nodes``, self-referring
            aliases, nesting too deep for the parser.
    """
    try:
        loader = _SafeLineLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character; PyYAML gives only the character offset
        line = text[: exc.position].count("\n") + 1
        raise YamlProblem(
            f"character #x{exc.character:04x} at line {line} is not allowed in YAML",
            line=line,
            hint="remove the control character (or quote it as an escape inside double quotes)",
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return PositionedYaml(None, {})
        _check_expansion(node, max_nodes)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlProblem(
            f"invalid YAML: {exc.problem or exc.context}",
            line=mark.line + 1 if mark else None,
            hint="fix the YAML syntax (indentation, quotes, colons)",
        ) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    except RecursionError:
        raise YamlProblem("the YAML is nested too deeply", hint="flatten the structure") from None
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML's own constructors cannot build, e.g. a huge int
        raise YamlProblem(f"invalid value: {exc}", hint="quote the value or write a smaller number") from None
    finally:
        loader.dispose()
    lines: dict[LinePath, int] = {}
    _index_lines(node, lines)
    return PositionedYaml(data, lines)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, max_nodes: int) -> None:
    """Count the nodes the document would have with every alias expanded, without expanding it.

    Iterative (post-order with memo), so neither depth nor sharing costs more than one visit per distinct node.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > max_nodes:
                raise YamlProblem(
                    f"aliases expand this document past {max_nodes} nodes",
                    line=node.start_mark.line + 1,
                    hint="write the values out instead of nesting anchors and aliases (`&name` / `*name`)",
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlProblem(
                "an alias refers to the node that contains it",
                line=node.start_mark.line + 1,
                hint="a suite cannot be recursive; remove the self-referring `*alias`",
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _index_lines(root: yaml.Node, lines: dict[LinePath, int]) -> None:
    """Record each node's line under its path; bounded by the expansion check, and iterative so depth is safe."""
    stack: list[tuple[yaml.Node, LinePath]] = [(root, ())]
    while stack:
        node, prefix = stack.pop()
        lines.setdefault(prefix, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark.line)
                # a key's line beats its value's: a block value starts on the next line
                lines[(*prefix, key)] = key_node.start_mark.line + 1
                stack.append((value_node, (*prefix, key)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*prefix, index)))
