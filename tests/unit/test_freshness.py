"""The load plan, decided from plain values."""

from __future__ import annotations

import pytest

from s3bp.freshness import LocalStat, Step, SyncRecord, plan_load

EP, B, K = "http://s3", "bkt", "k"


def record(size=10, mtime_ns=1_000, verified_at=100.0, **kw):
    fields = dict(path="/p", endpoint=EP, bucket=B, key=K, etag='"e1"', size=size, mtime_ns=mtime_ns, verified_at=verified_at)
    fields.update(kw)
    return SyncRecord(**fields)


def plan(local, rec, pending=False, now=200.0, max_age=0.0, **where):
    kw = dict(endpoint=EP, bucket=B, key=K)
    kw.update(where)
    return plan_load(local, rec, pending=pending, now=now, max_age=max_age, **kw)


def test_no_local_file_gets():
    assert plan(None, record()).step is Step.GET
    assert plan(None, None, pending=True).step is Step.GET


def test_pending_upload_uses_local_file():
    assert plan(LocalStat(10, 1_000), None, pending=True).step is Step.USE_LOCAL


def test_matching_record_asks_if_etag_changed():
    p = plan(LocalStat(10, 1_000), record())
    assert p.step is Step.IF_NONE_MATCH and p.etag == '"e1"'


def test_edited_file_falls_back_to_modification_time():
    p = plan(LocalStat(11, 1_000), record())
    assert p.step is Step.IF_MODIFIED_SINCE
    p = plan(LocalStat(10, 5_000_000_000), record())
    assert p.step is Step.IF_MODIFIED_SINCE and p.since == 5.0


def test_record_of_another_object_does_not_count():
    assert plan(LocalStat(10, 1_000), record(), key="other").step is Step.IF_MODIFIED_SINCE
    assert plan(LocalStat(10, 1_000), record(), endpoint="http://elsewhere").step is Step.IF_MODIFIED_SINCE


def test_max_age_window():
    local = LocalStat(10, 1_000)
    assert plan(local, record(verified_at=190.0), max_age=30).step is Step.USE_LOCAL
    assert plan(local, record(verified_at=150.0), max_age=30).step is Step.IF_NONE_MATCH
    assert plan(local, record(verified_at=250.0), max_age=30).step is Step.IF_NONE_MATCH  # clock went back
    assert plan(local, record(verified_at=199.0), max_age=0).step is Step.IF_NONE_MATCH


# -- after the answer ---------------------------------------------------------

from s3bp.freshness import Answer, Plan, Verdict, after_answer, compare_seconds, md5_of_etag, record_of  # noqa: E402

GET, IF_NONE, IF_MOD = Plan(Step.GET), Plan(Step.IF_NONE_MATCH, etag='"e1"'), Plan(Step.IF_MODIFIED_SINCE, since=1.5)


@pytest.mark.parametrize(
    ("plan_", "answer", "offline", "expected"),
    [
        (GET, Answer.BODY, "warn", Verdict.DOWNLOAD),
        (IF_NONE, Answer.BODY, "warn", Verdict.DOWNLOAD),
        (IF_NONE, Answer.NOT_MODIFIED, "warn", Verdict.LOCAL_CURRENT),
        (IF_MOD, Answer.NOT_MODIFIED, "error", Verdict.LOCAL_CURRENT),
        (GET, Answer.MISSING, "warn", Verdict.NOT_FOUND),
        (IF_MOD, Answer.MISSING, "warn", Verdict.LOCAL_ONLY),
        (IF_NONE, Answer.UNREACHABLE, "warn", Verdict.OFFLINE),
        (IF_NONE, Answer.UNREACHABLE, "error", Verdict.FAIL),
        (GET, Answer.UNREACHABLE, "warn", Verdict.FAIL),
    ],
)
def test_after_answer(plan_, answer, offline, expected):
    assert after_answer(plan_, answer, offline=offline) is expected


def test_whole_second_comparison():
    sec = 1_000_000_000
    assert compare_seconds(100 * sec + 999_999_999, 100.0) == 0  # same second: a tie, however the ns differ
    assert compare_seconds(101 * sec, 100.9) == 1
    assert compare_seconds(100 * sec, 101.0) == -1


def test_md5_of_etag():
    md5 = "0" * 32
    assert md5_of_etag(f'"{md5}"') == md5
    assert md5_of_etag(f'"{md5}"', encrypted=True) is None  # SSE-KMS / SSE-C ETags are not the MD5
    assert md5_of_etag('"' + "a" * 32 + '-3"') is None  # multipart


def test_record_of_checks_the_object():
    rec = record()
    assert record_of(rec, EP, B, K) is rec
    assert record_of(rec, EP, B, "other") is None and record_of(rec, "http://elsewhere", B, K) is None
    assert record_of(None, EP, B, K) is None
