"""An Airflow MySQL connection as the sync's SQLAlchemy URL, built from the connection's fields.

Not the provider's `get_uri`: it writes the password with `quote_plus`, a space as '+', which
SQLAlchemy reads as a '+' (a password with a space was "wrong", 1045). The extras mean what they
mean to `MySqlHook` (`client` picks the driver; the others are the driver's arguments), except
those only the hook's own connections read, which never reach the driver.
"""

from __future__ import annotations

import json

from sqlalchemy.engine import URL

from base_sync.errors import ConfigurationError

DRIVERS = {"mysqlclient": "mysql+mysqldb", "pymysql": "mysql+pymysql", "mysql-connector-python": "mysql+mysqlconnector"}
# Read by MySqlHook for its own connections: the sync streams with server-side cursors of its own,
# and reads utf8mb4 whatever `charset` says (`mysql_session.CHARSET`).
HOOK_ONLY = frozenset({"client", "cursor", "charset"})
# The hook's AWS IAM sign-in fetches a token for a password; the sync's engine does not.
UNSUPPORTED = {
    "iam": "AWS IAM sign-in is MySqlHook's own, not the sync's engine's: give the connection a password",
    "aws_conn_id": "it serves AWS IAM sign-in (extra iam), which the sync's engine does not do",
}
# An extra `ssl` dict (as MySqlHook takes it) in the URL's form, which SQLAlchemy makes a dict again.
_SSL_KEYS = ("ca", "key", "cert", "capath", "cipher", "check_hostname")


def url_of(connection) -> URL:
    """The SQLAlchemy URL of an Airflow `mysql` connection: login, password, host, port and schema as
    given (no quoting to undo), and the extras the driver takes as its query."""
    extra = dict(connection.extra_dejson)
    client = extra.get("client") or "mysqlclient"
    if client not in DRIVERS:
        raise _refused(connection, f"extra client={client!r} names no driver the sync knows ({', '.join(DRIVERS)})")
    for name, why in UNSUPPORTED.items():
        if extra.get(name):
            raise _refused(connection, f"extra {name!r}: {why}")
    # Without one the session has no current database: the schema check read "no such table" of every
    # mapped table, a SchemaDriftError that named no connection field.
    if not (connection.schema or "").strip():
        raise _refused(connection, "the connection names no database (schema): set its schema to Base A's database")
    query = {}
    for name, value in extra.items():
        if name in HOOK_ONLY or not value:  # MySqlHook leaves false values out too
            continue
        if name == "ssl":
            query |= _ssl_query(connection, value)
            continue
        query[name] = str(value)
    return URL.create(
        DRIVERS[client],
        username=connection.login or None,
        password=connection.password or None,
        host=connection.host or "localhost",
        port=int(connection.port) if connection.port else None,
        database=connection.schema or None,
        query=query,
    )


def _ssl_query(connection, value) -> dict[str, str]:
    ssl = json.loads(value) if isinstance(value, str) else value
    if not isinstance(ssl, dict) or set(ssl) - set(_SSL_KEYS):
        raise _refused(connection, f"extra 'ssl' must be an object of {', '.join(_SSL_KEYS)}, got {value!r}")
    return {f"ssl_{key}": str(setting) for key, setting in ssl.items()}


def _refused(connection, why: str) -> ConfigurationError:
    return ConfigurationError(f"Airflow connection {connection.conn_id!r}: {why}")
