"""JSON as the services read a request: strict (no NaN, no lone surrogates), numbers exact, and a
refusal that says where. Shared by the REST API and the GraphQL service; it loads neither.

msgspec decodes; a number with a fraction or an exponent goes to the caller's `float_hook` with
its text (a float would round it: 1.0000000000000001 became 1.0, 1e-400 became 0.0). orjson is
asked only for the message of a refusal, which names line and column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson


class JsonError(ValueError):
    """The bytes are not one JSON document; the message says where."""


def reader(float_hook: Callable[[str], Any]) -> Callable[[bytes | str], Any]:
    """A function reading one JSON document, fractional numbers through `float_hook`."""
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

    return loads
