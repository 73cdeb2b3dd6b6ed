"""How a folder's files move: one request per file below the multipart threshold, every body checked as it streams."""

from __future__ import annotations

import os

import boto3.s3.transfer
import pytest

from s3bp.index import StateDB

from ..support import make_machine

MIB = 1024 * 1024


@pytest.fixture
def machines(machine, bucket):
    """Two computers, each with its own copy of the ``project`` folder mapped to ``bucket``."""
    return [machine(name, folder="project", bucket=bucket) for name in ("laptop", "server")]


def write(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def record(m, rel):
    """The sync record of ``rel`` in machine ``m``'s folder (read by a separate connection)."""
    db = StateDB(os.path.join(m.root, "state", "state.sqlite3"))
    try:
        return db.record(str(m.dir / rel))
    finally:
        db.close()


def test_a_push_and_a_pull_of_medium_files_send_one_request_per_file(machines, raw, bucket):
    laptop, server = machines
    files = {f"part-{i}/blob.bin": os.urandom(9 * MIB + i) for i in range(3)} | {"small.txt": b"hello"}
    for rel, data in files.items():
        write(laptop.dir / rel, data)
    laptop.log.clear()
    report = laptop.store.push(laptop.dir)
    assert report.ok and len(report.uploaded) == 4
    ops = laptop.log.operations
    assert ops.count("PutObject") == 4 and "CreateMultipartUpload" not in ops and "HeadObject" not in ops
    assert "-" not in raw.head_object(Bucket=bucket, Key="project/part-0/blob.bin")["ETag"]  # one PUT: an MD5 ETag

    report = server.store.pull(server.dir)
    assert report.ok and len(report.downloaded) == 4
    assert sorted(server.log.operations) == ["GetObject"] * 4 + ["ListObjectsV2"]  # one whole GET per file, no HEAD
    for rel, data in files.items():
        assert (server.dir / rel).read_bytes() == data
        rec = record(server, rel)
        assert rec.size == len(data) and rec.etag == raw.head_object(Bucket=bucket, Key=f"project/{rel}")["ETag"]
    server.log.clear()
    assert server.store.pull(server.dir).unchanged == 4 and server.log.operations == ["ListObjectsV2"]


@pytest.mark.parametrize(("part_size", "heads"), [(8 * MIB, 0), (5 * MIB, 1)], ids=["s3transfer-parts", "other-parts"])
def test_a_multipart_object_is_checked_part_by_part_as_it_streams(machines, raw, bucket, tmp_path, part_size, heads):
    # Uploaded by another tool in parts: s3transfer's part size follows from the size and the number of parts, so
    # the ETag is checked on the way with no other request; parts of another size are asked for (one HEAD, part 1).
    _, server = machines
    data = os.urandom(17 * MIB + 5)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)
    raw.upload_file(str(src), bucket, "project/blob.bin", Config=config)
    etag = raw.head_object(Bucket=bucket, Key="project/blob.bin")["ETag"]
    assert "-" in etag
    report = server.store.pull(server.dir)
    assert report.ok and report.downloaded == [str(server.dir / "blob.bin")]
    assert server.log.operations.count("GetObject") == 1 and server.log.operations.count("HeadObject") == heads
    assert (server.dir / "blob.bin").read_bytes() == data
    rec = record(server, "blob.bin")
    assert (rec.etag, rec.part_size) == (etag, part_size)


@pytest.mark.parametrize("size", [100_000, 9 * MIB + 3], ids=["small", "medium"])
def test_a_pull_refuses_a_body_cut_short_and_framed_as_complete(tmp_path, raw, bucket, proxy, size):
    data = os.urandom(size)
    raw.put_object(Bucket=bucket, Key="project/blob.bin", Body=data)
    m = make_machine(tmp_path / "m", proxy.url, folder="project", bucket=bucket)
    try:
        proxy.script("pass", ("truncate", 4096))  # the listing passes; the GET's answer loses its last 4 KiB
        report = m.store.pull(m.dir)
        assert proxy.cut == 1
        assert [p for p, _ in report.failed] == [str(m.dir / "blob.bin")] and "cut short" in report.failed[0][1]
        assert os.listdir(m.dir) == [] and record(m, "blob.bin") is None
        proxy.clear()
        assert m.store.pull(m.dir).ok and (m.dir / "blob.bin").read_bytes() == data
    finally:
        m.close()


def test_an_object_replaced_after_the_listing_is_pulled_as_it_now_is(machines, raw, bucket, monkeypatch):
    # The listing said one version; the GET brings another (larger) one: its size is not the listed one, and that is
    # no truncation. It is fetched again as a load fetches it, and checked against its own ETag.
    _, server = machines
    raw.put_object(Bucket=bucket, Key="project/blob.bin", Body=b"listed version")
    newer = os.urandom(3 * MIB)
    replaced = []

    def replace_first(**kwargs):
        if not replaced:
            replaced.append(raw.put_object(Bucket=bucket, Key="project/blob.bin", Body=newer))

    server.store.client().meta.events.register("before-call.s3.GetObject", replace_first)
    report = server.store.pull(server.dir)
    assert report.ok and (server.dir / "blob.bin").read_bytes() == newer
    assert record(server, "blob.bin").etag == replaced[0]["ETag"]


