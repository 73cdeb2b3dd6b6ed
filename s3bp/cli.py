"""The ``s3bp`` command (also ``python -m s3bp``).

Exit codes: 0 success, 1 the operation failed, 2 bad usage. Errors are one
line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Sequence

from . import __version__, api, paths
from .errors import InvalidArgumentError, InvalidPathError, S3bpError

_CONNECTION = ("endpoint_url", "region", "profile")


def _cmd_config(args: argparse.Namespace) -> int:
    """Show the effective configuration, its file and the state directory.

    Endpoint, region and profile are the ones a client would use, with where each comes from
    (the config file, the AWS_* environment, ~/.aws/config or boto3's default).
    """
    store = api.get_default_store()
    print(f"config file: {store.config.path}{'' if store.config.path.exists() else ' (not created yet)'}")
    print(f"state dir:   {store.state_dir}")
    settings = store.settings()
    connection_shown = False
    for name, value in settings.items():
        if name in _CONNECTION:
            if not connection_shown:
                _print_connection({key: settings.get(key) for key in _CONNECTION})
                connection_shown = True
        elif name == "base_dir_to_bucket_map":
            print(f"{name}:" + ("" if value else " {}"))
            for directory, bucket in sorted(value.items()):
                print(f"  {directory} -> {bucket}")
        else:
            print(f"{name}: {value}")
    for endpoint, (honoured, checked) in store.endpoint_modes().items():
        mode = "conditional PUTs (IfMatch)" if honoured else "ignores conditional writes: uploads checked with a HEAD first"
        print(f"endpoint {endpoint}: {mode} (checked {time.strftime('%Y-%m-%d', time.localtime(checked))})")
    return 0


def _print_connection(given: dict[str, str | None]) -> None:
    """The endpoint, region and profile a client uses (the config file's, else botocore's chain), and their sources."""
    from .remote import describe_connection  # imports botocore: its config chain decides

    for name, value, source in describe_connection(**given):
        print(f"{name}: {'(not set)' if value is None else value} (from {source})")


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
    """List journaled uploads: state, where each goes, attempts, age and last error (reading changes nothing)."""
    from .handoff import running

    pending = api.pending_uploads()
    if args.json:
        print(json.dumps([dataclasses.asdict(p) for p in pending], indent=2))
        return 0
    uploader = running(api.get_default_store().state_dir)
    if uploader is not None:
        print(f"a background uploader is running (pid {uploader})")
    if not pending:
        print("no pending uploads")
    now = time.time()
    for p in pending:
        held = ", held: run `s3bp flush` to retry" if p.held else ""
        print(f"{p.state}: {p.path} -> s3://{p.bucket}/{p.key} at {p.endpoint or 'the default endpoint'}")
        print(f"    attempts {p.attempts}, saved {_age(now - p.created)} ago{held}" + (f"; last error: {p.last_error}" if p.last_error else ""))
    return 0


def _age(seconds: float) -> str:
    """A short duration: 42 s, 7 min, 3 h, 2 d."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


def _cmd_flush(args: argparse.Namespace) -> int:
    """Upload everything journaled and wait."""
    count = len(api.pending_uploads())
    api.flush(args.timeout, retarget=args.retarget)
    print(f"flushed {count} upload(s)")
    return 0


def _cmd_forget(args: argparse.Namespace) -> int:
    """Drop journaled uploads; the local files stay."""
    if not args.paths and not args.failed:
        raise InvalidArgumentError("Name the files whose pending uploads to drop, or pass --failed.")
    dropped = api.forget(args.paths, failed=args.failed)
    print(f"dropped {dropped} pending upload(s); the local files are kept")
    return 0


def _cmd_folder(args: argparse.Namespace) -> int:
    """Push, pull or sync a mapped directory; list what was done."""
    options = {"delete": args.delete, "dry_run": args.dry_run, "progress": False if args.no_progress else None}
    report = getattr(api, args.command)(args.directory, args.local, **options)
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
        beside = f" (the S3 version is in {_rel(path, top)}.s3bp-remote)" if path in report.beside else ""
        print(f"CONFLICT: {_rel(path, top)} changed locally and in S3 since the last sync{beside}")
    if args.verbose:
        for path, reason in report.skipped:
            print(f"skipped: {_rel(path, top)}: {reason}")
    for path, reason in report.failed:
        print(f"FAILED: {_rel(path, top)}: {reason}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_ls(args: argparse.Namespace) -> int:
    """The sync state of every file under a mapped directory; for s3://bucket/prefix, S3's listing itself."""
    if args.target.startswith("s3://"):
        return _ls_url(args)
    target = args.target
    if target.startswith("s3://"):
        target = _local_dir_of(target)
    for f in api.ls(target):
        size = f.size
        print(f"{f.state.value:15} {size:>12,} {_rel(f.path, paths.normalize(target))}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    """What S3 holds for a path (one HEAD) and how the local copy relates to it."""
    info = api.info(args.path)
    if args.json:
        print(json.dumps(dataclasses.asdict(info), indent=2))
        return 0
    print(f"s3://{info.bucket}/{info.key} at {info.endpoint}")
    print(f"  local path:    {info.path}")
    print(f"  state:         {info.state}")
    if info.exists:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.last_modified or 0))
        print(f"  in S3:         {info.size:,} bytes, last modified {stamp}, ETag {info.etag}")
        print(f"  content type:  {info.content_type}")
        if info.version_id:
            print(f"  version id:    {info.version_id}")
        for name, value in sorted(info.metadata.items()):
            print(f"  metadata:      {name}: {value}")
    else:
        print("  in S3:         no such object")
    if info.local_size is not None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.local_mtime or 0))
        print(f"  local file:    {info.local_size:,} bytes, modified {stamp}")
    if info.synced_at is not None:
        print(f"  last synced:   {_age(time.time() - info.synced_at)} ago")
    if info.pending is not None:
        p = info.pending
        error = f"; last error: {p.last_error}" if p.last_error else ""
        print(f"  pending upload: {p.state}, attempts {p.attempts}{error}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    """Check the synced files of a mapped directory against their records, locally and in S3; exit 1 unless all are ok."""
    report = api.verify(args.directory, repair=args.repair)
    if args.json:
        out = dataclasses.asdict(report)
        for f in out["files"]:
            f["status"] = f["status"].value
        out["ok"] = report.ok
        print(json.dumps(out, indent=2))
        return 0 if report.ok else 1
    for f in report.files:
        if f.status.value != "ok" or args.verbose:
            mended = " (repaired)" if f.path in report.repaired else ""
            detail = f": {'; '.join(f.findings)}" if f.findings else ""
            print(f"{f.status.value}{mended}: {_rel(f.path, report.directory)}{detail}")
    for path, reason in report.failed:
        print(f"FAILED to repair {_rel(path, report.directory)}: {reason}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


def _ls_url(args: argparse.Namespace) -> int:
    """List s3://bucket/prefix directly: state of the local copy (if any), size, last modified, key."""
    listed = api.list_objects(args.target)
    if getattr(args, "json", False):
        print(json.dumps([{**dataclasses.asdict(o), "state": o.state.value if o.state else None} for o in listed], indent=2))
        return 0
    for o in listed:
        modified = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(o.last_modified))
        where = f"  ({o.local_path})" if o.local_path else ""
        print(f"{o.state.value if o.state else 'not local':15} {o.size:>12,}  {modified}  {o.key}{where}")
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    """Show the managed cache, or prune or clear it."""
    if args.action == "info":
        info = api.cache_info()
        limit = "no limit" if info.max_size is None else _bytes(info.max_size)
        age = "no limit" if info.max_age is None else _age(info.max_age)
        oldest = "-" if info.oldest_use is None else f"{_age(time.time() - info.oldest_use)} ago"
        print(f"cache dir:   {info.root}")
        print(f"size:        {_bytes(info.size)} in {info.files} file(s) ({info.kept} cannot be evicted now)")
        print(f"limits:      cache_max_size {limit}, cache_max_age {age}")
        print(f"oldest use:  {oldest}")
        return 0
    if args.action == "prune":
        report = api.cache_prune(args.max_size, args.older_than, dry_run=args.dry_run)
    else:
        report = api.cache_clear(dry_run=args.dry_run)
    verb = "would remove" if report.dry_run else "removed"
    if args.verbose:
        for path in report.removed:
            print(f"{verb}: {path}")
        for path, why in report.kept:
            print(f"kept: {path}: {why}")
    print(f"{verb} {len(report.removed)} file(s), {_bytes(report.freed)}; {len(report.kept)} kept; {_bytes(report.size)} left in {report.root}")
    return 0


def _bytes(n: float) -> str:
    """A byte count for people (powers of 1024)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _local_dir_of(url: str) -> str:
    """The mapped local directory holding the objects under ``s3://bucket/prefix``."""
    bucket, _, prefix = url[len("s3://") :].partition("/")
    mappings = paths.normalize_mappings(api.get_default_store().settings()["base_dir_to_bucket_map"])
    found = paths.directory_of(bucket, prefix, mappings)
    if found is not None:
        return found
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
    from . import demo

    return demo.main()


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
    p = sub.add_parser("status", help="journaled uploads: where each goes, its state, attempts and last error")
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    p.set_defaults(func=_cmd_status)
    p = sub.add_parser("flush", help="upload everything pending or journaled (failures included), and wait")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--retarget", action="store_true", help="first point failed uploads at the current endpoint, bucket and mapping")
    p.set_defaults(func=_cmd_flush)
    p = sub.add_parser("forget", help="drop pending uploads of files (the files stay)")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--failed", action="store_true", help="drop every failed upload")
    p.set_defaults(func=_cmd_forget)
    for name, text in (
        ("push", "upload what is new or changed under a mapped directory"),
        ("pull", "download what is newer in S3 under a mapped directory"),
        ("sync", "pull, then push; conflicts are reported, never overwritten"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("directory", metavar="DIR|s3://BUCKET/PREFIX/")
        p.add_argument("local", nargs="?", default=None, metavar="LOCAL_DIR", help="with a URL: the local directory paired with it")
        p.add_argument("--delete", action="store_true", help="mirror deletions made since the last sync")
        p.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("-v", "--verbose", action="store_true", help="also list skipped files and why")
        p.set_defaults(func=_cmd_folder)
    p = sub.add_parser("ls", help="local vs S3 state of every file under a mapped directory")
    p.add_argument("target", nargs="?", default=".", metavar="DIR|s3://BUCKET/PREFIX")
    p.set_defaults(func=_cmd_ls)
    p = sub.add_parser("info", help="what S3 holds for a path (one HEAD): ETag, size, type, metadata, and the local state")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("verify", help="check synced files against their records, locally and in S3, without downloading")
    p.add_argument("directory")
    p.add_argument("--repair", action="store_true", help="re-download corrupt local copies (never files edited since their sync)")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p.add_argument("-v", "--verbose", action="store_true", help="also list the files that are ok")
    p.set_defaults(func=_cmd_verify)
    p = sub.add_parser("cache", help="the managed cache of s3:// URLs: info, prune, clear")
    cache = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    cache.add_parser("info", help="size, files, limits and oldest use")
    for name, text in (("prune", "evict least recently used files"), ("clear", "evict every file that may go")):
        q = cache.add_parser(name, help=text)
        if name == "prune":
            q.add_argument("--max-size", default=None, metavar="SIZE", help="e.g. 20GB, 500MiB (default: cache_max_size)")
            q.add_argument("--older-than", default=None, metavar="AGE", help="e.g. 30d, 12h (default: cache_max_age)")
        q.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
        q.add_argument("-v", "--verbose", action="store_true", help="list each file removed or kept")
    for q in cache.choices.values():
        q.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=_cmd_cache)
    p = sub.add_parser("resolve", help="settle a conflict: keep the local or the S3 version of a file")
    p.add_argument("path")
    p.add_argument("--keep", choices=("local", "remote"), required=True)
    p.set_defaults(func=_cmd_resolve)
    sub.add_parser("demo", help="run the demo against an embedded local S3 server").set_defaults(func=_cmd_demo)
    for command in sub.choices.values():  # `s3bp flush --debug` as well as `s3bp --debug flush`
        # SUPPRESS: a subcommand without the flag leaves `s3bp --debug COMMAND`'s value alone
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``s3bp`` command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    rc = 0
    shown, warnings.showwarning = warnings.showwarning, _warn_in_one_line
    try:
        rc = args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe is handled below
        return rc
    except BrokenPipeError as exc:
        if _stdout_is_closed():
            return _stdout_closed(rc)
        return _failed(args, exc)  # a socket's or a FIFO's: a real failure
    except (S3bpError, ValueError, OSError) as exc:
        return _failed(args, exc)
    except Exception as exc:
        # a library error that should have become an S3bpError (sqlite3, botocore): still one line, not a trace
        if type(exc).__module__.split(".")[0] not in _LIBRARIES:
            raise
        return _failed(args, exc)
    except KeyboardInterrupt:
        print("s3bp: interrupted", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


def _warn_in_one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int, file=None, line=None) -> None:
    """Show a warning (e.g. a read-only state directory) as one line of its own, without the source line Python adds."""
    text = " ".join(str(message).split())
    print(text if text.startswith("s3bp") else f"s3bp: {category.__name__}: {text}", file=sys.stderr if file is None else file)


#: Libraries whose errors a command reports in one line like its own.
_LIBRARIES = ("sqlite3", "botocore", "boto3", "s3transfer", "urllib3", "yaml")


def _failed(args: argparse.Namespace, exc: BaseException) -> int:
    """Report a failed command in one line (and its traceback with ``--debug``); exit code 1."""
    if args.debug:
        traceback.print_exc()
    text = str(exc)
    if not isinstance(exc, S3bpError):  # one line, whatever the library put in its message
        text = " ".join(text.split())
    if not isinstance(exc, (S3bpError, ValueError, OSError)):
        text = f"{type(exc).__name__}: {text} (run with --debug for the traceback)"
    print(f"s3bp {args.command}: {text}", file=sys.stderr)
    return 1


def _stdout_is_closed() -> bool:
    """Whether the reader of our stdout has gone (a BrokenPipeError may also come from a socket or a FIFO)."""
    try:
        sys.stdout.flush()  # a failed write keeps its bytes buffered: this fails again
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        return False
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # a pipe without a reader polls as POLLERR
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is not a file
        return False


def _stdout_closed(rc: int) -> int:
    """The reader of our output stopped reading (``s3bp config | head -1``): exit quietly.

    As Python's docs on SIGPIPE recommend, stdout goes to devnull so that the
    interpreter's final flush does not fail again. The exit code is the
    command's when it had finished, else 0: what was read was correct.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file (a test's StringIO)
        pass
    return rc
