"""The request's JSON with each fractional number as the float GraphQL's own scalars read, and its
exact text beside it, which the `Decimal` scalar reads (through a float alone, 1.0000000000000001
became 1.0 and was stored as 1.00).
"""

from __future__ import annotations

from strict_json import DuplicateKey, JsonError, reader

__all__ = ["DuplicateKey", "ExactNumber", "JsonError", "loads"]


class ExactNumber(float):
    """A JSON number with a fraction or an exponent: a float (Int takes 5.0, Float takes any) that
    keeps the text it was written as."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> ExactNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


loads = reader(ExactNumber)
