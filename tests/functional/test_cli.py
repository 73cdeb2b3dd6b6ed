"""The ``s3bp`` command, run as a user would: in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import s3bp


def run(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "s3bp", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_config_map_where_default_bucket(tmp_path):
    assert run("default-bucket", "my-bucket").stdout.strip() == "my-bucket"
    assert run("map", str(tmp_path / "labels"), "labels-bucket", "--no-check").returncode == 0
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


def _parsed(parser, argv):
    """What ``parser`` makes of ``argv``: its namespace, or its exit code and output (help, usage errors)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            return {k: v for k, v in vars(parser.parse_args(argv)).items() if k != "func"}
        except SystemExit as exc:
            return exc.code, out.getvalue(), err.getvalue()


def test_a_command_built_alone_parses_and_helps_as_the_whole_parser_does(tmp_path):
    from s3bp.cli import _command_of, build_parser

    whole = build_parser()
    commands = list(whole._subparsers._group_actions[0].choices)
    assert len(commands) > 20 and "status" in commands
    for name in commands:
        for argv in ([name, "--help"], [name], [name, "x", "--bogus"], ["--debug", name, "--region", "eu-west-1", "p", "q"]):
            assert _command_of(argv) == name
            assert _parsed(build_parser(name), argv) == _parsed(whole, argv), argv
    assert _command_of(["--endpoint-url", "http://x", "--profile=p", "where", "f"]) == "where"
    for argv in (["--help"], ["--version"], ["--prof", "p", "status"], ["no-such-command"], []):  # the whole parser for these
        assert _command_of(argv) is None or _parsed(build_parser(_command_of(argv)), argv) == _parsed(whole, argv)


def test_debug_after_the_command(tmp_path, endpoint):
    res = run("where", str(tmp_path / "x"), "--debug")
    assert res.returncode == 1 and "Traceback" in res.stderr
    assert res.stderr.rstrip().splitlines()[-1].startswith("s3bp where: No bucket")
    res = run("flush", "--debug")
    assert res.returncode == 0 and "flushed 0" in res.stdout, res.stderr
    assert "Traceback" in run("--debug", "where", str(tmp_path / "x")).stderr  # before the command, as always


