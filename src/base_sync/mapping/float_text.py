"""FLOAT and DOUBLE values as MariaDB writes them as text (CAST(... AS CHAR), CONCAT, a value map's key),
so the events path makes of a number the text the batch extract reads from the server.

MariaDB (strings/dtoa.c, `my_gcvt`) writes a DOUBLE's shortest digits that read back as the same
double (Python's `repr` digits) and a FLOAT's value rounded to 6 significant digits (FLT_DIG: FLOAT
1.1 is '1.1', 16777217 is '16777200'), then chooses the notation by the decimal point's position:
plain digits ('100', '0.00001', '1234567890123456.8') while the point lies at most 15 digits right
of the first digit and at most 14 zeros left of it, else an exponent without '+' or leading zeros
('1e15', '1.5e-16', '1.2345678901234568e17'); the zero is '0', -0 too. Python's own text differs:
'100.0', '1e-05', '1e+16'. `tests/sync/test_float_text.py` holds the rule against the server.
"""

from __future__ import annotations

import struct
from decimal import Decimal

FLOAT_DIGITS = 6  # FLT_DIG: the significant digits MariaDB writes of a FLOAT
PLAIN_UP_TO = 15  # DBL_DIG: the highest decimal exponent written as plain digits
PLAIN_DOWN_TO = -14  # the lowest


class Float32(float):
    """A FLOAT column's value (4 bytes), held as the double it converts to exactly: its text has
    FLOAT_DIGITS significant digits, a DOUBLE's all it needs."""


def float32(value: float) -> Float32:
    """A FLOAT's value as a Float32: a double that went through 4 bytes is the same float32 again.
    Raises OverflowError beyond FLOAT's range (the value was no FLOAT)."""
    return Float32(struct.unpack("<f", struct.pack("<f", value))[0])


def mariadb_text(value: float) -> str:
    """The text MariaDB writes of a DOUBLE, or of a FLOAT when `value` is a Float32."""
    if value == 0:
        return "0"
    digits, point = _digits(abs(value), FLOAT_DIGITS if isinstance(value, Float32) else None)
    sign = "-" if value < 0 else ""
    if point >= PLAIN_DOWN_TO and (point <= PLAIN_UP_TO or len(digits) > point):
        return sign + _plain(digits, point)
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{point - 1}"


def _digits(value: float, significant: int | None) -> tuple[str, int]:
    """The significant digits of a positive `value` without trailing zeros, and where the decimal
    point goes: value = 0.<digits> × 10^point. `significant`: rounded to so many digits (correctly,
    from the exact binary value), else the shortest that read back as `value` (`repr`'s)."""
    text = f"{value:.{significant - 1}e}" if significant else repr(value)
    _, digits, exponent = Decimal(text).normalize().as_tuple()
    return "".join(map(str, digits)), len(digits) + exponent


def _plain(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point < len(digits):
        return digits[:point] + "." + digits[point:]
    return digits + "0" * (point - len(digits))
