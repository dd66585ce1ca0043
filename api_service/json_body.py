"""JSON as the API reads it: a number with a fraction or an exponent becomes a Decimal, exactly.

Read as a float it would be rounded on the way in (1.0000000000000001 became 1.00, 1e-400 became
0.00, a 23-digit integer lost its last digits, all stored without a word); as a Decimal, the
validators see what the client sent and refuse what does not fit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import orjson

_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_ENCODER = msgspec.json.Encoder(decimal_format="number")


class JsonError(ValueError):
    """The bytes are not one JSON document; the message says where."""


def loads(data: bytes) -> Any:
    try:
        return _DECODER.decode(data)
    except RecursionError:  # deeper than Python's stack allows (some 980 levels): no record is
        raise JsonError("it is nested too deeply (a record is a flat object)") from None
    except UnicodeDecodeError as exc:
        raise JsonError(f"it is not UTF-8 ({exc.reason}, byte {exc.start})") from None
    except msgspec.DecodeError as exc:
        refusal = str(exc)
    try:
        orjson.loads(data)  # only for its message, which names line and column
    except orjson.JSONDecodeError as exc:
        refusal = str(exc)
    raise JsonError(refusal)


def dumps(value: Any) -> str:
    """JSON text of a value `loads` gave: its numbers written back as they came."""
    return _ENCODER.encode(value).decode()
