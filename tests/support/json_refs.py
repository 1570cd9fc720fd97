"""`$ref`s in a JSON document (OpenAPI, AsyncAPI): every one used, and what one points at."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def refs(node: Any) -> Iterator[str]:
    """Every `$ref` string anywhere below `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def lookup(document: dict[str, Any], ref: str) -> Any:
    """What a local `#/...` reference points at (KeyError when it points nowhere)."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node
