"""The ``s3bp`` command, run as a user would: in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys


def run(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "s3bp", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_config_map_where_default_bucket(tmp_path):
    assert run("default-bucket", "my-bucket").stdout.strip() == "my-bucket"
    assert run("map", str(tmp_path / "labels"), "labels-bucket").returncode == 0
    out = run("where", str(tmp_path / "labels" / "a" / "b.csv")).stdout
    assert "s3://labels-bucket/labels/a/b.csv" in out and "under base dir" in out
    cfg = run("config")
    assert cfg.returncode == 0 and "my-bucket" in cfg.stdout and os.environ["S3BP_CONFIG"] in cfg.stdout
    assert run("unmap", str(tmp_path / "labels")).returncode == 0
    assert "default bucket" in run("where", str(tmp_path / "labels" / "x")).stdout
    assert run("default-bucket", "--unset").stdout.strip() == "(no default bucket)"


def test_errors_are_one_line_and_exit_1(tmp_path):
    res = run("where", str(tmp_path / "x"))
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "No bucket" in res.stderr and "Traceback" not in res.stderr
    assert "Traceback" in run("--debug", "where", str(tmp_path / "x")).stderr


def test_bad_usage_exits_2():
    assert run("no-such-command").returncode == 2


def test_config_does_not_import_boto3_or_pandas():
    code = "import sys; from s3bp.cli import main; main(['config']); print(sorted(m for m in ('boto3', 'botocore', 'pandas') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip().endswith("[]")


def test_status_and_flush(tmp_path, endpoint, bucket):
    assert run("status").stdout.strip() == "no pending uploads"
    res = run("flush")
    assert res.returncode == 0 and "flushed 0" in res.stdout


def test_demo_runs_end_to_end():
    res = run("demo")
    assert res.returncode == 0, res.stderr
    assert "304" in res.stdout and "Noa" in res.stdout


def test_push_pull_sync_ls(tmp_path, endpoint, bucket, raw):
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "a.txt").write_text("a")
    (project / "sub" / "b.txt").write_text("bb")
    assert run("map", str(project), bucket).returncode == 0

    res = run("push", str(project), "--dry-run")
    assert res.returncode == 0 and "would upload: a.txt" in res.stdout and "would upload 2" in res.stdout
    res = run("push", str(project))
    assert res.returncode == 0, res.stderr
    assert "upload: sub/b.txt" in res.stdout and "uploaded 2" in res.stdout and res.stderr == ""

    raw.put_object(Bucket=bucket, Key="project/c.txt", Body=b"from elsewhere")
    (project / "a.txt").write_text("a, edited")
    res = run("ls", str(project))
    assert res.returncode == 0
    lines = {line.split()[-1]: line for line in res.stdout.splitlines()}
    assert lines["a.txt"].startswith("local newer") and lines["sub/b.txt"].startswith("same") and lines["c.txt"].startswith("remote only")
    assert run("ls", f"s3://{bucket}/project/sub").stdout.split() == ["same", "2", "b.txt"]

    res = run("pull", str(project), "-v")
    assert res.returncode == 0 and "download: c.txt" in res.stdout and "skipped: a.txt: the local file is newer" in res.stdout
    res = run("sync", str(project))
    assert res.returncode == 0 and "upload: a.txt" in res.stdout
    assert raw.get_object(Bucket=bucket, Key="project/a.txt")["Body"].read() == b"a, edited"


def test_sync_conflict_exits_1(tmp_path, endpoint, bucket, raw):
    project = tmp_path / "project"
    project.mkdir()
    (project / "x.txt").write_text("v1")
    run("map", str(project), bucket)
    assert run("sync", str(project)).returncode == 0
    raw.put_object(Bucket=bucket, Key="project/x.txt", Body=b"theirs")
    (project / "x.txt").write_text("mine")
    res = run("sync", str(project))
    assert res.returncode == 1 and "CONFLICT: x.txt" in res.stdout and "x.txt.s3bp-remote" in res.stdout
    assert (project / "x.txt").read_text() == "mine" and (project / "x.txt.s3bp-remote").read_text() == "theirs"


def test_folder_commands_refuse_an_unmapped_dir(tmp_path):
    res = run("push", str(tmp_path))
    assert res.returncode == 1 and "s3bp map" in res.stderr and res.stderr.count("\n") == 1
    assert run("push").returncode == 2
