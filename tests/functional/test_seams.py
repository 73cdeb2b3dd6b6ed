"""Where saving, pushing, formats and loading meet: each case once leaked between two copies of one decision."""

from __future__ import annotations

import pytest

import s3bp
from s3bp.errors import AccessDeniedError, InvalidPathError, S3bpError, UploadError

from ..support import body


@pytest.mark.parametrize("operation", ["push", "sync"])
def test_folder_uploads_honour_upload_args_like_save(machine, raw, bucket, operation):
    m = machine("a", bucket=bucket, upload_args={"ContentType": "text/plain", "Metadata": {"team": "data"}})
    m.write("notes.txt", "pushed")
    m.store.save_object("saved", m.dir / "saved.pkl")
    m.store.flush()
    assert getattr(m.store, operation)(m.dir).uploaded == [str(m.dir / "notes.txt")]
    for key in ("data/notes.txt", "data/saved.pkl"):
        head = raw.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "text/plain" and head["Metadata"]["team"] == "data"  # beside s3bp's own keys


@pytest.mark.parametrize("rule", ["raise", "overwrite"])
def test_push_honours_the_conflict_setting_like_save(machine, raw, bucket, rule):
    m = machine("a", bucket=bucket, conflict=rule)
    m.write("x.txt", "v1")
    m.store.push(m.dir)
    m.write("x.txt", "v2 here")
    sent = []

    def another_writer_first(**kwargs):  # someone else writes after push surveyed the folder, before its PUT
        if not sent:
            sent.append(raw.put_object(Bucket=bucket, Key="data/x.txt", Body=b"theirs"))

    m.store.client().meta.events.register("before-call.s3.PutObject", another_writer_first)
    report = m.store.push(m.dir)
    if rule == "raise":
        assert report.conflicts == [str(m.dir / "x.txt")] and body(raw, bucket, "data/x.txt") == b"theirs"
    else:
        assert report.uploaded == [str(m.dir / "x.txt")] and body(raw, bucket, "data/x.txt") == b"v2 here"


def test_a_refusal_followed_by_a_denied_head_is_an_s3bp_error(tmp_path, bucket, raw, proxy):
    path = tmp_path / "x.pkl"
    s3bp.save_object("v1", path, bucket, wait=True)
    raw.put_object(Bucket=bucket, Key="x.pkl", Body=b"another writer")
    s3bp.set_default_store(None).close()  # a new client: its connections take the proxy's new rule
    proxy.always(("replace", b"HTTP/1.1 200 OK", b"HTTP/1.1 403 Forbidden"))  # the PUT gets its 412, the HEAD after it 403
    with pytest.raises(UploadError) as info:
        s3bp.save_object("v2", path, bucket, wait=True)
    assert isinstance(info.value.__cause__, AccessDeniedError) and "access denied" in str(info.value)
    chain, exc = [], info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__
    assert all(isinstance(e, S3bpError) for e in chain[:2])


def test_save_dataframe_uses_the_format_registered_for_the_suffix(tmp_path, bucket):
    pd = pytest.importorskip("pandas")
    written = []

    def write(df, filepath):
        written.append(filepath)
        df.to_json(filepath, orient="split")

    def read(filepath):
        return pd.read_json(filepath, orient="split")

    s3bp.register_format("split-json-test", write, read, suffixes=(".sjson",))
    try:
        df = pd.DataFrame({"a": [1, 2]}, index=[10, 20])
        path = tmp_path / "frame.sjson"
        s3bp.save_dataframe(df, path, bucket, wait=True)
        assert written and path.read_text().startswith('{"columns"')
        path.unlink()
        s3bp.set_default_store(None).close()
        pd.testing.assert_frame_equal(s3bp.load_dataframe(path, bucket), df)
    finally:
        s3bp.unregister_format("split-json-test")


def test_loading_a_directory_fails_before_any_request(tmp_path, bucket, requests_log):
    (tmp_path / "adir").mkdir()
    with pytest.raises(InvalidPathError, match="is a directory"):
        s3bp.load_object(tmp_path / "adir", bucket)
    with pytest.raises(InvalidPathError, match="is a directory"):
        s3bp.download_file(tmp_path / "adir", bucket)
    assert len(requests_log) == 0
