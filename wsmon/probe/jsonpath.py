"""A small JSON path: ``result``, ``$.result.number``, ``params.result[0].hash``.

Enough to point at one value of a JSON-RPC answer; filters and wildcards are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MISSING", "JsonPath", "to_number"]

MISSING = object()
_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


@dataclass(frozen=True, slots=True)
class JsonPath:
    text: str
    keys: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        path = text.strip()
        rest = path[1:] if path.startswith("$") else "." + path if path[:1] != "[" else path
        keys: list[str | int] = []
        pos = 0
        for match in _TOKEN.finditer(rest):
            if match.start() != pos:
                break
            name, index, quoted1, quoted2 = match.groups()
            keys.append(int(index) if index is not None else name or quoted1 or quoted2 or "")
            pos = match.end()
        if pos != len(rest) or (not keys and path != "$"):
            raise ValueError(
                f"invalid JSON path {text!r}: use dotted keys and [index], e.g. result or $.params.result[0]"
            )
        return cls(text=text, keys=tuple(keys))

    def find(self, document: Any) -> Any:
        """The value at this path, or MISSING."""
        node = document
        for key in self.keys:
            if isinstance(key, int):
                if not isinstance(node, list) or key >= len(node):
                    return MISSING
            elif not isinstance(node, dict) or key not in node:
                return MISSING
            node = node[key]
        return node


def to_number(value: Any) -> float | None:
    """A JSON value as a number: numbers, numeric strings and ``0x…`` hex (JSON-RPC quantities)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # a JSON integer beyond a float's range
            return None
    if isinstance(value, str):
        text = value.strip()
        try:
            if text[:2].lower() == "0x":
                return float(int(text[2:], 16))
            return float(text)
        except (ValueError, OverflowError):  # OverflowError: a hex number beyond a float's range
            return None
    return None