def test_a_changed_medium_file_is_pushed_with_one_conditional_put(machines, raw, bucket):
    # Below the multipart threshold a PUT carries IfMatch itself: no HEAD before it, none after; a version written by
    # another machine since this one's sync is still never replaced.
    laptop, server = machines
    write(laptop.dir / "blob.bin", os.urandom(9 * MIB))
    assert laptop.store.push(laptop.dir).ok and server.store.pull(server.dir).ok
    theirs = os.urandom(9 * MIB + 1)
    write(server.dir / "blob.bin", theirs)
    conditions = []

    def note(params, **kwargs):
        if ".s3bp-probe-" not in params["url_path"]:  # the one probe of whether the endpoint honours conditions
            conditions.append(params["headers"].get("If-Match"))

    server.store.client().meta.events.register("before-call.s3.PutObject", note)
    server.log.clear()
    assert server.store.push(server.dir).ok
    assert set(server.log.operations) == {"PutObject"} and conditions == [record(laptop, "blob.bin").etag]

    write(laptop.dir / "blob.bin", os.urandom(9 * MIB + 2))  # edited on the laptop, which still holds the older sync
    report = laptop.store.push(laptop.dir)
    assert report.conflicts == [str(laptop.dir / "blob.bin")]
    assert raw.get_object(Bucket=bucket, Key="project/blob.bin")["Body"].read() == theirs


def test_a_medium_object_streamed_in_two_gets_shows_its_progress_when_asked(raw, bucket, tmp_path, capsys):
    from s3bp.remote import Wire

    data = os.urandom(9 * MIB)
    raw.put_object(Bucket=bucket, Key="blob.bin", Body=data)
    wire = Wire(raw)
    first = wire.get(bucket, "blob.bin")
    assert first.ranged and first.size == len(data)
    assert wire.fetch(first, bucket, "blob.bin", str(tmp_path / "out.bin"), progress=True) == 0  # an MD5 ETag
    assert (tmp_path / "out.bin").read_bytes() == data
    assert "100%" in capsys.readouterr().err


def test_a_multipart_object_of_one_part_is_checked_as_it_streams(machines, raw, bucket):
    _, server = machines
    data = os.urandom(100_000)
    upload = raw.create_multipart_upload(Bucket=bucket, Key="project/one.bin")["UploadId"]
    part = raw.upload_part(Bucket=bucket, Key="project/one.bin", UploadId=upload, PartNumber=1, Body=data)
    raw.complete_multipart_upload(
        Bucket=bucket, Key="project/one.bin", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    etag = raw.head_object(Bucket=bucket, Key="project/one.bin")["ETag"]
    assert etag.endswith('-1"')
    assert server.store.pull(server.dir).ok and (server.dir / "one.bin").read_bytes() == data
    assert server.log.operations.count("GetObject") == 1 and "HeadObject" not in server.log.operations
    assert (record(server, "one.bin").etag, record(server, "one.bin").part_size) == (etag, len(data))


def test_a_push_of_many_files_journals_them_in_batches_and_uploads_every_one(machine, raw, bucket):
    """More files than one journal batch holds: every one is uploaded and recorded, and the journal is left empty."""
    from s3bp.uploads import BATCH_FILES

    laptop = machine("laptop", folder="project", bucket=bucket)
    files = {f"d{i % 3}/f{i:04d}.bin": os.urandom(100 + i) for i in range(2 * BATCH_FILES + 7)}
    for rel, data in files.items():
        write(laptop.dir / rel, data)
    report = laptop.store.push(laptop.dir)
    assert report.ok and len(report.uploaded) == len(files)
    db, queue = laptop.store._state()
    for rel, data in files.items():
        assert raw.get_object(Bucket=bucket, Key=f"project/{rel}")["Body"].read() == data
        assert record(laptop, rel).size == len(data)
    assert db.entries(queue._owner.token) == []  # every journal row was settled


def test_journal_many_reports_a_file_it_cannot_snapshot_and_journals_the_others(machine, raw, bucket):
    from s3bp.uploads import Save, UploadOptions

    laptop = machine("laptop", folder="project", bucket=bucket)
    names = ["a.bin", "gone.bin", "c.bin"]
    for name in names:
        write(laptop.dir / name, name.encode())
    (laptop.dir / "gone.bin").unlink()
    db, queue = laptop.store._state()
    wire = laptop.store._wire(laptop.store.settings())
    saves = [Save(str(laptop.dir / n), bucket, f"project/{n}", UploadOptions()) for n in names]
    got = queue.journal_many(saves, endpoint=wire.endpoint, profile=None, region=wire.region, wait=True)
    assert isinstance(got[1], FileNotFoundError)
    assert [g.result() for g in (got[0], got[2])] == ["project/a.bin", "project/c.bin"]
    assert raw.get_object(Bucket=bucket, Key="project/c.bin")["Body"].read() == b"c.bin"
    assert not os.listdir(os.path.join(laptop.root, "state", "spool"))  # no snapshot left behind

