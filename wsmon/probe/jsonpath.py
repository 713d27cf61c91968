"""A small JSON path: ``result``, ``$.result.number``, ``params.result[0].hash``.

Enough to point at one value of a JSON-RPC answer; filters and wildcards are not supported.
``load_json`` and ``extract_number`` read a WebSocket message with it: the probe's message
steps and persistent mode's subscriptions take their numbers from here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MISSING", "NOT_JSON", "JsonPath", "extract_number", "load_json", "to_number"]

MISSING = object()  # JsonPath.find: nothing at this path
NOT_JSON = object()  # load_json: the message is not a JSON document
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

    def number(self, document: Any) -> float | None:
        """The value at this path as a number (``to_number``), or None."""
        return to_number(self.find(document))


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


def load_json(message: bytes | str) -> Any:
    """The JSON document a message holds, or NOT_JSON.

    Bytes are decoded as JSON text (UTF-8, -16 or -32); invalid UTF-8 and nesting deeper than
    the parser goes (RecursionError) count as not JSON.
    """
    try:
        return json.loads(message)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return NOT_JSON


def extract_number(path: JsonPath, message: bytes | str) -> float | None:
    """The number at ``path`` in a JSON message; None when it is not JSON or has no number there.

    Callers that must tell the two apart call ``load_json`` and ``JsonPath.number`` themselves.
    """
    document = load_json(message)
    return None if document is NOT_JSON else path.number(document)
