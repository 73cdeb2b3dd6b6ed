"""Errors a user meets against a real endpoint: each names what was asked and what to do."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import s3bp
from s3bp.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    EndpointError,
    UploadError,
)

MISSING = "s3bp-no-such-bucket-here"


def test_missing_bucket_on_load(tmp_path, endpoint):
    with pytest.raises(BucketNotFoundError, match=f"bucket '{MISSING}' does not exist"):
        s3bp.load_object(tmp_path / "f.pkl", MISSING)


def test_missing_bucket_on_waited_save(tmp_path, endpoint):
    with pytest.raises(UploadError, match=f"s3://{MISSING}/f.pkl") as info:
        s3bp.save_object(1, tmp_path / "f.pkl", MISSING, wait=True)
    assert isinstance(info.value.__cause__, BucketNotFoundError)
    assert (tmp_path / "f.pkl").exists()  # the local file is kept


def test_background_failure_is_printed_logged_and_raised_by_flush(tmp_path, endpoint, capsys, caplog):
    with caplog.at_level(logging.ERROR, logger="s3bp"):
        fut = s3bp.save_object(1, tmp_path / "f.pkl", MISSING)
        assert isinstance(fut.exception(timeout=30), UploadError)
    err = capsys.readouterr().err
    assert err.count(f"s3://{MISSING}/f.pkl") == 1 and "does not exist" in err
    assert any(f"s3://{MISSING}/f.pkl" in r.getMessage() for r in caplog.records)
    with pytest.raises(UploadError, match="1 upload") as info:
        s3bp.flush()
    assert info.value.failures[0][:2] == (MISSING, "f.pkl")
    [pending] = s3bp.pending_uploads()
    assert pending.state == "failed" and pending.attempts == 2 and "does not exist" in pending.last_error


def test_access_denied(tmp_path, bucket, proxy):
    proxy.always(403)
    with pytest.raises(AccessDeniedError, match=f"s3://{bucket}/f.pkl: access denied") as info:
        s3bp.load_object(tmp_path / "f.pkl", bucket)
    assert isinstance(info.value, PermissionError)


def test_no_credentials(tmp_path, bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialsError, match="no usable AWS credentials.*aws configure"):
        s3bp.load_object(tmp_path / "f.pkl", bucket)


def test_unreachable_endpoint_is_named(tmp_path, bucket, proxy):
    s3bp.get_default_store().config.update(lambda d: d.__setitem__("max_attempts", 1))
    proxy.off()
    with pytest.raises(EndpointError, match="could not be reached"):
        s3bp.load_object(tmp_path / "f.pkl", bucket)


def test_config_persists_across_processes(tmp_path, bucket):
    s3bp.set_default_bucket(bucket)
    s3bp.map_base_directory_to_bucket(tmp_path / "proj", bucket)
    code = (
        "import s3bp; s=s3bp.get_default_store();"
        f"print(s.settings()['default_bucket']); print(s.resolve({str(tmp_path / 'proj' / 'x')!r}).key)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [bucket, "proj/x"]
