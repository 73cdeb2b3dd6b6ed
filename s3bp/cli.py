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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import __version__, api, paths
from .errors import InvalidArgumentError, InvalidPathError, S3bpError
from .progress import human_bytes

if TYPE_CHECKING:
    import datetime

_CONNECTION = ("endpoint_url", "region", "profile")


def _cmd_config(args: argparse.Namespace) -> int:
    """Show the effective configuration, its file and the state directory.

    Endpoint, region and profile are the ones a client would use, with where each comes from
    (the config file, the AWS_* environment, ~/.aws/config or boto3's default).
    """
    store = api.get_default_store()
    if getattr(args, "config_action", None):
        return _CONFIG_ACTIONS[args.config_action](store, args)
    if args.json:
        return _config_json(store)
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


def _config_json(store: Any) -> int:
    """``s3bp config --json``: the overview as one JSON object."""
    settings = store.settings()
    connection = _connection({key: settings.get(key) for key in _CONNECTION})
    print(json.dumps({
        "config_file": str(store.config.path),
        "state_dir": str(store.state_dir),
        "settings": settings,
        "connection": {name: {"value": value, "source": source} for name, value, source in connection},
        "endpoints": {e: {"conditional_puts": honoured, "checked": checked} for e, (honoured, checked) in store.endpoint_modes().items()},
    }, indent=2, default=str))  # fmt: skip
    return 0


def _config_get(store: Any, args: argparse.Namespace) -> int:
    """``s3bp config get KEY``: the setting's value (exit 1, no output, when it is unset)."""
    from .config import check_setting

    value = check_setting(args.key, store.settings().get(args.key))  # an unknown key is an error, as in `set`
    if args.json:
        print(json.dumps(value))
        return 0
    if value is None:
        return 1
    print(json.dumps(value) if isinstance(value, (dict, list)) else value)
    return 0


