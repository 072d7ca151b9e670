"""Console sessions and the failed-login throttle: plain state over an injected clock.

A session is opened when a key logs in with its access key id and secret. Its id is
256 random bits, sent only in the session cookie (HttpOnly, so no script reads it);
its CSRF token is another 256 random bits that the page reads from
``GET /_console/api/session`` and sends back in a header with every state-changing
call (a page on another site cannot read it: no CORS headers are ever sent).

Sessions live in this process's memory only: a restarted gateway logs everyone out,
and no session id is ever written to disk. A session ends after IDLE_TIMEOUT without
a request, MAX_AGE after its login, at logout, or when the key it was opened with is
deleted or its secret changes (it remembers a digest of the secret, checked on every
request). At most MAX_SESSIONS are kept; a new one pushes out the least recently used.

The throttle counts failed logins per access key id within WINDOW seconds; after
MAX_FAILURES the id is refused until the oldest failure leaves the window. Failures
for ids that do not exist share one count (:data:`UNKNOWN`), so memory stays bounded
by the number of keys whatever an attacker sends. Secrets are long and random (40
characters of a 64-letter alphabet), so this is defence in depth: it turns an online
guessing attack into a handful of tries per key every few minutes.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Final

import attrs

IDLE_TIMEOUT: Final = 30 * 60.0
MAX_AGE: Final = 12 * 3600.0
MAX_SESSIONS: Final = 1000
MAX_FAILURES: Final = 5
WINDOW: Final = 300.0
UNKNOWN: Final = "\x00unknown"
"""The throttle's one count for access key ids that do not exist."""


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@attrs.define
class Session:
    """One logged-in browser."""

    session_id: str = attrs.field(repr=False)
    csrf: str = attrs.field(repr=False)
    access_key: str
    created: float
    last_seen: float
    digest: bytes = attrs.field(repr=False)
    """SHA-256 of the secret the key had at login."""

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class SessionStore:
    """Open sessions by id (see the module doc). ``clock`` is Unix seconds."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        max_age: float = MAX_AGE,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._clock = clock
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self._max = max_sessions
        self._sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, access_key: str, secret: str) -> Session:
        """A new session for a key that has just proved it holds ``secret``."""
        now = self._clock()
        session = Session(
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            access_key,
            now,
            now,
            secret_digest(secret),
        )
        self._sessions[session.session_id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None, secret_of: Callable[[str], str | None]) -> Session | None:
        """The live session with this id, its idle timer restarted; None (and the
        session dropped) if it has expired or its key's secret is no longer the one it
        logged in with. ``secret_of`` gives a key's current secret (None: deleted)."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        secret = secret_of(session.access_key)
        if (
            now - session.last_seen > self.idle_timeout
            or now - session.created > self.max_age
            or secret is None
            or not hmac.compare_digest(secret_digest(secret), session.digest)
        ):
            del self._sessions[session_id]
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)


class LoginThrottle:
    """Failed logins per access key id (see the module doc)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
    ) -> None:
        self._clock = clock
        self._max = max_failures
        self._window = window
        self._failures: dict[str, collections.deque[float]] = {}

    def retry_after(self, who: str) -> float | None:
        """Seconds until ``who`` may try again; None if it may try now."""
        failures = self._recent(who)
        if len(failures) < self._max:
            return None
        return max(failures[0] + self._window - self._clock(), 0.0)

    def failed(self, who: str) -> None:
        self._failures.setdefault(who, collections.deque()).append(self._clock())
        self._recent(who)

    def succeeded(self, who: str) -> None:
        self._failures.pop(who, None)

    def _recent(self, who: str) -> collections.deque[float]:
        failures = self._failures.get(who)
        if failures is None:
            return collections.deque()
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        while len(failures) > self._max:
            failures.popleft()
        if not failures:
            del self._failures[who]
        return failures
