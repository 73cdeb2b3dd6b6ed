"""The ``s3bp`` command (also ``python -m s3bp``).

Exit codes: 0 success, 1 the operation failed, 2 bad usage. Errors are one
line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence

from . import __version__, api, paths
from .errors import InvalidPathError, S3bpError


def _cmd_config(args: argparse.Namespace) -> int:
    """Show the effective configuration, its file and the state directory."""
    store = api.get_default_store()
    print(f"config file: {store.config.path}{'' if store.config.path.exists() else ' (not created yet)'}")
    print(f"state dir:   {store.state_dir}")
    for name, value in store.settings().items():
        if name == "base_dir_to_bucket_map":
            print(f"{name}:" + ("" if value else " {}"))
            for directory, bucket in sorted(value.items()):
                print(f"  {directory} -> {bucket}")
        else:
            print(f"{name}: {value}")
    return 0


def _cmd_where(args: argparse.Namespace) -> int:
    """Say which bucket and key a path resolves to, and why."""
    res = api.get_default_store().resolve(args.path, args.bucket, args.namekey)
    print(f"s3://{res.bucket}/{res.key}")
    print(f"  local path: {res.path}")
    print(f"  because:    {res.reason}")
    return 0


def _cmd_default_bucket(args: argparse.Namespace) -> int:
    """Show, set or unset the default bucket."""
    if args.unset:
        api.unset_default_bucket()
    elif args.name:
        api.set_default_bucket(args.name)
    print(api.get_default_store().settings()["default_bucket"] or "(no default bucket)")
    return 0


def _cmd_map(args: argparse.Namespace) -> int:
    """Map a directory to a bucket."""
    api.map_base_directory_to_bucket(args.directory, args.bucket)
    return 0


def _cmd_unmap(args: argparse.Namespace) -> int:
    """Remove a directory's mapping."""
    api.remove_base_directory_mapping(args.directory)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    """List pending and journaled uploads with their last errors."""
    pending = api.pending_uploads()
    if not pending:
        print("no pending uploads")
    for p in pending:
        line = f"{p.state:10} s3://{p.bucket}/{p.key}  <- {p.path}  (pid {p.pid}, attempts {p.attempts})"
        print(line + (f"\n           last error: {p.last_error}" if p.last_error else ""))
    return 0


def _cmd_flush(args: argparse.Namespace) -> int:
    """Upload everything journaled and wait."""
    count = len(api.pending_uploads())
    api.flush(args.timeout)
    print(f"flushed {count} upload(s)")
    return 0


