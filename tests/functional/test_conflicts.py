"""Someone else's newer version is never silently replaced; upload settings pass through."""

from __future__ import annotations

import pytest

from s3bp import ConflictError, UploadError
from s3bp.errors import InvalidArgumentError

from ..support import unpickled


@pytest.fixture
def two(machine, bucket):
    """Two machines with their own state, sharing ``bucket`` as default; each has its own copy of data.pkl."""
    made = [machine(name, default_bucket=bucket) for name in ("a", "b")]
    return [(m.store, m.root / "data.pkl") for m in made]


def test_save_over_a_newer_remote_version_raises(two, raw, bucket):
    (a, pa), (b, pb) = two
    a.save_object("v1", pa, wait=True)
    assert b.load_object(pb) == "v1"
    a.save_object("v2 from a", pa, wait=True)
    with pytest.raises(ConflictError) as info:
        b.save_object("v3 from b", pb, wait=True)
    message = str(info.value)
    assert "was changed in S3 at" in message and "UTC" in message and str(pb) in message and "keep='local'" in message
    assert unpickled(raw, bucket, "data.pkl") == "v2 from a"  # a's version stands
    assert b.load_object(pb) == "v3 from b"  # b's stays on disk, journaled: nothing lost
    assert [p.last_error is not None for p in b.pending_uploads()] == [True]


def test_keep_remote_moves_ours_aside(two, raw, bucket):
    (a, pa), (b, pb) = two
    a.save_object("v1", pa, wait=True)
    b.load_object(pb)
    a.save_object("theirs", pa, wait=True)
    with pytest.raises(ConflictError):
        b.save_object("ours", pb, wait=True)
    b.resolve_conflict(pb, keep="remote")
    assert b.load_object(pb) == "theirs" and b.pending_uploads() == []
    import pickle

    assert pickle.loads(pb.with_name("data.pkl.s3bp-local").read_bytes()) == "ours"


def test_keep_local_overwrites(two, raw, bucket):
    (a, pa), (b, pb) = two
    a.save_object("v1", pa, wait=True)
    b.load_object(pb)
    a.save_object("theirs", pa, wait=True)
    b.save_object("ours", pb)  # in the background: the conflict surfaces in flush
    with pytest.raises(UploadError, match="was changed in S3"):
        b.flush()
    b.resolve_conflict(pb, keep="local")
    assert unpickled(raw, bucket, "data.pkl") == "ours" and b.pending_uploads() == []
    assert a.load_object(pa) == "ours"


def test_overwrite_keeps_the_old_behaviour(two, raw, bucket):
    (a, pa), (b, pb) = two
    a.save_object("v1", pa, wait=True)
    b.load_object(pb)
    a.save_object("v2", pa, wait=True)
    b.save_object("v3", pb, wait=True, conflict="overwrite")
    assert unpickled(raw, bucket, "data.pkl") == "v3"


def test_conflict_rule_from_the_config(two, raw, bucket):
    (a, pa), (b, pb) = two
    a.save_object("v1", pa, wait=True)
    b.load_object(pb)
    a.save_object("v2", pa, wait=True)
    b.config.update(lambda d: d.__setitem__("conflict", "overwrite"))
    b.save_object("v3", pb, wait=True)
    assert unpickled(raw, bucket, "data.pkl") == "v3"


def test_a_file_never_synced_overwrites_as_before(two, raw, bucket):
    (a, pa), (b, pb) = two
    a.save_object("v1", pa, wait=True)
    b.save_object("b never loaded it", pb, wait=True)
    assert unpickled(raw, bucket, "data.pkl") == "b never loaded it"


def test_saving_after_a_remote_delete_uploads(two, raw, bucket):
    (a, pa), (b, pb) = two
    a.save_object("v1", pa, wait=True)
    raw.delete_object(Bucket=bucket, Key="data.pkl")
    a.save_object("v2", pa, wait=True)
    assert unpickled(raw, bucket, "data.pkl") == "v2"


def test_own_successive_saves_never_conflict(two, raw, bucket):
    (a, pa), _ = two
    for i in range(10):
        a.save_object(i, pa, wait=bool(i % 2))
    a.flush()
    assert unpickled(raw, bucket, "data.pkl") == 9