def test_config_into_a_pipe_closed_early_exits_0_quietly():
    # the reader is gone before s3bp writes a byte: every write to stdout fails with EPIPE
    proc = subprocess.Popen([sys.executable, "-m", "s3bp", "config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == ""
    # as a user types it; pipefail makes the shell's status s3bp's too
    shell = f"'{sys.executable}' -m s3bp config | head -1"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("config file:") and res.stderr == ""


def test_a_long_output_into_a_closed_pipe_exits_0_quietly(tmp_path):
    store = s3bp.get_default_store()
    mappings = {str(tmp_path / f"directory-{i:04d}"): "some-bucket" for i in range(500)}  # ~40 KB of `s3bp config`
    store.config.update(lambda d: d["base_dir_to_bucket_map"].update(mappings))
    proc = subprocess.Popen([sys.executable, "-m", "s3bp", "config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == ""


def test_a_broken_pipe_that_is_not_stdout_is_an_error(monkeypatch, capsys):
    from s3bp import cli

    def status(args):
        raise BrokenPipeError(32, "Broken pipe")  # as from a socket or a FIFO

    monkeypatch.setattr(cli, "_cmd_status", status)
    assert cli.main(["status"]) == 1
    assert capsys.readouterr().err == "s3bp status: [Errno 32] Broken pipe\n"


def _line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(name + ":"))


def test_config_shows_the_effective_endpoint_and_where_it_comes_from(tmp_path):
    res = run("config", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert res.returncode == 0, res.stderr
    line = _line(res.stdout, "endpoint_url")
    assert "http://127.0.0.1:9" in line and "environment" in line and "AWS_ENDPOINT_URL" in line
    assert "us-east-1" in _line(res.stdout, "region") and "AWS_DEFAULT_REGION" in _line(res.stdout, "region")

    s3bp.get_default_store().config.update(lambda d: d.update(endpoint_url="http://127.0.0.1:8"))
    line = _line(run("config", AWS_ENDPOINT_URL="http://127.0.0.1:9").stdout, "endpoint_url")
    assert "http://127.0.0.1:8" in line and "config file" in line and "127.0.0.1:9" not in line


def test_config_does_not_import_pandas():
    # boto3/botocore may be imported: the effective endpoint, region and profile come from botocore's config chain
    code = "import sys; from s3bp.cli import main; main(['config']); print(sorted(m for m in ('pandas', 'pyarrow', 'polars') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip().endswith("[]")


def test_commands_that_only_read_import_only_what_they_need(tmp_path):
    assert run("map", str(tmp_path / "labels"), "labels-bucket", "--no-check").returncode == 0
    assert run("status").returncode == 0  # the state directory exists from now on: the config's parse is remembered there
    assert run("where", str(tmp_path / "labels" / "a.csv")).returncode == 0
    heavy = ("boto3", "botocore", "s3transfer", "pandas", "yaml", "s3bp.remote", "s3bp.sending", "s3bp.versioning")
    for args in (["where", str(tmp_path / "labels" / "a.csv")], ["status"], ["config"]):
        code = f"import sys; from s3bp.cli import main; main({args!r}); print(sorted(m for m in {heavy!r} if m in sys.modules))"
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert res.stdout.strip().splitlines()[-1] == "[]", (args, res.stdout)


def test_a_push_of_an_unchanged_folder_imports_no_boto3(tmp_path, endpoint, bucket):
    folder = tmp_path / "synced"
    for i in range(3):
        (folder / f"d{i}").mkdir(parents=True)
        (folder / f"d{i}" / "f.bin").write_bytes(os.urandom(100))
    assert run("map", str(folder), bucket).returncode == 0
    assert run("push", str(folder), "--no-progress").returncode == 0
    heavy = ("boto3", "botocore", "s3transfer")
    code = f"import sys; from s3bp.cli import main; main(['push', {str(folder)!r}, '--no-progress'])\n"
    code += f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "0 unchanged" not in res.stdout and "3 unchanged" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout


def test_status_and_flush(tmp_path, endpoint, bucket):
    assert run("status").stdout.strip() == "no pending uploads"
    res = run("flush")
    assert res.returncode == 0 and "flushed 0" in res.stdout


def _hostile() -> dict[str, str]:
    """AWS settings a user may have (their own store's endpoint, profile, keys) that must not reach the demo's server."""
    with open(os.environ["AWS_CONFIG_FILE"], "a") as f:  # the isolated fixture's file
        f.write("[profile elsewhere]\nregion = ap-south-1\nendpoint_url = http://127.0.0.1:9\n")
    return {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
        "AWS_PROFILE": "elsewhere",
        "AWS_DEFAULT_REGION": "eu-west-3",
        "AWS_SESSION_TOKEN": "stale",
        "AWS_ACCESS_KEY_ID": "someone-else",
    }


def test_demo_runs_end_to_end():
    res = run("demo", **_hostile())
    assert res.returncode == 0, res.stderr
    assert "304" in res.stdout and "Noa" in res.stdout


def test_demo_leaves_the_environment_alone(monkeypatch, capsys):
    import s3bp.demo

    for name, value in _hostile().items():
        monkeypatch.setenv(name, value)
    before = dict(os.environ)
    assert s3bp.demo.main() == 0
    assert dict(os.environ) == before
    assert "Noa" in capsys.readouterr().out


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
    listed = run("ls", f"s3://{bucket}/project/sub").stdout.split()  # S3's listing, with the mapped file's state
    assert listed[:2] == ["same", "2"] and listed[4:] == ["project/sub/b.txt", f"({project / 'sub' / 'b.txt'})"]

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


def test_ls_of_an_unmapped_bucket_and_a_url_folder_pair(tmp_path, endpoint, bucket, raw):
    raw.put_object(Bucket=bucket, Key="t/a.txt", Body=b"aaa")
    raw.put_object(Bucket=bucket, Key="t/sub/b.txt", Body=b"b")
    raw.put_object(Bucket=bucket, Key=".s3bp/names/t/a.txt", Body=b"s3bp's own")
    res = run("ls", f"s3://{bucket}")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [line.split()[-1] for line in lines] == ["t/a.txt", "t/sub/b.txt"]
    assert lines[0].startswith("not local") and lines[0].split()[2] == "3"
    here = tmp_path / "here"
    res = run("pull", f"s3://{bucket}/t/", str(here))
    assert res.returncode == 0 and "download: a.txt" in res.stdout and (here / "sub" / "b.txt").read_bytes() == b"b"
    (here / "c.txt").write_text("new")
    res = run("push", str(here), f"s3://{bucket}/t/")
    assert res.returncode == 0 and "upload: c.txt" in res.stdout and "uploaded 1" in res.stdout
    assert raw.get_object(Bucket=bucket, Key="t/c.txt")["Body"].read() == b"new"
    assert run("ls", f"s3://{bucket}/t/c").stdout.startswith("not local")
    res = run("pull", f"s3://{bucket}/t/")
    assert res.returncode == 1 and "local directory" in res.stderr