def _cmd_folder(args: argparse.Namespace) -> int:
    """Push, pull or sync a mapped directory; list what was done."""
    options = {"delete": args.delete, "dry_run": args.dry_run, "progress": False if args.no_progress else None}
    report = getattr(api, args.command)(args.directory, **options)
    top = report.directory
    verb = "would " if report.dry_run else ""
    for label, items in (
        ("upload", report.uploaded),
        ("download", report.downloaded),
        ("delete local", report.deleted_local),
        ("delete in S3", report.deleted_remote),
    ):
        for path in items:
            print(f"{verb}{label}: {_rel(path, top)}")
    for path in report.conflicts:
        beside = "" if args.command == "push" or report.dry_run else f" (the S3 version is in {_rel(path, top)}.s3bp-remote)"
        print(f"CONFLICT: {_rel(path, top)} changed locally and in S3 since the last sync{beside}")
    if args.verbose:
        for path, reason in report.skipped:
            print(f"skipped: {_rel(path, top)}: {reason}")
    for path, reason in report.failed:
        print(f"FAILED: {_rel(path, top)}: {reason}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_ls(args: argparse.Namespace) -> int:
    """The sync state of every file under a mapped directory (or the local side of s3://bucket/prefix)."""
    target = args.target
    if target.startswith("s3://"):
        target = _local_dir_of(target)
    for f in api.ls(target):
        size = f.size
        print(f"{f.state.value:15} {size:>12,} {_rel(f.path, paths.normalize(target))}")
    return 0


def _local_dir_of(url: str) -> str:
    """The mapped local directory holding the objects under ``s3://bucket/prefix``."""
    bucket, _, prefix = url[len("s3://") :].partition("/")
    store = api.get_default_store()
    mappings = paths.normalize_mappings(store.settings()["base_dir_to_bucket_map"])
    for directory, mapped in sorted(mappings.items()):
        name = os.path.basename(directory) + "/"
        if mapped == bucket and (prefix + "/").startswith(name):
            return os.path.join(directory, *[p for p in prefix[len(name) :].split("/") if p])
    raise InvalidPathError(
        f"No mapped directory holds {url}: map one with `s3bp map DIR {bucket}` (keys start with the directory's name)."
    )


def _rel(path: str, top: str) -> str:
    """``path`` relative to ``top`` when below it."""
    return os.path.relpath(path, top) if paths.contains(top, path) else path


def _cmd_resolve(args: argparse.Namespace) -> int:
    """Settle a conflict for one file."""
    api.resolve_conflict(args.path, args.keep)
    kept = "your version was uploaded" if args.keep == "local" else f"S3's version downloaded; yours is in {args.path}.s3bp-local"
    print(f"resolved {args.path}: {kept}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Run the README's demo against an embedded local S3 server."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        print("s3bp demo needs the embedded S3 server: pip install 's3bp[demo]'", file=sys.stderr)
        return 1
    import logging
    import tempfile

    from .core import Store

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            os.environ.pop(var, None)
        os.environ.update(AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo", AWS_DEFAULT_REGION="us-east-1")
        with tempfile.TemporaryDirectory(prefix="s3bp-demo-") as tmp:
            _run_demo(Store, url, tmp)
    finally:
        server.stop()
    return 0


def _run_demo(store_class: type, url: str, tmp: str) -> None:
    """The demo's steps: two machines sharing one bucket on the local server."""
    import boto3

    bucket = "user-data-bucket"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket=bucket)
    print(f"local S3 server at {url}, bucket {bucket!r}, files under {tmp}\n")

    def machine(name: str):
        root = os.path.join(tmp, name)
        store = store_class(config=os.path.join(root, "config.yml"), state_dir=os.path.join(root, "state"))
        store.config.update(lambda d: d.update(endpoint_url=url, default_bucket=bucket))
        sent: list[str] = []
        store.client().meta.events.register("before-send.s3", lambda request, **kw: sent.append(request.method))
        return store, sent, os.path.join(root, "data", "name_to_id_map")

    def step(label: str, sent: list[str], started: float, result: object = None) -> None:
        ms = (time.perf_counter() - started) * 1000
        shown = "" if result is None else f" -> {result!r}"
        print(f"  {label}{shown}\n      {len(sent)} request(s) {sent}, {ms:.1f} ms")
        sent.clear()

    laptop, sent_a, path_a = machine("laptop")
    server, sent_b, path_b = machine("server")
    with laptop, server:
        print("laptop:")
        t = time.perf_counter()
        laptop.save_object({"Dan": 8382, "Alon": 2993}, path_a, wait=True)
        step("save_object({'Dan': 8382, 'Alon': 2993}, ..., wait=True)", sent_a, t)
        t = time.perf_counter()
        step("load_object(...)  [local copy is current: S3 answers 304, no body]", sent_a, t, laptop.load_object(path_a))
        print("server (another machine, same bucket):")
        t = time.perf_counter()
        step("load_object(...)  [no local copy: downloaded]", sent_b, t, server.load_object(path_b))
        t = time.perf_counter()
        step("load_object(...)  [now cached: one cheap request]", sent_b, t, server.load_object(path_b))
        print("laptop saves a newer version:")
        t = time.perf_counter()
        laptop.save_object({"Dan": 8382, "Alon": 2993, "Noa": 1}, path_a, wait=True)
        step("save_object(..., wait=True)", sent_a, t)
        t = time.perf_counter()
        step("server load_object(...)  [S3 is newer: downloaded]", sent_b, t, server.load_object(path_b))
    print("\ndone; the local server is stopped and the temp files removed.")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``s3bp`` command."""
    parser = argparse.ArgumentParser(prog="s3bp", description="Save and load Python objects to S3, cached on disk.")
    parser.add_argument("--version", action="version", version=f"s3bp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("config", help="show the effective config, its file and the state dir").set_defaults(func=_cmd_config)
    p = sub.add_parser("where", help="the bucket and key a local path resolves to, and why")
    p.add_argument("path")
    p.add_argument("--bucket", default=None)
    p.add_argument("--namekey", action="store_true")
    p.set_defaults(func=_cmd_where)
    p = sub.add_parser("default-bucket", help="show, set or unset the default bucket")
    p.add_argument("name", nargs="?")
    p.add_argument("--unset", action="store_true")
    p.set_defaults(func=_cmd_default_bucket)
    p = sub.add_parser("map", help="map a directory to a bucket")
    p.add_argument("directory")
    p.add_argument("bucket")
    p.set_defaults(func=_cmd_map)
    p = sub.add_parser("unmap", help="remove a directory's mapping")
    p.add_argument("directory")
    p.set_defaults(func=_cmd_unmap)
    sub.add_parser("status", help="pending and journaled uploads, and their last errors").set_defaults(func=_cmd_status)
    p = sub.add_parser("flush", help="upload everything pending or journaled, and wait")
    p.add_argument("--timeout", type=float, default=None)
    p.set_defaults(func=_cmd_flush)
    for name, text in (
        ("push", "upload what is new or changed under a mapped directory"),
        ("pull", "download what is newer in S3 under a mapped directory"),
        ("sync", "pull, then push; conflicts are reported, never overwritten"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("directory")
        p.add_argument("--delete", action="store_true", help="mirror deletions made since the last sync")
        p.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("-v", "--verbose", action="store_true", help="also list skipped files and why")
        p.set_defaults(func=_cmd_folder)
    p = sub.add_parser("ls", help="local vs S3 state of every file under a mapped directory")
    p.add_argument("target", nargs="?", default=".", metavar="DIR|s3://BUCKET/PREFIX")
    p.set_defaults(func=_cmd_ls)
    p = sub.add_parser("resolve", help="settle a conflict: keep the local or the S3 version of a file")
    p.add_argument("path")
    p.add_argument("--keep", choices=("local", "remote"), required=True)
    p.set_defaults(func=_cmd_resolve)
    sub.add_parser("demo", help="run the demo against an embedded local S3 server").set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``s3bp`` command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (S3bpError, ValueError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"s3bp {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("s3bp: interrupted", file=sys.stderr)
        return 1
