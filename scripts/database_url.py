"""What `make up` shows of a database URL, read from an environment variable, never from argv.

Usage: database_url.py masked NAME     $NAME with its password (and any password in its query) as ***
       database_url.py database NAME   the database name in $NAME

The URL comes by environment because a command line is visible to every local user (`ps`,
/proc/*/cmdline); and the summary printed by `make up` must not carry the password, only
percent-encoded (API_DATABASE_URL "postgresql+psycopg://user:<password>@host/base_b" was printed as is).
"""

from __future__ import annotations

import os
import re
import sys

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
# Query parameters that carry a credential (psycopg's ?password=, ?sslpassword=, a driver's ?token=).
SECRET_QUERY_KEY = re.compile(r"(?i)pass|pwd|secret|token")


def masked(url: str) -> str:
    """The URL as SQLAlchemy reads it, its password as ***; a text it cannot read is not shown."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(set, not shown: not a database URL SQLAlchemy reads)"
    secret_keys = [key for key in parsed.query if SECRET_QUERY_KEY.search(key)]
    if secret_keys:
        parsed = parsed.update_query_dict({key: MASK for key in secret_keys})
    return parsed.render_as_string(hide_password=True)


def database(url: str) -> str:
    return make_url(url).database or ""


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("masked", "database"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    url = os.environ.get(argv[2], "")
    print(masked(url) if argv[1] == "masked" else database(url))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
