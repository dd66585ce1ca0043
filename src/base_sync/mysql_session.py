"""What every MySQL/MariaDB session of the sync is, whatever the server's defaults or the connection's
extras say (`backends.MySQLBaseA` applies it)."""

from __future__ import annotations

from base_sync.errors import ConfigurationError

# The only character set that holds all of Unicode: any other replaces what it lacks (an emoji in
# utf8mb3, a 'Ł' in latin1) with '?', silently, and the sync would write the '?' to Base B. Given to
# the driver, which applies it after the server's init_connect and the session's init_command, and
# decodes the results with it.
CHARSET = "utf8mb4"
_CHARSET_VARIABLES = ("character_set_client", "character_set_connection", "character_set_results")


def require_utf8mb4(dbapi_connection) -> None:
    """Fail at once, naming the variables, when a new session does not read and write utf8mb4 (a
    driver or proxy that ignored the character set asked for): its text would reach Base B as '?'."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT " + ", ".join(f"@@{name}" for name in _CHARSET_VARIABLES))
        values = [v.decode() if isinstance(v, bytes) else v for v in cursor.fetchone()]
    finally:
        cursor.close()
    wrong = {name: value for name, value in zip(_CHARSET_VARIABLES, values, strict=True) if value != CHARSET}
    if wrong:
        found = ", ".join(f"{name}={value}" for name, value in wrong.items())
        raise ConfigurationError(
            f"Base A's session does not read utf8mb4 ({found}): text outside that character set would reach "
            f"Base B as '?'. The sync asks the driver for {CHARSET}; something set another after it (a driver "
            "that ignores the character set, a proxy's own session settings): make it keep utf8mb4"
        )
