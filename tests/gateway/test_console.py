"""The web console's HTTP side, against a gateway served in the test's event loop:
what is served without a session (the login page only), the session cookie, CSRF and
Origin checks, the login throttle, the JSON API's object and key calls, each allowed
only as S3 would allow it, and a join streamed with its moving sectors.

The browser itself is driven in tests/test_console_browser.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from yarl import URL

from s3lite import LocalCluster
from s3lite.gateway.console.sessions import MAX_FAILURES
from s3lite.gateway.console.web import COOKIE, CSRF_HEADER
from s3lite.storager import StorageNode
from tests.gateway.harness import TIMEOUT, Gateway, payload, serving
from tests.s3sign import ROOT_ACCESS, ROOT_SECRET, sign

pytestmark = pytest.mark.anyio


@attrs.frozen
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.define
class Browser:
    """The console as a browser uses it: the session cookie it was given, the CSRF
    token it read, and the Origin a browser sends with every POST, PUT and DELETE."""

    http: aiohttp.ClientSession
    url: str
    cookie: str | None = None
    csrf: str = ""

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        csrf: bool = True,
        origin: str | None = "",
    ) -> Answer:
        sent = dict(headers or {})
        if self.cookie is not None:
            sent["Cookie"] = f"{COOKIE}={self.cookie}"
        if method not in ("GET", "HEAD"):
            if origin is not None:
                sent.setdefault("Origin", origin or self.url)
            if csrf:
                sent.setdefault(CSRF_HEADER, self.csrf)
        if json_body is not None:
            data = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        url = URL(f"{self.url}/_console/{path}").with_query(query or {})
        with anyio.fail_after(TIMEOUT):
            async with self.http.request(method, url, data=data, headers=sent) as response:
                return Answer(response.status, response.headers, await response.read())

    async def log_in(self, access_key: str = ROOT_ACCESS, secret: str = ROOT_SECRET) -> Answer:
        answer = await self.call(
            "POST", "api/login", json_body={"access_key": access_key, "secret": secret}
        )
        if answer.status == 200:
            cookie = answer.headers["Set-Cookie"]
            self.cookie = cookie.split(";", 1)[0].split("=", 1)[1]
            self.csrf = answer.json()["csrf"]
        return answer


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.fixture
def browser(gateway: Gateway, http: aiohttp.ClientSession) -> Browser:
    gateway.app.console.failed_login_delay = 0.0
    return Browser(http, gateway.url)


@pytest.fixture
async def root(browser: Browser) -> Browser:
    assert (await browser.log_in()).status == 200
    return browser


async def make_bucket(console: Browser, name: str = "photos") -> str:
    answer = await console.call("POST", "api/buckets", query={"bucket": name})
    assert answer.status == 200, answer.body
    return name


async def put(console: Browser, bucket: str, key: str, data: bytes, **kwargs: Any) -> Answer:
    return await console.call(
        "PUT", "api/object", query={"bucket": bucket, "key": key}, data=data, **kwargs
    )


# -- without a session ------------------------------------------------------------------


async def test_without_a_session_only_the_login_page_and_its_files_are_served(
    browser: Browser,
) -> None:
    page = await browser.call("GET", "")
    assert page.status == 200
    assert b'id="login"' in page.body
    assert b"tab-ring" not in page.body
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    for public in ("static/login.js", "static/console.css", "static/favicon.svg"):
        assert (await browser.call("GET", public)).status == 200
    for private in ("static/app.js", "static/ring.js", "static/index.html", "elsewhere", "static/"):
        answer = await browser.call("GET", private)
        assert answer.status == 401, private
        assert answer.body == page.body  # the login page, nothing else
    for method, path in [
        ("GET", "api/session"), ("GET", "api/cluster"), ("GET", "api/buckets"),
        ("GET", "api/keys"), ("POST", "api/join"), ("PUT", "api/object"),
        ("GET", "api/download"), ("POST", "api/logout"),
    ]:  # fmt: skip
        answer = await browser.call(method, path, query={"bucket": "b", "key": "k"})
        assert answer.status == 401, path
        assert answer.json()["error"] == "NotLoggedIn"
    browser.cookie = "made-up-session-id"
    assert (await browser.call("GET", "api/session")).status == 401


async def test_a_login_sets_a_strict_httponly_cookie_and_a_logout_ends_the_session(
    browser: Browser, http: aiohttp.ClientSession
) -> None:
    answer = await browser.log_in()
    assert answer.status == 200
    attributes = [piece.strip() for piece in answer.headers["Set-Cookie"].split(";")]
    name, _, value = attributes[0].partition("=")
    assert name == COOKIE
    assert len(value) >= 43
    assert {"HttpOnly", "SameSite=Strict", "Path=/_console"} <= set(attributes)
    assert any(a.startswith("Max-Age=") and int(a[8:]) > 0 for a in attributes)
    session = answer.json()
    assert session["access_key"] == ROOT_ACCESS
    assert session["root"]
    assert session["admin"]
    assert session["csrf"] != value

    other = Browser(http, browser.url)
    assert (await other.log_in()).status == 200
    assert other.cookie != browser.cookie
    assert other.csrf != browser.csrf

    page = await browser.call("GET", "")
    assert page.status == 200
    assert b"tab-ring" in page.body
    assert (await browser.call("GET", "static/app.js")).status == 200
    assert (await browser.call("GET", "api/session")).json()["csrf"] == browser.csrf

    out = await browser.call("POST", "api/logout")
    assert out.status == 200
    assert "Max-Age=0" in out.headers["Set-Cookie"]
    assert (await browser.call("GET", "api/session")).status == 401
    assert (await other.call("GET", "api/session")).status == 200  # only that session


async def test_a_state_changing_call_needs_the_csrf_token_and_a_same_origin(
    root: Browser, gateway: Gateway
) -> None:
    bucket = await make_bucket(root)
    wrong = root.csrf[:-1] + ("B" if root.csrf.endswith("A") else "A")  # differs in one place
    refused = [
        (await put(root, bucket, "a", b"x", csrf=False), "BadCsrfToken"),
        (await put(root, bucket, "a", b"x", headers={CSRF_HEADER: wrong}),
         "BadCsrfToken"),
        (await put(root, bucket, "a", b"x", origin="http://evil.example"), "CrossOrigin"),
        (await put(root, bucket, "a", b"x", origin=None), "CrossOrigin"),
        (await root.call("POST", "api/logout", csrf=False), "BadCsrfToken"),
        (await root.call("POST", "api/join", json_body={"node": "http://x"}, csrf=False),
         "BadCsrfToken"),
        (await root.call("POST", "api/keys", json_body={"name": "x"}, csrf=False),
         "BadCsrfToken"),
    ]  # fmt: skip
    for answer, error in refused:
        assert answer.status == 403
        assert answer.json()["error"] == error
        assert answer.headers["Connection"] == "close"  # an unread body is not a request
    listing = await root.call("GET", "api/objects", query={"bucket": bucket})
    assert listing.json()["objects"] == []  # nothing was stored
    assert len(gateway.cluster.keys.list_keys()) == 1  # no key was made
    assert (await root.call("GET", "api/session")).status == 200  # still logged in
    # A login from another site's page is refused too (login CSRF).
    login = await root.call(
        "POST", "api/login", json_body={"access_key": ROOT_ACCESS, "secret": ROOT_SECRET},
        origin="http://evil.example",
    )  # fmt: skip
    assert login.status == 403
    assert "Set-Cookie" not in login.headers


async def test_failed_logins_are_slowed_down_then_refused_for_a_while(
    browser: Browser, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.app.console.failed_login_delay = 0.2
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    wrong = await browser.log_in(secret="not-the-secret-0")
    assert time.monotonic() - started >= 0.2
    assert wrong.status == 401
    assert wrong.json()["error"] == "LoginFailed"
    unknown = await browser.log_in("NOSUCHKEY", "not-the-secret-1")
    assert (unknown.status, unknown.json()["message"]) == (401, wrong.json()["message"])
    gateway.app.console.failed_login_delay = 0.0
    for attempt in range(2, MAX_FAILURES + 1):
        assert (await browser.log_in(secret=f"not-the-secret-{attempt}")).status == 401
    locked = await browser.log_in()  # even the right secret, for now
    assert locked.status == 429
    assert locked.json()["error"] == "TooManyFailedLogins"
    assert int(locked.headers["Retry-After"]) > 0
    assert browser.cookie is None
    gateway.app.console.throttle.succeeded(ROOT_ACCESS)  # as if the window had passed
    assert (await browser.log_in()).status == 200
    logged = caplog.text
    assert "not-the-secret" not in logged
    assert ROOT_SECRET not in logged
    assert "NOSUCHKEY" not in logged  # an unknown id might be a secret typed in the wrong box
    assert browser.csrf not in logged
    assert str(browser.cookie) not in logged


# -- buckets and objects ----------------------------------------------------------------


async def test_upload_list_by_folder_download_details_and_delete(
    root: Browser, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="s3lite.gateway.app")
    bucket = await make_bucket(root)
    files = {"top.txt": b"top", "docs/a.txt": payload(40_000, 1), "docs/b.txt": b"",
             "docs/deep/c.bin": payload(5000, 2)}  # fmt: skip
    for key, data in files.items():
        answer = await put(root, bucket, key, data, headers={"Content-Type": "text/plain"})
        assert answer.status == 200, answer.body
        assert answer.json()["key"] == key
        assert answer.json()["size"] == len(data)

    top = (await root.call("GET", "api/objects", query={"bucket": bucket})).json()
    assert top["folders"] == ["docs/"]
    assert [o["key"] for o in top["objects"]] == ["top.txt"]
    docs = await root.call("GET", "api/objects", query={"bucket": bucket, "prefix": "docs/"})
    assert docs.json()["folders"] == ["docs/deep/"]
    assert [o["key"] for o in docs.json()["objects"]] == ["docs/a.txt", "docs/b.txt"]

    query = {"bucket": bucket, "key": "docs/a.txt"}
    download = await root.call("GET", "api/download", query=query)
    assert download.status == 200
    assert download.body == files["docs/a.txt"]
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith('attachment; filename="a.txt"')
    assert download.headers["Content-Security-Policy"].startswith("sandbox")
    assert download.headers["X-Content-Type-Options"] == "nosniff"

    details = (await root.call("GET", "api/object", query=query)).json()
    assert (details["size"], details["storage_class"]) == (40_000, "STANDARD")
    assert details["content_type"] == "text/plain"
    [segment] = details["segments"]
    ring = gateway.cluster.orchestrator.ring
    nodes = [part["node"] for part in segment["parts"]]
    assert len(set(nodes)) == 6  # invariant 1, as the console shows it
    for part in segment["parts"]:
        assert part["node"] == ring.owner(part["sector"])
        assert part["kind"] == "data"
        assert part["moving_to"] is None
    assert sum(part["length"] for part in segment["parts"]) == 40_000

    assert (await root.call("DELETE", "api/object", query=query)).status == 200
    assert (await root.call("GET", "api/download", query=query)).status == 404
    assert (await root.call("DELETE", "api/object", query=query)).status == 404
    gone = await root.call("GET", "api/objects", query={"bucket": bucket, "prefix": "docs/"})
    assert [o["key"] for o in gone.json()["objects"]] == ["docs/b.txt"]
    refused = await root.call("DELETE", "api/buckets", query={"bucket": bucket})
    assert refused.status == 409
    assert refused.json()["error"] == "BucketNotEmpty"

    fields = [getattr(record, "s3lite_fields", {}) for record in caplog.records]
    lines = [f for f in fields if f.get("operation", "").startswith("Console")]
    operations = {line["operation"] for line in lines}
    assert {"Console.CreateBucket", "Console.PutObject", "Console.GetObject"} <= operations
    assert all(line["access_key"] == ROOT_ACCESS for line in lines)


async def test_bad_object_calls_change_nothing(root: Browser, gateway: Gateway) -> None:
    bucket = await make_bucket(root)
    cases = [
        await put(root, bucket, "", b"x"),  # no key: not a CreateBucket in disguise
        await put(root, "Not_A_Bucket", "k", b"x"),
        await put(root, "_admin", "status", b"x"),
        await put(root, "nosuchbucket", "k", b"x"),
        await put(root, bucket, "k" * 1025, b"x"),
        await root.call("PUT", "api/object", query={"bucket": bucket}, data=b"x"),
        await root.call("GET", "api/nothing-here"),
    ]
    assert [answer.status for answer in cases] == [400, 400, 400, 404, 400, 400, 404]
    assert all("error" in answer.json() for answer in cases)
    assert await gateway.cluster.buckets.list() != []
    listing = await root.call("GET", "api/objects", query={"bucket": bucket})
    assert listing.json()["objects"] == []


async def test_a_multipart_upload_in_parts(root: Browser, cluster: LocalCluster) -> None:
    cluster.receiver.min_part_size = 1000
    bucket = await make_bucket(root)
    data = payload(2500, 3)
    query = {"bucket": bucket, "key": "big.bin"}
    created = await root.call("POST", "api/uploads", query={**query, "content_type": "x/y"})
    upload_id = created.json()["upload_id"]
    parts = []
    for number, start in enumerate(range(0, len(data), 1000), start=1):
        answer = await root.call(
            "PUT", f"api/uploads/{upload_id}", query={**query, "part": str(number)},
            data=data[start : start + 1000],
        )  # fmt: skip
        assert answer.status == 200, answer.body
        parts.append({"number": number, "etag": answer.json()["etag"]})
    bad = await root.call("PUT", f"api/uploads/{upload_id}", query={**query, "part": "0"}, data=b"")
    assert bad.status == 400
    done = await root.call(
        "POST", f"api/uploads/{upload_id}/complete", query=query, json_body={"parts": parts}
    )
    assert done.status == 200, done.body
    assert done.json()["etag"].endswith("-3")
    download = await root.call("GET", "api/download", query=query)
    assert download.body == data
    details = (await root.call("GET", "api/object", query=query)).json()
    assert [s["size"] for s in details["segments"]] == [1000, 1000, 500]
    assert details["parts_count"] == 3
    assert details["content_type"] == "x/y"

    aborted = (await root.call("POST", "api/uploads", query=query)).json()["upload_id"]
    assert (await root.call("DELETE", f"api/uploads/{aborted}", query=query)).status == 200
    assert (await root.call("DELETE", f"api/uploads/{aborted}", query=query)).status == 404
    assert (await cluster.receiver.list_multipart_uploads()).uploads == ()


# -- who may do what --------------------------------------------------------------------


async def test_a_key_reaches_through_the_console_only_what_s3_lets_it(
    root: Browser, http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    await make_bucket(root, "roots")
    assert (await put(root, "roots", "secret.txt", b"root's")).status == 200
    made = (await root.call("POST", "api/keys", json_body={"name": "alice"})).json()
    listed = (await root.call("GET", "api/keys")).json()["keys"]
    assert made["secret"] not in json.dumps(listed)  # shown once, at creation

    alice = Browser(http, root.url)
    session = await alice.log_in(made["access_key"], made["secret"])
    assert session.status == 200
    assert (session.json()["root"], session.json()["admin"]) == (False, False)
    for method, path, body in [
        ("GET", "api/cluster", None), ("GET", "api/keys", None),
        ("POST", "api/keys", {"name": "mallory"}), ("POST", "api/join", {"node": "http://x"}),
        ("DELETE", f"api/keys/{made['access_key']}", None),
    ]:  # fmt: skip
        answer = await alice.call(method, path, json_body=body)
        assert (answer.status, answer.json()["error"]) == (403, "AccessDenied"), path
    assert (await alice.call("GET", "api/buckets")).json()["buckets"] == []
    query = {"bucket": "roots", "key": "secret.txt"}
    for method, path in [("GET", "api/objects"), ("GET", "api/download"), ("GET", "api/object"),
                         ("DELETE", "api/object"), ("DELETE", "api/buckets")]:  # fmt: skip
        assert (await alice.call(method, path, query=query)).status == 403, (method, path)
    assert (await put(alice, "roots", "mine.txt", b"alice's")).status == 403

    grant = await root.call(
        "POST", f"api/keys/{made['access_key']}/allow",
        json_body={"bucket": "roots", "read": True},
    )  # fmt: skip
    assert grant.json() == {"access_key": made["access_key"], "bucket": "roots",
                            "read": True, "write": False}  # fmt: skip
    assert [b["name"] for b in (await alice.call("GET", "api/buckets")).json()["buckets"]] == [
        "roots"
    ]
    assert (await alice.call("GET", "api/download", query=query)).body == b"root's"
    details = (await alice.call("GET", "api/object", query=query)).json()
    assert (details["size"], details["segments"]) == (6, None)  # the layout is admin's
    assert (await put(alice, "roots", "mine.txt", b"alice's")).status == 403
    assert (await alice.call("DELETE", "api/object", query=query)).status == 403
    await make_bucket(alice, "alices")  # any key may create a bucket whose name is free
    assert (await put(alice, "alices", "mine.txt", b"alice's")).status == 200
    assert gateway.cluster.keys.owner("alices") == made["access_key"]

    # Revoking the key ends its session at once.
    revoked = await root.call("DELETE", f"api/keys/{made['access_key']}")
    assert revoked.status == 200
    assert (await alice.call("GET", "api/session")).status == 401
    assert (await alice.log_in(made["access_key"], made["secret"])).status == 401


# -- the ring and joins -------------------------------------------------------------------


async def test_the_cluster_view_and_a_join_streamed_with_its_moving_sectors(
    root: Browser, cluster: LocalCluster, tmp_path: Any
) -> None:
    bucket = await make_bucket(root)
    for index in range(12):
        assert (await put(root, bucket, f"o{index}", payload(30_000, index))).status == 200
    before = (await root.call("GET", "api/cluster")).json()
    assert len(before["ring"]["owners"]) == 360
    assert before["ring"]["migration"] is None
    assert {n["id"] for n in before["nodes"]} == set(before["ring"]["owners"])
    assert all(n["errors"] == 0 and n["condition"] == "up" for n in before["nodes"])

    node = await StorageNode.open(tmp_path / "new", "node-new", fsync=False)
    cluster.transport.register(node)
    try:
        answer = await root.call("POST", "api/join", json_body={"node": node.address})
        assert answer.status == 200
        lines = [json.loads(line) for line in answer.body.splitlines()]
    finally:
        node.close()
    assert lines[-1]["event"] == "done"
    assert lines[-1]["result"] == {"node_id": "node-new"}
    steps = [line["step"] for line in lines if line["event"] == "step"]
    assert steps[:4] == ["plan", "drain", "re-home", "copy"]
    assert steps[-1] == "drop"
    moving = [line["migration"] for line in lines if line.get("migration")]
    assert moving
    assert all(m["node"] == "node-new" for m in moving)
    sectors = {move["sector"] for move in moving[0]["moves"]}
    seen: dict[int, float] = {}
    for migration in moving:
        for move in migration["moves"]:
            assert 0.0 <= move["copied"] <= 1.0
            assert move["copied"] >= seen.get(move["sector"], 0.0)  # never goes back
            seen[move["sector"]] = move["copied"]
    assert set(seen.values()) == {1.0}  # every moving sector was seen fully copied

    after = (await root.call("GET", "api/cluster")).json()
    owners = after["ring"]["owners"]
    assert {s for s, owner in enumerate(owners) if owner == "node-new"} == sectors
    assert after["ring"]["migration"] is None
    assert len(after["nodes"]) == 7


async def test_with_a_domain_the_console_path_on_a_bucket_host_is_an_object_key(
    cluster: LocalCluster, http: aiohttp.ClientSession
) -> None:
    async with serving(cluster, domain="s3.test") as gateway:
        assert (await gateway.request("PUT", "/photos"))[0] == 200
        host = f"photos.s3.test:{gateway.url.rsplit(':', 1)[1]}"
        headers = sign("PUT", f"http://{host}/_console/", {"host": host}, body=b"an object")
        async with http.put(gateway.at("/_console/"), data=b"an object", headers=headers) as put:
            assert put.status == 200, await put.read()
        assert (await gateway.request("GET", "/photos/_console/"))[2] == b"an object"
        page = await Browser(http, gateway.url).call("GET", "")
        assert page.status == 200
        assert b'id="login"' in page.body
