"""Folder push and pull: s3bp against `aws s3 sync`-style raw boto3 loops on the same server.

    python benchmarks/folders.py                 # 1,000 files of 10 KB, 3 rounds
    python benchmarks/folders.py --files 200 --rounds 1

Each round uses a fresh folder name (so a fresh key prefix): push uploads
every file, pull downloads every object into an empty folder. The floors
list the prefix, then put or get each file: one after another, and on a
thread pool as large as s3bp's worker pool. ``s3bp push``/``s3bp pull`` are
also timed as commands (a new process: interpreter and boto3 import included).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Bench, add, machine, start, table  # noqa: E402

WORKERS = 8


def make_tree(root: Path, files: int, size: int) -> None:
    """``files`` files of ``size`` random bytes, 50 to a sub-folder."""
    for i in range(files):
        path = root / f"part-{i // 50:03d}" / f"file-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def raw_push(b: Bench, root: Path, pool: int) -> None:
    """List the prefix, then put every local file (as `aws s3 sync` does for new files)."""
    prefix = root.name + "/"
    b.raw.list_objects_v2(Bucket=b.bucket, Prefix=prefix)
    files = [p for p in root.rglob("*") if p.is_file()]

    def put(p: Path) -> None:
        with open(p, "rb") as body:
            b.raw.put_object(Bucket=b.bucket, Key=prefix + p.relative_to(root).as_posix(), Body=body)

    _each(put, files, pool)


def raw_pull(b: Bench, prefix: str, into: Path, pool: int) -> None:
    """List the prefix, then get every object into ``into``."""
    keys = [o["Key"] for page in b.raw.get_paginator("list_objects_v2").paginate(Bucket=b.bucket, Prefix=prefix) for o in page.get("Contents", ())]

    def get(key: str) -> None:
        target = into / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            shutil.copyfileobj(b.raw.get_object(Bucket=b.bucket, Key=key)["Body"], out)

    _each(get, keys, pool)


def _each(fn, items, pool: int) -> None:
    if pool <= 1:
        for item in items:
            fn(item)
        return
    with concurrent.futures.ThreadPoolExecutor(pool) as ex:
        list(ex.map(fn, items))


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "s3bp", *args, "--no-progress"], check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--endpoint-url")
    parser.add_argument("--out")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="s3bp-folders-"))
    times: dict[str, list[float]] = {}
    try:
        with contextlib.ExitStack() as stack:
            b = start(stack, args.endpoint_url, root)
            b.raw.list_objects_v2(Bucket=b.bucket)  # connect
            for r in range(args.rounds):
                print(f"round {r + 1}", flush=True)
                for name, run in (
                    ("raw push sequential", lambda d: raw_push(b, d, 1)),
                    ("raw push pool", lambda d: raw_push(b, d, WORKERS)),
                    ("s3bp push (API)", lambda d: _api(b, d, "push")),
                    ("s3bp push (command)", lambda d: cli("push", str(d))),
                ):
                    tag = name.split()[0] + name.split()[-1].strip("()")
                    d = root / "src" / f"{tag}-{r}"
                    make_tree(d, args.files, args.size)
                    _api_map(b, d)
                    times.setdefault(name, []).append(timed(functools.partial(run, d)))
                    # pull the same tree into an empty folder of the same name on "another machine"
                    empty = root / "dst" / name.replace(" ", "_").replace("(", "").replace(")", "") / d.name
                    pull_name = name.replace("push", "pull")
                    if pull_name.startswith("raw"):
                        pool = 1 if "sequential" in pull_name else WORKERS
                        how = functools.partial(raw_pull, b, d.name + "/", empty, pool)
                    else:
                        _api_map(b, empty)
                        how = functools.partial(_api, b, empty, "pull") if "API" in pull_name else functools.partial(cli, "pull", str(empty))
                    times.setdefault(pull_name, []).append(timed(how))
                    got = sum(1 for p in empty.rglob("*") if p.is_file())
                    assert got == args.files, (got, empty)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for op in ("push", "pull"):
        for ours in (f"s3bp {op} (API)", f"s3bp {op} (command)"):
            add(op, f"{ours} vs sequential loop", med[ours], med[f"raw {op} sequential"], " s")
            add(op, f"{ours} vs thread pool ({WORKERS})", med[ours], med[f"raw {op} pool"], " s")
    text = f"{time.strftime('%Y-%m-%d')}, {machine()}, {args.files} files x {args.size} B, median of {args.rounds}\n\n{table()}\n"
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def _api_map(b: Bench, directory: Path) -> None:
    """Map ``directory`` to the bench bucket in the shared config (the command reads it too)."""
    import s3bp

    s3bp.map_base_directory_to_bucket(directory, b.bucket)


def _api(b: Bench, directory: Path, op: str) -> None:
    """push or pull with a fresh default store, as a new script would."""
    import s3bp

    s3bp.set_default_store(None)
    report = getattr(s3bp, op)(directory, progress=False)
    assert report.ok, report.summary()


if __name__ == "__main__":
    sys.exit(main())
