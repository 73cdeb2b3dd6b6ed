"""CLI habits users bring from ``aws`` and ``git``: config get/set/unset, global connection options, ``--json``,
``map``'s bucket check, remedies worded as commands, and the conflict helpers. Run as a user would: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

import s3bp
from s3bp.errors import ConfigError, NoBucketError

DEAD = "http://127.0.0.1:9"  # nothing listens there: a request to it fails at once


def run(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "s3bp", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def config_file() -> dict:
    path = os.environ["S3BP_CONFIG"]
    return yaml.safe_load(open(path)) if os.path.exists(path) else {}


def one_line_error(res, command: str) -> str:
    assert res.returncode == 1, res
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"s3bp {command}: ") and "Traceback" not in res.stderr
    return res.stderr


def test_config_set_get_unset_every_kind_of_key():
    for key, text, value in [
        ("endpoint_url", "http://localhost:9000", "http://localhost:9000"),
        ("profile", "work", "work"),
        ("region", "eu-west-3", "eu-west-3"),
        ("max_age", "30", 30),
        ("max_workers", "3", 3),
        ("exit_grace", "0.5", 0.5),
        ("conflict", "overwrite", "overwrite"),
        ("default_bucket", "my-bucket", "my-bucket"),
        ("upload_args", "{StorageClass: STANDARD_IA}", {"StorageClass": "STANDARD_IA"}),
    ]:
        res = run("config", "set", key, text)
        assert res.returncode == 0, res.stderr
        assert config_file()[key] == value
        res = run("config", "get", key, "--json")
        assert res.returncode == 0 and json.loads(res.stdout) == value
        assert run("config", "unset", key).returncode == 0
        assert key not in config_file()
    assert run("config", "get", "region").returncode == 1  # unset: no output, exit 1 (as `aws configure get`)


def test_config_set_refuses_what_the_file_would_refuse_and_keeps_the_file():
    run("config", "set", "max_age", "10")
    before = open(os.environ["S3BP_CONFIG"]).read()
    for args, words in [
        (("max_age", "-1"), "'max_age' must be a number of seconds"),
        (("conflict", "sometimes"), "one of raise, overwrite"),
        (("nope", "1"), "Unknown setting 'nope'"),
        (("default_bucket", "Not_A_Bucket"), "Not_A_Bucket"),
    ]:
        assert words in one_line_error(run("config", "set", *args), "config")
    assert open(os.environ["S3BP_CONFIG"]).read() == before
    assert "Unknown setting" in one_line_error(run("config", "get", "nope"), "config")


def test_configure_from_python():
    settings = s3bp.configure(max_age=5, region="eu-west-1")
    assert settings["max_age"] == 5 and config_file() == {"max_age": 5, "region": "eu-west-1"}
    with pytest.raises(ConfigError, match="max_workers"):
        s3bp.configure(max_age=7, max_workers=0)
    assert config_file()["max_age"] == 5  # nothing written when one setting is wrong
    s3bp.configure(region=None)
    assert config_file() == {"max_age": 5}


def test_global_connection_options_override_the_config_for_one_run(tmp_path, s3_server, make_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD)
    s3bp.configure(endpoint_url=DEAD, region="eu-west-1")
    before = config_file()
    bucket = make_bucket()
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.txt").write_text("a")
    assert run("map", str(project), bucket, "--no-check").returncode == 0
    res = run("--endpoint-url", s3_server, "push", str(project), "--region", "us-east-1")  # before and after the command
    assert res.returncode == 0 and "uploaded 1" in res.stdout, res.stderr
    res = run("config", "--endpoint-url", s3_server, "--json")
    connection = json.loads(res.stdout)["connection"]
    assert connection["endpoint_url"] == {"value": s3_server, "source": "the command line (--endpoint-url)"}
    assert config_file() == {**before, "base_dir_to_bucket_map": {str(project): bucket}}  # the overrides were not written
    one_line_error(run("push", str(project)), "push")  # without the option: the config's (dead) endpoint
    assert "must be a non-empty string" in one_line_error(run("--profile", "", "status"), "status")


def test_map_says_what_it_did_and_warns_about_a_missing_bucket(tmp_path, endpoint, bucket):
    res = run("map", str(tmp_path / "labels"), bucket)
    assert res.returncode == 0 and res.stdout == f"mapped {tmp_path / 'labels'} -> s3://{bucket}/labels/\n" and res.stderr == ""
    res = run("map", str(tmp_path / "other"), "no-such-bucket-here")
    assert res.returncode == 0 and "mapped" in res.stdout
    assert res.stderr.count("\n") == 1 and "warning" in res.stderr and "'no-such-bucket-here' does not exist" in res.stderr
    assert "s3bp config" in res.stderr and "the mapping is kept" in res.stderr
    assert config_file()["base_dir_to_bucket_map"][str(tmp_path / "other")] == "no-such-bucket-here"


def test_map_checks_with_one_request(tmp_path, endpoint, bucket, requests_log):
    s3bp.get_default_store().check_bucket(bucket)
    assert requests_log.operations == ["HeadBucket"]


def test_map_no_check_sends_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD)
    res = run("map", str(tmp_path / "d"), "some-bucket", "--no-check")
    assert res.returncode == 0 and res.stderr == ""
    res = run("map", str(tmp_path / "f"), "some-bucket")  # checked: the endpoint is unreachable, said in one line
    assert res.returncode == 0 and res.stderr.count("\n") == 1 and "could not be reached" in res.stderr


def test_cli_errors_name_commands_and_python_errors_name_functions(tmp_path):
    err = one_line_error(run("where", str(tmp_path / "x")), "where")
    assert "`s3bp map DIR BUCKET`" in err and "`s3bp default-bucket NAME`" in err and "s3bp.set_default_bucket" not in err
    with pytest.raises(NoBucketError) as info:
        s3bp.save_object(1, tmp_path / "x")
    assert "s3bp.set_default_bucket(bucket)" in str(info.value) and "`s3bp default-bucket" not in str(info.value)


def test_a_conflict_raised_in_the_cli_names_the_resolve_command(tmp_path, endpoint, bucket, raw):
    path = tmp_path / "x.txt"
    path.write_text("v1")
    s3bp.upload_file(path, bucket, wait=True)
    raw.put_object(Bucket=bucket, Key="x.txt", Body=b"theirs")
    path.write_text("mine")
    with pytest.raises(s3bp.ConflictError) as info:
        s3bp.upload_file(path, bucket, wait=True)
    assert "s3bp.resolve_conflict(path, keep='local')" in str(info.value)
    assert f"`s3bp resolve {path} --keep local`" in info.value.cli_message() and "s3bp.resolve_conflict" not in info.value.cli_message()


def test_resolve_keep_local_removes_the_obsolete_remote_copy_and_ls_shows_both_sizes(tmp_path, endpoint, bucket, raw):
    project = tmp_path / "project"
    project.mkdir()
    (project / "x.txt").write_text("v1")
    run("map", str(project), bucket)
    assert run("sync", str(project)).returncode == 0
    raw.put_object(Bucket=bucket, Key="project/x.txt", Body=b"theirs, longer")
    (project / "x.txt").write_text("mine")
    assert run("sync", str(project)).returncode == 1
    assert (project / "x.txt.s3bp-remote").exists()
    line = run("ls", str(project)).stdout.strip()
    assert line.startswith("conflict") and "x.txt" in line and "(local 4 B, S3 14 B)" in line
    [entry] = json.loads(run("ls", str(project), "--json").stdout)
    assert entry["state"] == "conflict" and (entry["local_size"], entry["remote_size"]) == (4, 14) and entry["key"] == "project/x.txt"

    res = run("resolve", str(project / "x.txt"), "--keep", "local")
    assert res.returncode == 0, res.stderr
    assert not (project / "x.txt.s3bp-remote").exists() and (project / "x.txt").read_text() == "mine"
    assert raw.get_object(Bucket=bucket, Key="project/x.txt")["Body"].read() == b"mine"
    assert run("ls", str(project)).stdout.split()[0] == "same"


def test_json_output_parses(tmp_path, endpoint, bucket):
    res = run("where", str(tmp_path / "a.pkl"), "--bucket", bucket, "--json")
    where = json.loads(res.stdout)
    assert where["url"] == f"s3://{bucket}/a.pkl" and (where["path"], where["bucket"], where["key"]) == (str(tmp_path / "a.pkl"), bucket, "a.pkl")
    assert where["base_dir"] is None and where["reason"]
    assert json.loads(run("status", "--json").stdout) == []
    config = json.loads(run("config", "--json").stdout)
    assert config["config_file"] == os.environ["S3BP_CONFIG"] and config["settings"]["max_workers"] == 8
    assert config["connection"]["endpoint_url"]["value"] == endpoint
    (tmp_path / "d").mkdir()
    run("map", str(tmp_path / "d"), bucket)
    assert json.loads(run("ls", str(tmp_path / "d"), "--json").stdout) == []
