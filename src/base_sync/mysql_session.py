"""What every MySQL/MariaDB session of the sync is, whatever the server's defaults or the connection's
extras say (`backends.MySQLBaseA` applies it): utf8mb4, UTC, one known sql_mode."""

from __future__ import annotations

from base_sync.errors import ConfigurationError
from base_sync.settings import longest_api_call_seconds

# The only character set that holds all of Unicode: any other replaces what it lacks (an emoji in
# utf8mb3, a 'Ł' in latin1) with '?', silently, and the sync would write the '?' to Base B. Given to
# the driver, which applies it after the server's init_connect and the session's init_command, and
# decodes the results with it.
CHARSET = "utf8mb4"
# MariaDB's default less NO_AUTO_CREATE_USER (MySQL 8 refuses it), whose modes change no SELECT. The
# server's own would change what the SQL a mapping renders means: ORACLE makes TRIM('   ') NULL (a
# `default` then replaced it, on the batch path only), PAD_CHAR_TO_FULL_LENGTH pads CHAR values,
# ANSI_QUOTES, PIPES_AS_CONCAT and NO_BACKSLASH_ESCAPES change a filter's text.
SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
_CHARSET_VARIABLES = ("character_set_client", "character_set_connection", "character_set_results")
# A read waits this long for a table lock another session holds (LOCK TABLES ... WRITE, an ALTER's
# metadata lock), then fails (1205) and the task is retried with back-off: the server's default,
# lock_wait_timeout = 1 day, held a load (and its DAG, one run at a time) for as long as the lock lasted.
LOCK_WAIT_SECONDS = 300


def init_command(idle_seconds: int) -> str:
    """The statement the driver runs at login, after the server's init_connect: the session's zone
    (the sync reads and writes UTC), sql_mode, how long it waits for a table lock (LOCK_WAIT_SECONDS)
    and how long it may wait on its reader: a streaming
    read waits while its consumer pushes to the API, and the server's defaults would end it first
    (net_write_timeout, 60 s: the result cut, 2013; wait_timeout: the connection dropped, 2006)."""
    seconds = int(idle_seconds)
    return (
        f"SET time_zone = '+00:00', sql_mode = '{SQL_MODE}', net_write_timeout = {seconds}, "
        f"wait_timeout = {seconds}, lock_wait_timeout = {LOCK_WAIT_SECONDS}"
    )


def idle_seconds(api_timeout: float) -> int:
    """How long a read's session waits on its consumer at most: one API call with all its retries
    (the reader waits for the oldest push in flight), and a minute more."""
    return longest_api_call_seconds(api_timeout) + 60


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
