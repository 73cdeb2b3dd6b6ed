"""``s3bp.verify``: local copies and S3 checked against the sync records, without downloading; ``repair`` mends corruption only."""

from __future__ import annotations

import os

import pytest

from s3bp.verifying import Check

from ..support import body


def flip_a_byte(path, at: int = 0) -> None:
    """Change one byte in place, keeping the size and the modification time (as bit rot would)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def synced(machine, bucket, monkeypatch):
    """A machine whose folder holds three small files and one multipart one, all pushed."""
    import s3bp.remote

    monkeypatch.setattr(s3bp.remote, "MULTIPART_THRESHOLD", 8 * 1024 * 1024)  # big.bin (9 MiB) in two parts
    m = machine("a", bucket=bucket)
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        m.write(name, f"contents of {name}")
    (m.dir / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024))
    assert len(m.store.push(m.dir).uploaded) == 4
    return m


def statuses(report) -> dict[str, str]:
    return {os.path.relpath(f.path, report.directory): f.status.value for f in report.files}


def test_all_ok_costs_one_listing_and_no_download(synced):
    synced.log.clear()
    report = synced.store.verify(synced.dir)
    assert report.ok and set(statuses(report).values()) == {"ok"} and len(report.files) == 4
    assert synced.log.operations == ["ListObjectsV2"]


@pytest.mark.parametrize("name", ["a.txt", "big.bin"])
def test_a_flipped_byte_is_a_corrupt_copy_and_repair_mends_it(synced, raw, bucket, name):
    path = synced.dir / name
    good = path.read_bytes()
    flip_a_byte(path, at=len(good) - 1)
    report = synced.store.verify(synced.dir)
    assert statuses(report)[name] == "corrupt local copy" and not report.ok
    assert sum(f.status is Check.OK for f in report.files) == 3
    assert path.read_bytes() != good  # verify alone touches nothing
    mended = synced.store.verify(synced.dir, repair=True)
    assert mended.repaired == [str(path)] and mended.ok and path.read_bytes() == good
    assert synced.store.verify(synced.dir).ok


def test_s3_changes_and_local_edits_are_reported_and_repair_leaves_them(synced, raw, bucket):
    raw.put_object(Bucket=bucket, Key="data/a.txt", Body=b"changed by someone else")
    synced.write("b.txt", "edited here")
    raw.delete_object(Bucket=bucket, Key="data/sub/c.txt")
    report = synced.store.verify(synced.dir, repair=True)
    assert statuses(report) == {"a.txt": "S3 changed", "b.txt": "local changed", "sub/c.txt": "S3 changed", "big.bin": "ok"}
    assert report.repaired == [] and not report.ok
    assert synced.read("a.txt") == "contents of a.txt" and synced.read("b.txt") == "edited here"  # nothing downloaded
    assert body(raw, bucket, "data/b.txt") == b"contents of b.txt"  # nothing uploaded
    assert "2 S3 changed" in report.summary() and "1 local changed" in report.summary()


def test_a_corrupt_copy_edited_before_repair_is_kept(synced, monkeypatch):
    path = synced.dir / "a.txt"
    flip_a_byte(path)
    from s3bp import verifying

    real = verifying.findings

    def edit_meanwhile(f, same):  # the user edits the file after the check, before the repair
        out = real(f, same)
        if out.status is Check.CORRUPT:
            path.write_text("my edit")
        return out

    monkeypatch.setattr(verifying, "findings", edit_meanwhile)
    report = synced.store.verify(synced.dir, repair=True)
    assert report.repaired == [] and report.failed and path.read_text() == "my edit"


def test_files_never_synced_are_counted_not_checked(synced):
    synced.write("new.txt", "never pushed")
    report = synced.store.verify(synced.dir)
    assert report.ok and report.unrecorded == 1 and str(synced.dir / "new.txt") not in statuses(report)


def test_an_encrypted_object_whose_etag_is_no_md5_is_not_called_corrupt(machine, bucket):
    # On AWS an SSE-KMS object's ETag is no MD5 of its bytes, so a copy's bytes never give it. moto answers
    # with the MD5 all the same, so a flipped byte stands in for that here: one HEAD says the object is
    # encrypted, and the copy is "not checkable" rather than corrupt (and repair leaves it alone).
    m = machine("kms", bucket=bucket, upload_args={"ServerSideEncryption": "aws:kms"})
    path = m.write("secret.txt", "kept under a KMS key")
    assert len(m.store.push(m.dir).uploaded) == 1
    flip_a_byte(path)
    m.log.clear()
    report = m.store.verify(m.dir, repair=True)
    assert statuses(report) == {"secret.txt": "not checkable"} and report.ok and not report.repaired
    assert m.log.operations == ["ListObjectsV2", "HeadObject"]
