"""Conditional requests (pure): RFC 9110 13.2.2's precedence, ETag lists, HTTP-dates."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite import NotFound
from s3lite.errors import NotModified, PreconditionFailed
from s3lite.receiver import ObjectInfo, ReadConditions, WriteCondition
from s3lite.receiver.conditions import etag_matches, parse_http_date

ETAG = "9b2cf535f27731c974343645a3985328"
MODIFIED = dt.datetime(2024, 5, 6, 7, 8, 9, 500_000, tzinfo=dt.UTC)
INFO = ObjectInfo("k", 3, ETAG, "t", MODIFIED, {})


def http_date(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment, usegmt=True)


BEFORE = http_date(MODIFIED - dt.timedelta(seconds=1))
AT = http_date(MODIFIED)  # the same second: not modified since
AFTER = http_date(MODIFIED + dt.timedelta(days=1))


def outcome(conditions: ReadConditions, copy: bool = False) -> str:
    try:
        if copy:
            conditions.check_copy_source(INFO)
        else:
            conditions.check(INFO)
    except NotModified:
        return "304"
    except PreconditionFailed:
        return "412"
    return "200"


@pytest.mark.parametrize(
    ("conditions", "status"),
    [
        (ReadConditions(if_match=f'"{ETAG}"'), "200"),
        (ReadConditions(if_match=ETAG), "200"),
        (ReadConditions(if_match="*"), "200"),
        (ReadConditions(if_match=f'"other", "{ETAG}"'), "200"),
        (ReadConditions(if_match='"other"'), "412"),
        (ReadConditions(if_match=f'W/"{ETAG}"'), "412"),  # strong comparison
        (ReadConditions(if_none_match=f'"{ETAG}"'), "304"),
        (ReadConditions(if_none_match=f'W/"{ETAG}"'), "304"),  # weak comparison
        (ReadConditions(if_none_match="*"), "304"),
        (ReadConditions(if_none_match='"other"'), "200"),
        (ReadConditions(if_modified_since=BEFORE), "200"),
        (ReadConditions(if_modified_since=AT), "304"),
        (ReadConditions(if_modified_since=AFTER), "304"),
        (ReadConditions(if_unmodified_since=BEFORE), "412"),
        (ReadConditions(if_unmodified_since=AT), "200"),
        # S3's documented pairs: If-Match true wins over If-Unmodified-Since false ...
        (ReadConditions(if_match=ETAG, if_unmodified_since=BEFORE), "200"),
        # ... and If-None-Match false (a match) wins over If-Modified-Since true.
        (ReadConditions(if_none_match=ETAG, if_modified_since=BEFORE), "304"),
        (ReadConditions(if_none_match='"other"', if_modified_since=AFTER), "200"),
        (ReadConditions(if_match='"other"', if_none_match='"other"'), "412"),
        # invalid dates are ignored
        (ReadConditions(if_modified_since="yesterday"), "200"),
        (ReadConditions(if_unmodified_since="Sun, 31 Feb 2024 00:00:00 GMT"), "200"),
    ],
)
def test_precedence_of_read_conditions(conditions: ReadConditions, status: str) -> None:
    assert outcome(conditions) == status
    assert outcome(conditions, copy=True) == ("412" if status == "304" else status)


header_st = st.one_of(st.none(), st.sampled_from([ETAG, f'"{ETAG}"', '"x"', "*", f'"x", {ETAG}']))
date_st = st.one_of(st.none(), st.sampled_from([BEFORE, AT, AFTER, "garbage"]))


@given(im=header_st, inm=header_st, ims=date_st, ius=date_st)
def test_read_conditions_follow_rfc_9110(
    im: str | None, inm: str | None, ims: str | None, ius: str | None
) -> None:
    """The RFC's algorithm, written out step by step, as the oracle."""
    conditions = ReadConditions(im, inm, ims, ius)
    expected = "200"
    newer = {BEFORE: True, AT: False, AFTER: False}
    if (im is not None and not etag_matches(im, ETAG, weak=False)) or (
        im is None and ius is not None and newer.get(ius) is True
    ):
        expected = "412"
    elif (inm is not None and etag_matches(inm, ETAG, weak=True)) or (
        inm is None and ims is not None and newer.get(ims) is False
    ):
        expected = "304"
    assert outcome(conditions) == expected


@given(st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1)))
def test_http_dates_round_trip_in_all_three_formats(moment: dt.datetime) -> None:
    moment = moment.replace(microsecond=0, tzinfo=dt.UTC)
    assert parse_http_date(http_date(moment)) == moment
    assert parse_http_date(moment.strftime("%a %b %d %H:%M:%S %Y").replace(" 0", "  ", 1)) in (
        moment,
        None,  # asctime pads the day with a space; strftime's zero is refused
    )


def test_http_date_formats_of_rfc_9110() -> None:
    expected = dt.datetime(1994, 11, 6, 8, 49, 37, tzinfo=dt.UTC)
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == expected
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == expected
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == expected
    assert parse_http_date("2024-01-01T00:00:00Z") is None
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 PST") is None


def test_write_conditions() -> None:
    WriteCondition(if_none_match=True).check("k", None)
    with pytest.raises(PreconditionFailed):
        WriteCondition(if_none_match=True).check("k", ETAG)
    WriteCondition(if_match=f'"{ETAG}"').check("k", ETAG)
    WriteCondition(if_match="*").check("k", ETAG)
    with pytest.raises(PreconditionFailed):
        WriteCondition(if_match='"other"').check("k", ETAG)
    with pytest.raises(NotFound):
        WriteCondition(if_match=ETAG).check("k", None)


def test_write_if_none_match_with_etags() -> None:
    """S3 takes ETags in a write's If-None-Match too: the write fails only over an
    object that has one of them (compared weakly)."""
    for tags in (f'"{ETAG}"', ETAG, f'W/"{ETAG}"', f'"other", "{ETAG}"'):
        with pytest.raises(PreconditionFailed):
            WriteCondition(if_none_match=tags).check("k", ETAG)
    WriteCondition(if_none_match='"other"').check("k", ETAG)
    WriteCondition(if_none_match=f'"{ETAG}"').check("k", None)
