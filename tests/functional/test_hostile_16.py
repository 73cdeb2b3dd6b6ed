"""What a hostile new user found in metadata, ``info``, identical saves and the CLI's config commands, each kept fixed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

import s3bp
from s3bp.errors import ConfigError, InvalidArgumentError, InvalidPathError

from ..support import body


def run(*args, **env):
    return subprocess.run([sys.executable, "-m", "s3bp", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


def one_line_error(res, command: str) -> str:
    assert res.returncode == 1, res
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"s3bp {command}: ") and "Traceback" not in res.stderr, res.stderr
    return res.stderr


@pytest.fixture
def one(machine, bucket):
    """A machine with ``bucket`` as its default bucket (keys are file names)."""
    return machine("a", default_bucket=bucket)


@pytest.mark.parametrize(
    ("extra_args", "message"),
    [
        ({"Metadata": {"k": "é"}}, "printable ASCII"),
        ({"Metadata": {"ü": "x"}}, "ASCII header names"),
        ({"Metadata": {"k": 5}}, "printable ASCII"),
        ({"Metadata": ["k", "v"]}, "must be a dict"),
        ({"ContentType": 5}, "must be text"),
    ],
)
def test_metadata_and_content_type_in_extra_args_are_checked_before_anything_is_written(one, raw, bucket, extra_args, message):
    # These used to pass, write the file, journal it, and then fail every upload attempt in botocore's validation.
    path = one.root / "m.pkl"
    with pytest.raises(InvalidArgumentError, match=message) as info:
        one.store.save_object(1, path, extra_args=extra_args)
    assert str(path) in str(info.value) and "Nothing was written" in str(info.value)
    assert not path.exists() and one.store.pending_uploads() == [] and "Contents" not in raw.list_objects_v2(Bucket=bucket)


def test_bad_metadata_in_the_upload_args_setting_is_checked_too(one, raw, bucket):
    one.store.config.update(lambda d: d.__setitem__("upload_args", {"Metadata": {"k": "ü"}}))
    path = one.root / "f.txt"
    path.write_text("x")
    with pytest.raises(InvalidArgumentError, match="upload_args"):
        one.store.upload_file(path)
    assert one.store.pending_uploads() == [] and "Contents" not in raw.list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize("value", [" leading", "trailing ", " both "])
def test_a_metadata_value_s3_would_trim_is_refused(one, raw, bucket, value):
    # S3 (and moto) trim header values: the object would carry another value than asked, and no later
    # identical save could ever match it.
    path = one.root / "m.pkl"
    with pytest.raises(InvalidArgumentError, match="starts or ends with a space"):
        one.store.save_object(1, path, metadata={"note": value})
    assert not path.exists() and "Contents" not in raw.list_objects_v2(Bucket=bucket)
    one.store.save_object(1, path, metadata={"note": "inner spaces are fine"}, wait=True)
    assert raw.head_object(Bucket=bucket, Key="m.pkl")["Metadata"]["note"] == "inner spaces are fine"


def test_info_of_a_directory_is_refused_not_described_as_a_file(one, tmp_path):
    folder = one.root / "folder"
    folder.mkdir()
    one.log.clear()
    with pytest.raises(InvalidPathError, match="is a directory"):
        one.store.info(folder)
    assert one.log.operations == []  # refused before any request


def test_info_of_a_directory_on_the_command_line(tmp_path, endpoint, bucket):
    s3bp.set_default_bucket(bucket)
    res = run("info", str(tmp_path))
    assert str(tmp_path) in one_line_error(res, "info") and "is a directory" in res.stderr and res.stdout == ""


def test_config_unset_of_an_unknown_setting_is_a_clear_error():
    res = run("config", "unset", "no_such_setting")
    assert "Unknown setting 'no_such_setting'" in one_line_error(res, "config")
    with pytest.raises(ConfigError, match="no_such_setting"):
        s3bp.configure(no_such_setting=None)


@pytest.mark.parametrize(("key", "value"), [("endpoint_url", "localhost:9000"), ("endpoint_url", "ftp://host"), ("region", "eu west 1")])
def test_config_refuses_an_endpoint_url_or_region_that_boto3_cannot_use(key, value):
    res = run("config", "set", key, value)
    assert repr(value) in one_line_error(res, "config")
    assert not os.path.exists(os.environ["S3BP_CONFIG"]) or key not in (yaml.safe_load(open(os.environ["S3BP_CONFIG"])) or {})
    flag = "--" + key.replace("_", "-")
    res = run(flag, value, "config")  # the global options are checked as the file is
    assert repr(value) in one_line_error(res, "config")


def test_config_accepts_the_endpoint_urls_people_use():
    for url in ("http://localhost:9000", "https://s3.eu-central-1.amazonaws.com", "http://127.0.0.1:9000/", "https://minio.example.org:443"):
        assert run("config", "set", "endpoint_url", url).returncode == 0
        assert yaml.safe_load(open(os.environ["S3BP_CONFIG"]))["endpoint_url"] == url


def test_import_0_1_says_what_it_could_not_import(tmp_path):
    listed = tmp_path / "listed.yml"
    listed.write_text("- default_bucket\n- my-bucket\n")
    res = run("config", "import-0.1", str(listed))
    assert res.returncode == 1 and "not the mapping of settings" in res.stderr and "nothing to import" not in res.stdout

    old = tmp_path / "s3bp_cfg.yml"
    old.write_text("default_bucket: 12345\nbase_dir_to_bucket_map:\n  /tmp/gone-dir: kept-bucket\n")
    res = run("config", "import-0.1", str(old))
    assert res.returncode == 1 and "default_bucket" in res.stderr and "12345" in res.stderr
    assert "imported mapping /tmp/gone-dir -> kept-bucket" in res.stdout  # what could be imported still is
    assert yaml.safe_load(open(os.environ["S3BP_CONFIG"]))["base_dir_to_bucket_map"] == {"/tmp/gone-dir": "kept-bucket"}


def test_import_0_1_never_runs_python_tags(tmp_path):
    marker = tmp_path / "ran"
    hostile = tmp_path / "s3bp_cfg.yml"
    hostile.write_text(f'default_bucket: !!python/object/apply:os.system ["touch {marker}"]\n')
    res = run("config", "import-0.1", str(hostile))
    assert str(hostile) in one_line_error(res, "config") and not marker.exists()


def test_an_identical_save_inside_max_age_does_not_see_another_writers_change(machine, raw, bucket):
    # The documented price of max_age on a save: no request, so a change in S3 inside the window is not seen.
    # What must still hold: S3 keeps the other writer's bytes (never replaced), and the next load after the
    # window brings them.
    a = machine("a", default_bucket=bucket, max_age=3600)
    path = a.root / "d.pkl"
    a.store.save_object("mine", path, wait=True)
    raw.put_object(Bucket=bucket, Key="d.pkl", Body=b"theirs")
    a.log.clear()
    assert a.store.save_object("mine", path, wait=True).unchanged is True and a.log.operations == []
    assert body(raw, bucket, "d.pkl") == b"theirs"
    a.store.config.update(lambda d: d.__setitem__("max_age", 0))
    with pytest.raises(Exception, match="pickle|load"):  # "theirs" is no pickle: what matters is that it was fetched
        a.store.load_object(path)
    assert path.read_bytes() == b"theirs"


def test_info_on_the_command_line_takes_a_bucket_as_where_does(tmp_path, endpoint, bucket, raw):
    # With no mapping and no default bucket, `s3bp info PATH` had no way to name the bucket.
    path = tmp_path / "loose.pkl"
    s3bp.save_object({"a": 1}, path, bucket, wait=True)
    assert "No bucket" in one_line_error(run("info", str(path)), "info")
    res = run("info", str(path), "--bucket", bucket, "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert (info["bucket"], info["key"], info["state"]) == (bucket, "loose.pkl", "same")


def test_verify_of_a_url_says_to_give_the_local_directory(endpoint, bucket):
    # It used to read s3://bucket/ as a local path and advise `s3bp map <cwd>/s3:/bucket BUCKET`.
    res = run("verify", f"s3://{bucket}/data/")
    err = one_line_error(res, "verify")
    assert f"s3://{bucket}/data/" in err and "s3:/" + bucket not in err.replace(f"s3://{bucket}", "") and "local directory" in err
    with pytest.raises(InvalidPathError):
        s3bp.verify(f"s3://{bucket}/data/")
