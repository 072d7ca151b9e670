"""The console's pure parts: sessions (expiry, secrets changing, the bound), the
failed-login throttle (against a model), the cookie and the same-origin check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite.gateway.console.sessions import (
    MAX_FAILURES,
    WINDOW,
    LoginThrottle,
    SessionStore,
)
from s3lite.gateway.console.web import (
    COOKIE,
    cleared_cookie,
    cookie_value,
    same_origin,
    session_cookie,
)
from tests.clock import Clock

SECRETS = {"AKEY": "secret-one", "BKEY": "secret-two"}


def test_a_session_lives_while_used_and_ends_when_idle_or_old() -> None:
    clock = Clock()
    store = SessionStore(clock, idle_timeout=60, max_age=300)
    session = store.open("AKEY", "secret-one")
    assert len(session.session_id) >= 43
    assert len(session.csrf) >= 43
    assert session.session_id != session.csrf
    for _ in range(4):  # used every 50 s: the idle timer restarts each time
        clock.now += 50
        assert store.get(session.session_id, SECRETS.get) is session
    clock.now += 100  # 250 s old, unused for 100 s > 60
    assert store.get(session.session_id, SECRETS.get) is None
    assert len(store) == 0

    old = store.open("AKEY", "secret-one")
    for _ in range(6):
        clock.now += 55
        found = store.get(old.session_id, SECRETS.get)
    assert found is None  # 330 s after login: past max_age even though never idle


def test_a_session_ends_when_its_key_is_deleted_or_its_secret_changes() -> None:
    store = SessionStore(Clock())
    secrets = dict(SECRETS)
    one, two = store.open("AKEY", "secret-one"), store.open("BKEY", "secret-two")
    secrets["AKEY"] = "rotated"
    assert store.get(one.session_id, secrets.get) is None
    del secrets["BKEY"]
    assert store.get(two.session_id, secrets.get) is None
    assert store.get(None, secrets.get) is None
    assert store.get("", secrets.get) is None
    assert store.get("made-up", secrets.get) is None


def test_sessions_are_bounded_and_the_least_recently_used_goes_first() -> None:
    store = SessionStore(Clock(), max_sessions=3)
    first, second, third = (store.open("AKEY", "secret-one") for _ in range(3))
    assert store.get(first.session_id, SECRETS.get) is first  # now the most recent
    store.open("AKEY", "secret-one")
    assert len(store) == 3
    assert store.get(second.session_id, SECRETS.get) is None
    assert store.get(first.session_id, SECRETS.get) is first
    assert store.get(third.session_id, SECRETS.get) is third
    store.close(first.session_id)
    assert store.get(first.session_id, SECRETS.get) is None


def test_the_csrf_token_must_match_exactly() -> None:
    session = SessionStore(Clock()).open("AKEY", "secret-one")
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(None)
    assert not session.csrf_matches("")
    assert not session.csrf_matches(session.csrf[:-1])
    assert session.csrf not in repr(session)
    assert session.session_id not in repr(session)


def test_the_throttle_locks_a_key_after_its_failures_until_the_window_passes() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(MAX_FAILURES - 1):
        throttle.failed("AKEY")
        clock.now += 1
    assert throttle.retry_after("AKEY") is None
    throttle.failed("AKEY")
    wait = throttle.retry_after("AKEY")
    assert wait == pytest.approx(WINDOW - (MAX_FAILURES - 1))
    assert throttle.retry_after("BKEY") is None  # other keys are not affected
    clock.now += wait
    assert throttle.retry_after("AKEY") is None  # the oldest failure left the window
    throttle.failed("AKEY")
    assert throttle.retry_after("AKEY") is not None
    throttle.succeeded("AKEY")
    assert throttle.retry_after("AKEY") is None


@given(
    st.lists(
        st.tuples(st.sampled_from(["fail", "ok", "wait"]), st.floats(0, WINDOW / 2)),
        max_size=40,
    )
)
def test_the_throttle_refuses_exactly_when_the_window_holds_enough_failures(
    steps: list[tuple[str, float]],
) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    failures: list[float] = []  # the model: every failure since the last success
    for action, seconds in steps:
        if action == "fail":
            throttle.failed("K")
            failures.append(clock.now)
        elif action == "ok":
            throttle.succeeded("K")
            failures.clear()
        else:
            clock.now += seconds
        recent = [t for t in failures if t > clock.now - WINDOW]
        wait = throttle.retry_after("K")
        assert (wait is not None) == (len(recent) >= MAX_FAILURES)
        if wait is not None:
            assert wait == pytest.approx(recent[-MAX_FAILURES] + WINDOW - clock.now)


def test_the_cookie_is_httponly_strict_and_scoped_to_the_console() -> None:
    attributes = [piece.strip() for piece in session_cookie("abc", 3600).split(";")]
    assert attributes[0] == f"{COOKIE}=abc"
    assert set(attributes[1:]) == {
        "Path=/_console", "HttpOnly", "SameSite=Strict", "Max-Age=3600"
    }  # fmt: skip
    assert "Max-Age=0" in cleared_cookie()


@given(
    st.lists(
        st.tuples(st.text("abcdefghij_", min_size=1, max_size=8), st.text("xyz0123", max_size=8)),
        max_size=4,
    ),
    st.text("ABCDEFabcdef0123456789-_", min_size=1, max_size=50),
)
def test_the_console_cookie_is_found_among_others(
    others: list[tuple[str, str]], value: str
) -> None:
    others = [(name, v) for name, v in others if name != COOKIE]
    pieces = [f"{name}={v}" for name, v in others]
    middle = len(pieces) // 2
    header = "; ".join([*pieces[:middle], f"{COOKIE}={value}", *pieces[middle:]])
    assert cookie_value({"cookie": header}) == value
    assert cookie_value({"cookie": "; ".join(pieces)}) is None
    assert cookie_value({}) is None


@pytest.mark.parametrize(
    ("headers", "same"),
    [
        ({"host": "127.0.0.1:9000", "origin": "http://127.0.0.1:9000"}, True),
        ({"host": "127.0.0.1:9000", "origin": "https://127.0.0.1:9000"}, True),
        ({"host": "Example.org", "origin": "http://example.org"}, True),
        ({"host": "127.0.0.1:9000", "referer": "http://127.0.0.1:9000/_console/"}, True),
        ({"host": "127.0.0.1:9000", "origin": "http://127.0.0.1:9001"}, False),
        ({"host": "127.0.0.1:9000", "origin": "http://evil.example"}, False),
        ({"host": "127.0.0.1:9000", "origin": "null"}, False),
        ({"host": "127.0.0.1:9000", "origin": "file://127.0.0.1:9000"}, False),
        ({"host": "127.0.0.1:9000"}, False),
        ({"origin": "http://127.0.0.1:9000"}, False),
        (
            {"host": "a:1", "origin": "http://evil.example", "referer": "http://a:1/_console/"},
            False,
        ),
    ],
)
def test_same_origin(headers: dict[str, str], same: bool) -> None:
    assert same_origin(headers) is same
