"""Failures sorted by what a retry can do about them, as dlt sorts its pipeline errors.

A transient failure (the API or a database briefly away, a timeout, a 429/502/503/504) may pass
on its own: the task retries it with back-off. A terminal one (the API refused the request as
it stands, a verification found Base B wrong, a setting or mapping is invalid) fails the same
way every time: the task fails at once with the reason, and a person acts. Nothing here imports
Airflow; `airflow_tasks` turns terminal errors into Airflow's no-retry failure.
"""

from __future__ import annotations

# What a retry can cure: the request timed out, too many requests, a gateway or the service is down.
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})


class SyncError(Exception):
    """A failure of the sync that the library expected and explains."""


class TransientError(SyncError):
    """May pass if tried again later: retry with back-off."""


class TerminalError(SyncError):
    """Fails the same way every time until someone fixes the cause: do not retry."""


class ApiError(SyncError):
    """The REST API did not do what was asked: the status (0: no answer) and its problem document."""

    def __init__(self, method: str, url: str, status: int, body: str):
        self.method, self.url, self.status, self.body = method, url, status, body
        answer = f"answered {status}" if status else "got no answer"
        super().__init__(f"{method} {url} {answer}: {body[:2000]}")

    @staticmethod
    def of(method: str, url: str, status: int, body: str) -> ApiError:
        """The error for this status: unavailable (retry) or refused (do not)."""
        kind = ApiUnavailable if status == 0 or status in TRANSIENT_STATUSES else ApiRefused
        return kind(method, url, status, body)


class ApiUnavailable(ApiError, TransientError):
    """No answer, or an answer that says to come back later (408, 429, 502, 503, 504)."""


class ApiRefused(ApiError, TerminalError):
    """The API refused the request as it stands (a 4xx such as 401 or 422), or failed on it with a bug (500)."""


class ConfigurationError(TerminalError):
    """A setting or connection the platform cannot work with as given (an unsupported database kind,
    an account Base A refuses, a URL that is not the Base B API): fix the configuration."""
