"""Object keys: validation, and prefixes as ranges in UTF-8 byte order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite import InvalidKey
from s3lite.receiver.keys import MAX_KEY_BYTES, check_key, prefix_upper_bound
from tests.strategies import object_keys


def utf8(text: str) -> bytes:
    return text.encode("utf-8")


# -- check_key ----------------------------------------------------------------------------

long_valid_keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1,
    max_size=400,
)


@given(st.one_of(object_keys, long_valid_keys))
def test_check_key_accepts_utf8_up_to_the_limit_without_nul(key: str) -> None:
    if len(utf8(key)) <= MAX_KEY_BYTES:
        assert check_key(key) == key
    else:
        with pytest.raises(InvalidKey, match=f"{MAX_KEY_BYTES} bytes"):
            check_key(key)


@given(st.text(max_size=30), st.text(max_size=30))
def test_check_key_rejects_nul_anywhere(before: str, after: str) -> None:
    with pytest.raises(InvalidKey):
        check_key(before + "\0" + after)


@given(st.text(max_size=10), st.integers(0xD800, 0xDFFF), st.text(max_size=10))
def test_check_key_rejects_lone_surrogates(before: str, surrogate: int, after: str) -> None:
    with pytest.raises(InvalidKey):
        check_key(before + chr(surrogate) + after)


@pytest.mark.parametrize(
    "key",
    [
        "a" * MAX_KEY_BYTES,
        "\U0001f600" * (MAX_KEY_BYTES // 4),  # 4 bytes each: the limit exactly
        "é" * (MAX_KEY_BYTES // 2),  # 2 bytes each
        "/",
        "a/../../etc/passwd",
        "%00",
        " ",
        "\U0010ffff",
    ],
)
def test_check_key_accepts(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "a" * (MAX_KEY_BYTES + 1),
        "a" * (MAX_KEY_BYTES - 1) + "é",  # MAX_KEY_BYTES characters, one byte too many
        "\U0001f600" * (MAX_KEY_BYTES // 4) + "a",  # one byte too many
        "\0",
        "abc\0",
        "\ud800",
        None,
        b"bytes",
        42,
    ],
    ids=[
        "empty",
        "one-too-many-ascii",
        "one-byte-too-many-chars",
        "one-too-many-emoji",
        "nul",
        "trailing-nul",
        "surrogate",
        "none",
        "bytes",
        "int",
    ],
)
def test_check_key_rejects(key: object) -> None:
    with pytest.raises(InvalidKey):
        check_key(key)


# -- prefix_upper_bound ---------------------------------------------------------------------

# code points around the interesting edges: ASCII/2-byte, the surrogate gap, the BMP end,
# and the last code point, which has no successor
edge_alphabet = st.sampled_from(
    ["a", "b", "\x7f", "\x80", "\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0010fffe"]
    + ["\U0010ffff"] * 3
)
edge_text = st.lists(edge_alphabet, max_size=6).map("".join)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
texts = st.one_of(edge_text, any_text)


@st.composite
def prefix_and_key(draw: st.DrawFn) -> tuple[str, str]:
    prefix = draw(texts)
    key = draw(
        st.one_of(
            texts,
            texts.map(lambda tail: prefix + tail),  # starts with the prefix
            st.integers(0, len(prefix)).flatmap(  # a cut of the prefix, then anything
                lambda cut: texts.map(lambda tail: prefix[:cut] + tail)
            ),
        )
    )
    return prefix, key


@given(prefix_and_key())
def test_prefix_range_holds_exactly_the_keys_with_the_prefix(pair: tuple[str, str]) -> None:
    prefix, key = pair
    bound = prefix_upper_bound(prefix)
    inside = utf8(prefix) <= utf8(key) and (bound is None or utf8(key) < utf8(bound))
    assert key.startswith(prefix) == inside


@given(texts)
def test_prefix_bound_is_a_valid_key_string(prefix: str) -> None:
    bound = prefix_upper_bound(prefix)
    if bound is None:
        assert set(prefix) <= {"\U0010ffff"}
    else:
        assert utf8(bound) > utf8(prefix)
        assert not bound.startswith(prefix)
        utf8(bound)  # encodable: no surrogates


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("", None),
        ("a", "b"),
        ("photos/", "photos0"),  # '/' + 1 == '0'
        ("a\U0010ffff", "b"),
        ("a\U0010ffff\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("\U0010ffff\U0010ffff", None),
        ("\ud7ff", "\ue000"),  # skips the surrogate block
        ("x\uffff", "x\U00010000"),
    ],
)
def test_prefix_upper_bound_exact(prefix: str, bound: str | None) -> None:
    assert prefix_upper_bound(prefix) == bound