def _config_set(store: Any, args: argparse.Namespace) -> int:
    """``s3bp config set KEY VALUE``: check and write one setting."""
    from .config import parse_value

    value = store.configure(**{args.key: parse_value(args.key, args.value)})[args.key]
    print(f"{args.key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return 0


def _config_unset(store: Any, args: argparse.Namespace) -> int:
    """``s3bp config unset KEY``: back to the default."""
    value = store.configure(**{args.key: None})[args.key]
    print(f"{args.key}: {'(not set)' if value is None else value} (the default)")
    return 0


def _config_import(store: Any, args: argparse.Namespace) -> int:
    """``s3bp config import-0.1 PATH``: add an s3bp 0.1.x config's settings where this one has none."""
    from .config import import_legacy

    if not os.path.isfile(args.path):
        raise InvalidPathError(f"No s3bp 0.1.x config at {args.path!r}: give the path of its s3bp_cfg.yml.")
    refused: list[str] = []
    taken = import_legacy(store.config, args.path, refused)
    for reason in refused:
        print(f"s3bp config: not imported: {reason}", file=sys.stderr)
    if not taken and not refused:
        print(f"nothing to import from {args.path}: its settings are already in {store.config.path}, or it has none")
    for name, value in taken.items():
        if isinstance(value, dict):
            for directory, bucket in sorted(value.items()):
                print(f"imported mapping {directory} -> {bucket}")
        else:
            print(f"imported {name}: {value}")
    return 1 if refused else 0


_CONFIG_ACTIONS = {"get": _config_get, "set": _config_set, "unset": _config_unset, "import-0.1": _config_import}


def _print_connection(given: dict[str, str | None]) -> None:
    """The endpoint, region and profile a client uses (the config file's, else botocore's chain), and their sources."""
    for name, value, source in _connection(given):
        print(f"{name}: {'(not set)' if value is None else value} (from {source})")


def _connection(given: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """The effective endpoint, region and profile with their sources; a global option's source is the command line."""
    from .endpoints import describe_connection

    overrides = api.get_default_store().config.overrides
    rows = describe_connection(**given)
    return [(n, v, f"the command line (--{n.replace('_', '-')})" if n in overrides else src) for n, v, src in rows]


def _cmd_where(args: argparse.Namespace) -> int:
    """Say which bucket and key a path resolves to, and why."""
    res = api.get_default_store().resolve(args.path, args.bucket, args.namekey)
    if args.json:
        print(json.dumps({"url": f"s3://{res.bucket}/{res.key}", **dataclasses.asdict(res)}, indent=2))
        return 0
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
    """Map a directory to a bucket, say so, and warn when the bucket cannot be reached (one request; ``--no-check``)."""
    store = api.get_default_store()
    store.map_base_directory_to_bucket(args.directory, args.bucket)
    directory = paths.normalize(args.directory)
    print(f"mapped {directory} -> s3://{args.bucket}/{os.path.basename(directory)}/")
    if not args.no_check:
        problem = store.check_bucket(args.bucket)
        if problem is not None:
            print(f"s3bp map: warning: {problem.cli_message()} (the mapping is kept)", file=sys.stderr)
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
    files = api.ls(target)
    if args.json:
        print(json.dumps([_file_json(f) for f in files], indent=2))
        return 0
    for f in files:
        size = f.size
        both = f"  (local {f.local.size:,} B, S3 {f.remote.size:,} B)" if f.local and f.remote and f.state.value == "conflict" else ""
        print(f"{f.state.value:15} {size:>12,} {_rel(f.path, paths.normalize(target))}{both}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    """What S3 holds for a path (one HEAD) and how the local copy relates to it."""
    info = api.info(args.path, bucket_name=args.bucket, namekey=args.namekey or None)
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


def _file_json(f: Any) -> dict[str, Any]:
    """One ``s3bp ls --json`` entry: the file, its object, its state and both sides' sizes."""
    return {
        "path": f.path, "bucket": f.bucket, "key": f.key, "state": f.state.value,
        "local_size": f.local.size if f.local else None, "remote_size": f.remote.size if f.remote else None,
    }  # fmt: skip


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
        limit = "no limit" if info.max_size is None else human_bytes(info.max_size)
        age = "no limit" if info.max_age is None else _age(info.max_age)
        oldest = "-" if info.oldest_use is None else f"{_age(time.time() - info.oldest_use)} ago"
        print(f"cache dir:   {info.root}")
        print(f"size:        {human_bytes(info.size)} in {info.files} file(s) ({info.kept} cannot be evicted now)")
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
    freed, left = human_bytes(report.freed), human_bytes(report.size)
    print(f"{verb} {len(report.removed)} file(s), {freed}; {len(report.kept)} kept; {left} left in {report.root}")
    return 0


def _rel(path: str, top: str) -> str:
    """``path`` relative to ``top`` when below it."""
    return os.path.relpath(path, top) if paths.contains(top, path) else path


def _cmd_resolve(args: argparse.Namespace) -> int:
    """Settle a conflict for one file."""
    api.resolve_conflict(args.path, args.keep)
    kept = (
        "your version was uploaded (and any .s3bp-remote copy beside it removed)"
        if args.keep == "local"
        else f"S3's version downloaded; yours is in {args.path}.s3bp-local"
    )
    print(f"resolved {args.path}: {kept}")
    return 0


def _version_arg(text: str | None) -> str | datetime.datetime | None:
    """A ``--version``/VERSION argument: an ISO time (``2024-05-01T12:00``, ``...Z``) is a datetime, anything else an id or a name."""
    from .versioning import time_argument

    return None if text is None else time_argument(text) or text


def _cmd_versions(args: argparse.Namespace) -> int:
    """List an object's versions, newest first."""
    found = api.versions(args.path, args.bucket, args.namekey)
    if args.json:
        rows = [dict(dataclasses.asdict(v), last_modified=v.last_modified.isoformat()) for v in found]
        print(json.dumps(rows, indent=2))
        return 0
    if not found:
        print("no versions")
    for v in found:
        when = v.last_modified.strftime("%Y-%m-%d %H:%M:%S UTC")
        what = "(deleted)" if v.is_delete_marker else f"{v.size:>12,}"
        flags = " latest" if v.is_latest else ""
        names = f"  [{', '.join(v.names)}]" if v.names else ""
        print(f"{v.version_id}  {when}  {what}{flags}{names}")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    """Make a version the latest again, then update the local file."""
    rule = "overwrite" if args.overwrite else None
    path = api.restore(args.path, _version_arg(args.version) or args.version, args.bucket, args.namekey, conflict=rule)
    print(f"restored {args.version} as the latest version; {path} is up to date")
    return 0


def _cmd_tag(args: argparse.Namespace) -> int:
    """Name a version (default: the latest)."""
    version_id = api.tag(args.path, args.name, _version_arg(args.version), args.bucket, args.namekey)
    print(f"{args.name} -> {version_id}")
    return 0


def _cmd_untag(args: argparse.Namespace) -> int:
    """Remove a version's name."""
    api.untag(args.path, args.name, args.bucket, args.namekey)
    print(f"removed the name {args.name}")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    """Delete old versions (never the latest, never a named one)."""
    older = None
    if args.older_than is not None:
        import datetime

        from .config import parse_age

        if args.older_than.replace(".", "", 1).isdigit():  # a bare number: days? seconds? too costly to guess when deleting
            raise InvalidArgumentError(f"--older-than {args.older_than}: give a unit, e.g. {args.older_than}d (days) or {args.older_than}h (hours).")
        try:
            older = datetime.timedelta(seconds=parse_age(args.older_than))
        except ValueError as exc:
            raise InvalidArgumentError(f"--older-than {args.older_than}: {exc}") from None
    gone = api.prune(args.path, keep=args.keep, older_than=older, dry_run=args.dry_run, bucket_name=args.bucket, namekey=args.namekey)
    verb = "would delete" if args.dry_run else "deleted"
    for v in gone:
        print(f"{verb}: {v.version_id}  {v.last_modified.strftime('%Y-%m-%d %H:%M:%S UTC')}  {v.size:,}")
    print(f"{verb} {len(gone)} version(s)")
    return 0


def _cmd_cat(args: argparse.Namespace) -> int:
    """Write an object's bytes (the latest, or a version) to stdout."""
    import shutil

    path = api.download_file(args.path, args.bucket, args.namekey, version=_version_arg(args.version))
    with open(path, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
    return 0


def _cmd_versioning(args: argparse.Namespace) -> int:
    """Show a bucket's versioning, or turn it on or suspend it."""
    enable = True if args.enable else False if args.suspend else None
    status = api.get_default_store().bucket_versioning(args.bucket, enable) or "never enabled"
    if enable is True:
        print(f"versioning is on for bucket {args.bucket}: every save keeps its version from now on")
    elif enable is False:
        print(f"versioning is suspended for bucket {args.bucket}: saves replace the 'null' version; older versions stay")
    else:
        print(f"bucket {args.bucket}: versioning {status}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Run the README's demo against an embedded local S3 server."""
    from . import demo

    return demo.main()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``s3bp`` command; with ``only``, only that subcommand's (the others are not built)."""
    parser = argparse.ArgumentParser(prog="s3bp", description="Save and load Python objects to S3, cached on disk.")
    parser.add_argument("--version", action="version", version=f"s3bp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if only is not None:
        sub = _Only(sub, only)  # type: ignore[assignment]

    p = sub.add_parser("config", help="show the effective config, its file and the state dir; get, set or unset a setting")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p.set_defaults(func=_cmd_config)
    actions = p.add_subparsers(dest="config_action", metavar="ACTION")
    q = actions.add_parser("get", help="print a setting's value (exit 1 when unset)")
    q.add_argument("key")
    q.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="the value as JSON")
    q = actions.add_parser("set", help="check and write a setting (numbers and mappings in YAML: 5, {dir: bucket})")
    q.add_argument("key")
    q.add_argument("value")
    q = actions.add_parser("unset", help="set a setting back to its default")
    q.add_argument("key")
    q = actions.add_parser("import-0.1", help="import an s3bp 0.1.x config (s3bp_cfg.yml) where this one has no settings")
    q.add_argument("path")
    p = sub.add_parser("where", help="the bucket and key a local path resolves to, and why")
    p.add_argument("path")
    p.add_argument("--bucket", default=None)
    p.add_argument("--namekey", action="store_true")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p.set_defaults(func=_cmd_where)
    p = sub.add_parser("default-bucket", help="show, set or unset the default bucket")
    p.add_argument("name", nargs="?")
    p.add_argument("--unset", action="store_true")
    p.set_defaults(func=_cmd_default_bucket)
    p = sub.add_parser("map", help="map a directory to a bucket")
    p.add_argument("directory")
    p.add_argument("bucket")
    p.add_argument("--no-check", action="store_true", help="do not check that the bucket exists (no request)")
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
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    p.set_defaults(func=_cmd_ls)
    p = sub.add_parser("info", help="what S3 holds for a path (one HEAD): ETag, size, type, metadata, and the local state")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p.add_argument("--bucket", default=None, help="the bucket, as for save and load (default: the mapped or default one)")
    p.add_argument("--namekey", action="store_true", help="key the object by the file's base name")
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
    _add_version_commands(sub)
    for command in sub.choices.values():  # `s3bp flush --debug` as well as `s3bp --debug flush`
        # SUPPRESS: a subcommand without the flag leaves `s3bp --debug COMMAND`'s value alone
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    _add_connection_options(parser, default=None)
    for command in sub.choices.values():  # before or after the command, as `aws` takes them
        _add_connection_options(command, default=argparse.SUPPRESS)
    if not sub.choices:  # an unknown command: the whole parser names the known ones
        return build_parser()
    return parser


class _Only:
    """Subcommands as ``add_subparsers`` gives them, where only ``name`` is built: a command runs without building the
    other thirty parsers (``s3bp --help``, an abbreviated option and an unknown command get the whole parser)."""

    def __init__(self, sub: argparse._SubParsersAction, name: str):
        self._sub, self._name = sub, name
        self.choices = sub.choices

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        return self._sub.add_parser(name, **kwargs) if name == self._name else _Unbuilt()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sub, name)


class _Unbuilt:
    """The parser of a subcommand this run does not need: whatever is added to it is dropped."""

    choices: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Callable[..., _Unbuilt]:
        return lambda *args, **kwargs: self


def _add_version_commands(sub: argparse._SubParsersAction) -> None:
    """The commands for versions: versions, restore, tag, untag, prune, cat, versioning."""

    def object_parser(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text)
        p.add_argument("path")
        p.add_argument("--bucket", default=None)
        p.add_argument("--namekey", action="store_true")
        return p

    p = object_parser("versions", "list the versions of a file's object, newest first, with their names")
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    p.set_defaults(func=_cmd_versions)
    p = object_parser("restore", "make a version (id, name or ISO time) the latest again, then update the local file")
    p.add_argument("version")
    p.add_argument("--overwrite", action="store_true", help="even if the object or the local file changed since the last sync")
    p.set_defaults(func=_cmd_restore)
    p = object_parser("tag", "name a version (default: the latest), e.g. prod or a git commit")
    p.add_argument("name")
    p.add_argument("version", nargs="?", default=None)
    p.set_defaults(func=_cmd_tag)
    p = object_parser("untag", "remove a version's name")
    p.add_argument("name")
    p.set_defaults(func=_cmd_untag)
    p = object_parser("prune", "delete old versions for good (never the latest, never a named one)")
    p.add_argument("--keep", type=int, default=None, help="keep the N newest versions")
    p.add_argument("--older-than", default=None, metavar="AGE", help="delete only versions replaced over AGE ago, e.g. 30d, 12h, 2w")
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    p.set_defaults(func=_cmd_prune)
    p = object_parser("cat", "write a file's object (or one version of it) to stdout")
    p.add_argument("--version", default=None, help="a version id, a name, or an ISO time")
    p.set_defaults(func=_cmd_cat)
    p = sub.add_parser("versioning", help="show a bucket's versioning, or turn it on")
    p.add_argument("bucket")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--enable", action="store_true", help="turn versioning on")
    group.add_argument("--suspend", action="store_true", help="suspend versioning (older versions stay)")
    p.set_defaults(func=_cmd_versioning)

#: The global options that override a connection setting for one run: (option, setting).
_GLOBAL_OPTIONS = (("--endpoint-url", "endpoint_url"), ("--profile", "profile"), ("--region", "region"))


def _add_connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """``--endpoint-url``, ``--profile`` and ``--region``: override the config for this run only."""
    group = parser.add_argument_group("connection (for this run only; the config file is not changed)")
    for option, setting in _GLOBAL_OPTIONS:
        group.add_argument(option, dest=f"global_{setting}", metavar=setting.split("_")[0].upper(), default=default)


def _use_overrides(args: argparse.Namespace) -> None:
    """Make the default store use the global options' settings over the config file's, for this run."""
    overrides = {setting: getattr(args, f"global_{setting}", None) for _, setting in _GLOBAL_OPTIONS}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        from .config import ConfigFile
        from .core import Store

        api.set_default_store(Store(config=ConfigFile(overrides=overrides)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``s3bp`` command; return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    rc = 0
    shown, warnings.showwarning = warnings.showwarning, _warn_in_one_line
    try:
        _use_overrides(args)
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


def _command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names when nothing but ``--debug`` and the connection options (spelt out) come before it."""
    valued = {option for option, _ in _GLOBAL_OPTIONS}
    tokens = iter(argv)
    for token in tokens:
        if token in valued:
            next(tokens, None)
        elif token != "--debug" and token.split("=", 1)[0] not in valued:
            return None if token.startswith("-") else token  # --help, --version, abbreviations: the whole parser
    return None


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
    text = exc.cli_message() if isinstance(exc, S3bpError) else str(exc)  # remedies as `s3bp` commands
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
