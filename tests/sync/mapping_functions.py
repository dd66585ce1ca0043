"""A `python:` transform the mapping tests name (a dotted path a mapping file can point at)."""


def shout(row: dict) -> str | None:
    """The article's text, upper-cased, with an exclamation mark."""
    text = row["text"]
    return None if text is None else f"{text.upper()}!"
