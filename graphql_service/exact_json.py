"""The request's JSON with each fractional number as the float GraphQL's own scalars read, and its
exact text beside it, which the `Decimal` scalar reads (through a float alone, 1.0000000000000001
became 1.0 and was stored as 1.00).
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson


class ExactNumber(float):
    """A JSON number with a fraction or an exponent: a float (Int takes 5.0, Float takes any) that
    keeps the text it was written as."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> ExactNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


_DECODER = msgspec.json.Decoder(float_hook=ExactNumber)


def loads(data: bytes | str) -> Any:
    """The JSON value; ValueError saying what is wrong (strict JSON: no NaN, no lone surrogates)."""
    try:
        return _DECODER.decode(data)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not UTF-8 ({exc.reason}, byte {exc.start})") from None
    except msgspec.DecodeError as exc:
        refusal = str(exc)
    try:
        orjson.loads(data)  # only for its message, which names line and column
    except orjson.JSONDecodeError as exc:
        refusal = str(exc)
    raise ValueError(refusal)
