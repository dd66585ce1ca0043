"""JSON as the services read a request: strict (no NaN, no lone surrogates), numbers exact, and a
refusal that says where. Shared by the REST API and the GraphQL service; it loads neither.

msgspec decodes; a number with a fraction or an exponent goes to the caller's `float_hook` with
its text (a float would round it: 1.0000000000000001 became 1.0, 1e-400 became 0.0). orjson is
asked only for the message of a refusal, which names line and column.

A name given twice in one object is refused (`DuplicateKey`) unless the caller asks for the last
one to win: found from outside, `{"title": "first", "title": "second"}` stored "second", and a
GraphQL body's second "query" ran while a log or firewall reading the first saw another request.
msgspec keeps the last silently, so Python's json, whose pairs hook sees every name, looks again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
import orjson


class JsonError(ValueError):
    """The bytes are not one JSON document; the message says where."""


class DuplicateKey(JsonError):
    """An object names `key` twice."""

    def __init__(self, key: str):
        super().__init__(f"the name {key!r} is given twice in one object: send it once")
        self.key = key


def reader(float_hook: Callable[[str], Any], last_key_wins: bool = False) -> Callable[[bytes | str], Any]:
    """A function reading one JSON document, fractional numbers through `float_hook`; a name given
    twice in an object is a DuplicateKey, or with `last_key_wins` its last value."""
    decoder = msgspec.json.Decoder(float_hook=float_hook)

    def loads(data: bytes | str) -> Any:
        try:
            return decoder.decode(data)
        except RecursionError:  # deeper than Python's stack allows (some 980 levels)
            raise JsonError("it is nested too deeply") from None
        except UnicodeDecodeError as exc:
            raise JsonError(f"it is not UTF-8 ({exc.reason}, byte {exc.start})") from None
        except msgspec.DecodeError as exc:
            refusal = str(exc)
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            refusal = str(exc)
        raise JsonError(refusal)

    def loads_refusing_duplicates(data: bytes | str) -> Any:
        document = loads(data)
        key = first_duplicate_key(data)
        if key is not None:
            raise DuplicateKey(key)
        return document

    return loads if last_key_wins else loads_refusing_duplicates


def first_duplicate_key(data: bytes | str) -> str | None:
    """The first name an object of `data` (one JSON document msgspec read) gives twice, or None."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> None:
        seen: set[str] = set()
        for name, _ in items:
            if name in seen and not found:
                found.append(name)
            seen.add(name)

    try:  # numbers stay text: only the names matter, and int() refuses more than 4,300 digits
        json.loads(data, object_pairs_hook=pairs, parse_int=str, parse_float=str)
    except RecursionError:
        raise JsonError("it is nested too deeply") from None
    return found[0] if found else None
