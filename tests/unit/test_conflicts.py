"""Conflict decisions from plain values: the PUT's condition and what a refusal means."""

from __future__ import annotations

import pytest

from s3bp.conflicts import Condition, Refusal, after_refusal, conflict_error, head_allows, put_condition
from s3bp.errors import ConflictError
from s3bp.freshness import SyncRecord

MIB = 1024 * 1024


def record(etag='"ours"', saved_ns=5):
    return SyncRecord("/p", "http://s3", "b", "k", etag, 3, 1, 1_700_000_000.0, saved_ns)


def test_no_record_means_no_condition():
    assert put_condition(10, None, 8 * MIB) == Condition()


def test_small_upload_carries_if_match_large_one_a_head_check():
    assert put_condition(10, record(), 8 * MIB) == Condition(if_match='"ours"')
    assert put_condition(8 * MIB, record(), 8 * MIB) == Condition(head_check='"ours"')


@pytest.mark.parametrize(("current", "allowed"), [(None, True), ('"ours"', True), ('"theirs"', False)])
def test_head_check(current, allowed):
    assert head_allows(Condition(head_check='"ours"'), current) is allowed
    assert head_allows(Condition(), current) is True


@pytest.mark.parametrize(
    ("current", "latest", "newest", "seq", "expected"),
    [
        (None, record(), 5, 9, Refusal.RETRY),  # deleted in S3 meanwhile
        ('"ours"', record(), 5, 9, Refusal.RETRY),  # a store without conditions that still holds our version
        ('"theirs"', record(), 5, 9, Refusal.CONFLICT),  # another writer
        ('"theirs"', None, 0, 9, Refusal.CONFLICT),
        ('"mine2"', record('"mine2"', 7), 7, 9, Refusal.OVER_LATEST),  # an older save of this machine landed first
        ('"mine2"', record('"mine2"', 12), 12, 9, Refusal.SUPERSEDED),  # a newer save of this machine landed first
    ],
)
def test_after_refusal(current, latest, newest, seq, expected):
    assert after_refusal(record=record(), current_etag=current, latest=latest, newest_upload=newest, seq=seq) is expected


def test_conflict_error_names_both_sides_and_the_remedies():
    err = conflict_error(path="/d/x.pkl", bucket="b", key="x.pkl", saved_at=1_700_000_100, changed_at=1_700_000_050, synced_at=1_700_000_000)
    assert isinstance(err, ConflictError) and (err.path, err.bucket, err.key) == ("/d/x.pkl", "b", "x.pkl")
    text = str(err)
    assert "s3://b/x.pkl" in text and "2023-11-14 22:14:10 UTC" in text and "2023-11-14 22:15:00 UTC" in text
    assert "keep='local'" in text and "/d/x.pkl.s3bp-local" in text and "s3bp resolve" not in text  # Python names functions
    cli = err.cli_message()  # the s3bp command names commands
    assert "`s3bp resolve /d/x.pkl --keep local`" in cli and "/d/x.pkl.s3bp-local" in cli and "resolve_conflict" not in cli
    assert "changed in S3 by another writer" in str(conflict_error(path="/p", bucket="b", key="k", saved_at=0, changed_at=None, synced_at=None))
