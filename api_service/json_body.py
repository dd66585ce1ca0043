"""JSON as the API reads it: a number with a fraction or an exponent becomes a Decimal, exactly.

Read as a float it would be rounded on the way in (1.0000000000000001 became 1.00, 1e-400 became
0.00, a 23-digit integer lost its last digits, all stored without a word); as a Decimal, the
validators see what the client sent and refuse what does not fit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from strict_json import DuplicateKey, JsonError, reader

__all__ = ["DuplicateKey", "JsonError", "dumps", "loads", "loads_last_key_wins"]

loads = reader(Decimal)  # a name given twice in an object: DuplicateKey
# Bulk items only: refusing a name given twice would cost more than the bulk decode itself (README).
loads_last_key_wins = reader(Decimal, last_key_wins=True)
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def dumps(value: Any) -> str:
    """JSON text of a value `loads` gave: its numbers written back as they came."""
    return _ENCODER.encode(value).decode()