def test_large_save_is_checked_before_its_parts_go(two, raw, bucket, monkeypatch):
    import s3bp.remote

    monkeypatch.setattr(s3bp.remote, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    (a, pa), (b, pb) = two
    big = b"x" * (6 * 1024 * 1024)
    a.save_object(big, pa, wait=True)
    b.load_object(pb)
    a.save_object(big + b"a", pa, wait=True)
    with pytest.raises(ConflictError):
        b.save_object(big + b"b", pb, wait=True)
    assert unpickled(raw, bucket, "data.pkl")[-1:] == b"a"


def test_upload_args_pass_through(tmp_path, bucket, raw):
    import s3bp

    path = tmp_path / "report.json"
    extra = {"ContentType": "application/json", "StorageClass": "STANDARD_IA", "Metadata": {"team": "ml"}, "ServerSideEncryption": "AES256"}
    s3bp.save_object({"a": 1}, path, bucket, serializer="json", wait=True, extra_args=extra)
    head = raw.head_object(Bucket=bucket, Key="report.json")
    assert head["ContentType"] == "application/json" and head["StorageClass"] == "STANDARD_IA"
    assert head["Metadata"]["team"] == "ml" and head["ServerSideEncryption"] == "AES256"  # beside s3bp's own keys


def test_upload_args_from_the_config(tmp_path, bucket, raw):
    import s3bp

    s3bp.get_default_store().config.update(lambda d: d.__setitem__("upload_args", {"ContentType": "text/csv"}))
    s3bp.save_object("x", tmp_path / "a.csv", bucket, wait=True)
    assert raw.head_object(Bucket=bucket, Key="a.csv")["ContentType"] == "text/csv"


@pytest.mark.parametrize(
    "extra, match",
    [({"Bucket": "other"}, "'Bucket'"), ({"IfMatch": "x"}, "'IfMatch'"), ({"ChecksumSHA256": "x"}, "ChecksumSHA256"), ("AES256", "dict")],
)
def test_bad_upload_args_are_refused_before_anything_is_written(tmp_path, bucket, raw, extra, match):
    import s3bp

    path = tmp_path / "x.pkl"
    with pytest.raises(InvalidArgumentError, match=match):
        s3bp.save_object(1, path, bucket, extra_args=extra)
    assert not path.exists() and "Contents" not in raw.list_objects_v2(Bucket=bucket)


def test_bad_conflict_value(tmp_path, bucket):
    import s3bp

    with pytest.raises(InvalidArgumentError, match="conflict"):
        s3bp.save_object(1, tmp_path / "x.pkl", bucket, conflict="maybe")


def test_a_writer_right_after_our_parts_is_not_recorded_as_ours(tmp_path, bucket, raw, monkeypatch):
    import os

    import s3bp
    import s3bp.remote

    monkeypatch.setattr(s3bp.remote, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    path = tmp_path / "big.bin"
    sneaked = []

    def another_writer_first(**kwargs):  # between our CompleteMultipartUpload and the HEAD that reads its ETag
        if not sneaked:
            sneaked.append(raw.put_object(Bucket=bucket, Key="big.bin", Body=b"theirs"))

    s3bp.get_default_store().client().meta.events.register("before-call.s3.HeadObject", another_writer_first)
    with pytest.raises(ConflictError):
        s3bp.save_object(os.urandom(6 * 1024 * 1024), path, bucket, serializer=lambda obj, p: open(p, "wb").write(obj), wait=True)
    assert raw.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == b"theirs"
    assert [p.held for p in s3bp.pending_uploads()] == [True]  # ours stays journaled, not recorded as in sync


def test_the_same_bytes_with_other_settings_are_not_taken_for_ours(two, raw, bucket):
    import pickle

    (a, pa), _ = two
    a.save_object("v1", pa, wait=True)
    raw.put_object(Bucket=bucket, Key="data.pkl", Body=pickle.dumps("v2", pickle.HIGHEST_PROTOCOL), ContentType="text/plain")
    with pytest.raises(ConflictError):  # same bytes as our save, but not the ContentType we ask for: not ours
        a.save_object("v2", pa, wait=True, extra_args={"ContentType": "application/x-python-pickle"})
