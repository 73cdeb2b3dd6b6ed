"""Faults: an absent endpoint, corruption in transit, many processes at once, and secrets kept out of messages."""

from __future__ import annotations

import json
import logging
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import warnings

import pytest

import s3bp
from s3bp.errors import DownloadError, EndpointError, OfflineWarning


def fresh_store():
    """A new default store (new client, new connections) on the same config and state dir."""
    old = s3bp.set_default_store(None)
    if old is not None:
        old.close()


def test_offline_load_uses_the_local_copy_with_one_warning(tmp_path, bucket, proxy):
    path = tmp_path / "model.pkl"
    s3bp.save_object({"w": 1}, path, bucket, wait=True)
    s3bp.get_default_store().config.update(lambda d: d.update(max_attempts=2, connect_timeout=1))
    fresh_store()
    proxy.off()
    with pytest.warns(OfflineWarning, match="unreachable") as caught:
        assert s3bp.load_object(path, bucket) == {"w": 1}
    assert len([w for w in caught if issubclass(w.category, OfflineWarning)]) == 1
    with pytest.raises(EndpointError, match="could not be reached"):
        s3bp.load_object(path, bucket, offline="error")
    with pytest.raises(EndpointError, match="could not be reached"):
        s3bp.load_object(tmp_path / "never-saved.pkl", bucket)
    s3bp.save_object({"w": 2}, path, bucket)  # journaled while offline
    proxy.on()
    s3bp.flush()
    fresh_store()
    assert s3bp.load_object(path, bucket) == {"w": 2}


def test_offline_error_from_the_config(tmp_path, bucket, proxy):
    path = tmp_path / "x.pkl"
    s3bp.save_object(1, path, bucket, wait=True)
    s3bp.get_default_store().config.update(lambda d: d.update(offline="error", max_attempts=1))
    fresh_store()
    proxy.off()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EndpointError):
            s3bp.load_object(path, bucket)


@pytest.mark.parametrize("checksum", ["when_supported", "when_required"], ids=["flexible-checksum", "md5-etag-only"])
def test_corrupted_download_is_refused_and_the_old_file_kept(tmp_path, bucket, proxy, s3_server, checksum):
    from tests.support import raw_client

    raw = raw_client(s3_server, request_checksum_calculation=checksum)  # "when_required": no checksum stored
    path = tmp_path / "blob.bin"
    read = lambda p: open(p, "rb").read()  # noqa: E731
    raw.put_object(Bucket=bucket, Key="blob.bin", Body=b"version 1 GOODBYTES")
    assert s3bp.load_object(path, bucket, deserializer=read) == b"version 1 GOODBYTES"
    raw.put_object(Bucket=bucket, Key="blob.bin", Body=b"version 2 GOODBYTES, longer")
    fresh_store()
    proxy.always(("replace", b"GOODBYTES", b"EVILBYTES"))
    with pytest.raises(DownloadError, match="corrupted in transit"):
        s3bp.load_object(path, bucket, deserializer=read)
    assert read(path) == b"version 1 GOODBYTES"
    assert sorted(os.listdir(tmp_path)) == ["blob.bin"]  # no temp file left behind
    proxy.clear()
    fresh_store()
    assert s3bp.load_object(path, bucket, deserializer=read) == b"version 2 GOODBYTES, longer"


def test_uploads_carry_a_checksum(tmp_path, bucket, raw):
    s3bp.save_object(b"x" * 1000, tmp_path / "c.pkl", bucket, wait=True)
    head = raw.head_object(Bucket=bucket, Key="c.pkl", ChecksumMode="ENABLED")
    assert any(k.startswith("Checksum") and k != "ChecksumType" for k in head)


SECRET = "s3bpFAKEsecretDoNotLeak0123456789abcdefXYZ"


def test_no_secret_in_messages_or_logs(tmp_path, bucket, proxy, monkeypatch, capsys, caplog):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET + "token")
    caplog.set_level(logging.DEBUG, logger="s3bp")
    s3bp.get_default_store().config.update(lambda d: d.update(max_attempts=1))
    fresh_store()
    texts = []
    proxy.always(403)
    for call in (
        lambda: s3bp.save_object(1, tmp_path / "a.pkl", bucket, wait=True),
        lambda: s3bp.load_object(tmp_path / "b.pkl", bucket),
    ):
        with pytest.raises(s3bp.S3bpError) as info:
            call()
        texts.append(str(info.value) + repr(info.value.__cause__))
    s3bp.save_object(2, tmp_path / "c.pkl", bucket)  # background failure: printed and logged
    with pytest.raises(s3bp.UploadError) as info:
        s3bp.flush()
    texts.append(str(info.value))
    proxy.off()
    with pytest.raises(EndpointError) as info:
        s3bp.load_object(tmp_path / "d.pkl", bucket)
    texts.append(str(info.value))
    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text]
    assert "access denied" in " ".join(texts).lower()
    for text in texts:
        assert SECRET not in text


WORKER = textwrap.dedent(
    """
    import json, os, random, sys
    import s3bp

    me, root, bucket = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    rnd = random.Random(me)
    dirs = [os.path.join(root, "shared-a"), os.path.join(root, "shared-b")]
    last = {}
    for i in range(100):
        k = rnd.randrange(20)
        path = os.path.join(dirs[k % 2], f"key-{k}.pkl")
        value = {"writer": me, "i": i, "payload": list(range(me * 1000 + i, me * 1000 + i + 200))}
        if rnd.random() < 0.5:
            s3bp.save_object(value, path, wait=rnd.random() < 0.2, conflict="overwrite")
            last[path] = value
        else:
            try:
                got = s3bp.load_object(path)
            except s3bp.ObjectNotFoundError:
                continue
            assert got["payload"] == list(range(got["writer"] * 1000 + got["i"], got["writer"] * 1000 + got["i"] + 200)), got
        if i % 10 == 0:  # config edits in between: our own mapping and a setting
            scratch = os.path.join(root, f"scratch-{me}-{i}")
            s3bp.map_base_directory_to_bucket(scratch, bucket)
            s3bp.set_max_workers(rnd.choice([2, 4, 8]))
            s3bp.remove_base_directory_mapping(scratch)
    s3bp.flush()
    json.dump({p: [v["writer"], v["i"]] for p, v in last.items()}, open(os.path.join(root, f"last-{me}.json"), "w"))
    """
)


def test_four_processes_share_keys_mappings_and_state(tmp_path, bucket, raw, endpoint):
    for name in ("shared-a", "shared-b"):
        s3bp.map_base_directory_to_bucket(tmp_path / name, bucket)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(n), str(tmp_path), bucket], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    results = [p.communicate(timeout=240) + (p.returncode,) for p in procs]
    for _out, err, code in results:
        assert code == 0, err
    mapping = s3bp.get_default_store().settings()["base_dir_to_bucket_map"]
    assert mapping == {str(tmp_path / "shared-a"): bucket, str(tmp_path / "shared-b"): bucket}  # none lost, no scratch left
    state = os.environ["S3BP_STATE_DIR"]
    with sqlite3.connect(os.path.join(state, "state.sqlite3")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM journal").fetchone() == (0,)
    lasts = [json.load(open(tmp_path / f"last-{n}.json")) for n in range(4)]
    for path in set().union(*lasts):
        key = os.path.relpath(path, tmp_path)
        value = pickle.loads(raw.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert [value["writer"], value["i"]] in [last[path] for last in lasts if path in last], key
        local = pickle.load(open(path, "rb"))  # intact, and one of the saved values
        assert local["payload"][0] == local["writer"] * 1000 + local["i"]
