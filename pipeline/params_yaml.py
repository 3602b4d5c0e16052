"""YAML text read as params: the safe loader, with limits a params file never reaches.

A params file is small and hand-written, so three things it may hold are refused in one sentence
that names the line: a key repeated in one mapping (YAML would keep the later value silently),
nesting deeper than ``MAX_DEPTH`` (the composer recurses once per level), and aliases that expand
to more than ``MAX_VALUES`` values (a "billion laughs" file: nine aliases of nine fill gigabytes
once copied or validated). Sizes are counted on the composed node graph, where an alias is one
shared node, so the check itself takes time and memory in proportion to the text.
"""

from __future__ import annotations

from typing import Any

import yaml

from pipeline.errors import ConfigError

MAX_DEPTH = 64
MAX_VALUES = 100_000
_OPEN = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken, yaml.BlockSequenceStartToken,
         yaml.BlockMappingStartToken)
_CLOSE = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise _Refused(f"the key '{key_node.value}' appears twice in one section (lines {seen[key]} "
                                   f"and {key_node.start_mark.line + 1}), and only the later would count; keep one")
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class _Refused(Exception):
    """A limit of this module, raised as a ``ConfigError`` naming the source."""


def read_yaml(text: str, source: str) -> Any:
    """Parse ``text`` as safe YAML; a refused or invalid document is one ``ConfigError`` naming ``source``."""
    try:
        _check_depth(text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_size(node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except _Refused as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{source} is not valid YAML ({problem}{where}); fix the file") from None


def _check_depth(text: str) -> None:
    """Count nesting on the token stream (the scanner does not recurse, the composer would)."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(f"line {token.start_mark.line + 1} nests deeper than {MAX_DEPTH} levels; "
                               "params need a few, so flatten it")
        elif isinstance(token, _CLOSE):
            depth -= 1


def _check_size(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to more than ``MAX_VALUES`` values, naming the line
    of the smallest node that is still too large."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:  # depth is bounded by _check_depth, each node is counted once
        if id(node) not in sizes:
            children = [] if isinstance(node, yaml.ScalarNode) else (
                node.value if isinstance(node, yaml.SequenceNode) else [part for pair in node.value for part in pair])
            sizes[id(node)] = 1 + sum(size(child) for child in children)
        return sizes[id(node)]

    if size(root) <= MAX_VALUES:
        return
    node = root
    while True:
        children = node.value if isinstance(node, yaml.SequenceNode) else [value for _, value in node.value]
        bigger = [child for child in children if not isinstance(child, yaml.ScalarNode) and size(child) > MAX_VALUES]
        if not bigger:
            break
        node = bigger[0]
    raise _Refused(f"line {node.start_mark.line + 1} expands to more than {MAX_VALUES} values through YAML "
                   "aliases (*name); write the values out instead")
