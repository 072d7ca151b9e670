"""The console's front door: pages, login and logout, sessions, CSRF, and the JSON
API's routes (``/_console/api/...``), each handled in cluster.py or objects.py.

Every request under ``/_console`` comes here before any S3 routing (the console is
not S3: it is authenticated by a session cookie, not SigV4). In order:

1. The session: the cookie names a live session (sessions.py), or there is none.
2. Without one, only the login page, its static files and ``POST api/login`` are
   served; any other page or file answers 401 with the login page, any other API
   call 401 ``{"error": "NotLoggedIn"}``.
3. A state-changing call (anything but GET and HEAD), login and logout included,
   must come from a page of this server (Origin, else Referer, names the Host), and,
   but for login, carry the session's CSRF token in ``X-S3lite-CSRF``: 403 otherwise.
4. Each API call is allowed only if the session's key could do the same through S3
   or the admin API: the call names the S3 request it stands for, the router turns it
   into an Operation, and the policy module decides, exactly as for a signed request
   (:meth:`ConsoleCall.allow`).

Errors raised by a handler are answered by the gateway's one error table as JSON
(``{"error", "message"}``, as the admin API's); the refusals above are answered here.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import anyio

from ...asgi import BadRequest, Headers, Request, Send
from ...errors import NotFound, RequestTimeout
from ...logs import event
from ..auth.policy import NOBODY, allowed
from ..call import Services
from ..router import Access
from . import cluster, objects
from .context import ConsoleCall, Visit
from .sessions import UNKNOWN, LoginThrottle, Session, SessionStore
from .web import (
    CONSOLE_PAGE,
    CSRF_HEADER,
    LOGIN_PAGE,
    PUBLIC_ASSETS,
    Asset,
    cleared_cookie,
    cookie_value,
    load_assets,
    same_origin,
    send_asset,
    send_json,
    session_cookie,
)

log = logging.getLogger(__name__)

FAILED_LOGIN_DELAY: Final = 1.0
"""Seconds a failed login waits before it is answered (on top of the throttle)."""
PART_SIZE: Final = 8 << 20
"""Bytes per part of a console upload; larger files go up as multipart uploads."""
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})


class Refused(Exception):
    """A request the console answers itself (not logged in, CSRF, throttled)."""

    def __init__(self, status: int, error: str, message: str, headers: Headers = ()) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.headers = list(headers)


class Console:
    """The console of one gateway (see the module doc); :meth:`handle` serves every
    request whose path starts with ``/_console``."""

    def __init__(
        self,
        services: Services,
        *,
        clock: Callable[[], float] = time.time,
        failed_login_delay: float = FAILED_LOGIN_DELAY,
    ) -> None:
        self.services = services
        self.sessions = SessionStore(clock)
        self.throttle = LoginThrottle()
        self.failed_login_delay = failed_login_delay
        self.assets: dict[str, Asset] = load_assets()

    async def handle(self, request: Request, send: Send, request_id: str, visit: Visit) -> None:
        try:
            await self._handle(request, send, request_id, visit)
        except Refused as refused:
            # A refused upload's body may be unread: close the connection rather than
            # read the rest as the next request (as the gateway does for its errors).
            closing = [("connection", "close")] if request.method not in SAFE_METHODS else []
            body = {"error": refused.error, "message": str(refused)}
            await send_json(send, refused.status, body, [*refused.headers, *closing])

    async def _handle(self, request: Request, send: Send, request_id: str, visit: Visit) -> None:
        path = request.segments[1:]
        keys = self.services.keys
        session = self.sessions.get(cookie_value(request.headers), keys.secret)
        if session is not None:
            visit.access_key = session.access_key
        if request.method not in SAFE_METHODS and not same_origin(request.headers):
            raise Refused(403, "CrossOrigin", "this request does not come from the console's page")
        if path[:1] != ("api",):
            await self._page(request, send, path, session)
            return
        if (request.method, path[1:]) == ("POST", ("login",)):
            visit.operation = "Console.Login"
            await self._login(request, send, visit)
            return
        if session is None:
            raise Refused(401, "NotLoggedIn", "log in to the console first")
        if request.method not in SAFE_METHODS and not session.csrf_matches(
            request.headers.get(CSRF_HEADER)
        ):
            raise Refused(403, "BadCsrfToken", f"a console call needs its {CSRF_HEADER} header")
        identity = keys.identity(session.access_key)
        call = ConsoleCall(request, path[1:], session, identity, self.services, request_id, visit)
        await self._api(call, send)

    async def _page(
        self, request: Request, send: Send, path: tuple[str, ...], session: Session | None
    ) -> None:
        if request.method not in SAFE_METHODS:
            raise Refused(405, "MethodNotAllowed", "console pages are read with GET")
        head = request.method == "HEAD"
        if path in ((), ("",)):
            page = CONSOLE_PAGE if session is not None else LOGIN_PAGE
            await send_asset(send, self.assets[page], request.headers, head=head)
            return
        asset = path[1] if len(path) == 2 and path[0] == "static" else None
        if asset in self.assets and (session is not None or asset in PUBLIC_ASSETS):
            await send_asset(send, self.assets[asset], request.headers, head=head)
            return
        if session is None:
            await send_asset(send, self.assets[LOGIN_PAGE], request.headers, 401, head=head)
            return
        raise NotFound(f"the console has no page /{'/'.join(request.segments)}")

    async def _login(self, request: Request, send: Send, visit: Visit) -> None:
        try:
            with anyio.fail_after(self.services.body_idle_timeout):
                payload = await request.json()
        except TimeoutError:
            raise RequestTimeout("the login's body did not arrive in time") from None
        if not isinstance(payload, Mapping) or not all(
            isinstance(payload.get(name), str) for name in ("access_key", "secret")
        ):
            raise BadRequest('log in with {"access_key": "...", "secret": "..."}')
        access_key, secret = payload["access_key"], payload["secret"]
        keys = self.services.keys
        known = keys.secret(access_key)
        who = access_key if known is not None else UNKNOWN
        wait = self.throttle.retry_after(who)
        if wait is not None:
            seconds = max(math.ceil(wait), 1)
            raise Refused(
                429,
                "TooManyFailedLogins",
                f"too many failed logins: try again in {seconds} s",
                [("retry-after", str(seconds))],
            )
        if known is None or not hmac.compare_digest(known.encode(), secret.encode()):
            self.throttle.failed(who)
            fields = {"access_key": access_key} if known is not None else {}
            event(log, logging.WARNING, "console login failed", **fields)
            await anyio.sleep(self.failed_login_delay)
            raise Refused(401, "LoginFailed", "wrong access key id or secret key")
        self.throttle.succeeded(who)
        session = self.sessions.open(access_key, known)
        visit.access_key = access_key
        event(log, logging.INFO, "console login", access_key=access_key)
        cookie = session_cookie(session.session_id, self.sessions.max_age)
        described = self._describe(session)
        await send_json(send, 200, described, [("set-cookie", cookie)])

    def _describe(self, session: Session) -> dict[str, Any]:
        """What the page needs to know about its session (and the only place it reads
        its CSRF token from)."""
        identity = self.services.keys.identity(session.access_key)
        key = next(k for k in self.services.keys.list_keys() if k.access_key == identity.access_key)
        return {
            "access_key": identity.access_key,
            "name": key.name,
            "root": identity.root,
            "admin": allowed(identity, Access.ADMIN, NOBODY),
            "csrf": session.csrf,
            "part_size": PART_SIZE,
            "idle_timeout": self.sessions.idle_timeout,
        }

    async def _api(self, call: ConsoleCall, send: Send) -> None:
        method = call.request.method
        match method, call.route:
            case "GET", ("session",):
                await send_json(send, 200, self._describe(call.session))
            case "POST", ("logout",):
                self.sessions.close(call.session.session_id)
                event(log, logging.INFO, "console logout", access_key=call.session.access_key)
                await send_json(send, 200, {}, [("set-cookie", cleared_cookie())])
            case "GET", ("cluster",):
                await cluster.overview(call, send)
            case "POST", ("join",):
                await cluster.join(call, send)
            case _, ("keys", *_):
                await cluster.keys(call, send)
            case "GET", ("buckets",):
                await objects.buckets(call, send)
            case "POST" | "DELETE", ("buckets",):
                await objects.bucket_change(call, send)
            case "GET", ("objects",):
                await objects.listing(call, send)
            case "GET", ("object",):
                await objects.details(call, send)
            case "PUT", ("object",):
                await objects.upload(call, send)
            case "DELETE", ("object",):
                await objects.delete(call, send)
            case "GET", ("download",):
                await objects.download(call, send)
            case "POST", ("uploads",):
                await objects.create_upload(call, send)
            case "PUT", ("uploads", upload_id):
                await objects.upload_part(call, send, upload_id)
            case "POST", ("uploads", upload_id, "complete"):
                await objects.complete_upload(call, send, upload_id)
            case "DELETE", ("uploads", upload_id):
                await objects.abort_upload(call, send, upload_id)
            case _:
                raise NotFound(f"the console API has no call {method} {'/'.join(call.route)}")
