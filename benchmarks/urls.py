"""s3:// URLs and the managed cache: a warm URL load against a warm mapped-path load, and pruning 10,000 cached files.

    python benchmarks/urls.py                       # 300 warm loads of each, 10,000 cached files
    python benchmarks/urls.py --loads 100 --files 2000

Warm loads alternate between the mapped path and the URL (same object size,
same server, same process), so both see the same machine noise; the ratio of
the medians is printed. Requests are counted with botocore's before-send event.

The cache for the prune is made directly (files in the cache's layout, with
the sync records and use rows a load leaves), so that the figure is the
prune's and not 10,000 downloads'. ``s3bp cache prune`` is timed as a
command (a new process), as a user runs it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import Server  # noqa: E402


def warm_loads(endpoint: str, root: Path, loads: int) -> None:
    import boto3

    import s3bp

    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    with s3bp.Store(config=root / "config.yml", state_dir=root / "state", cache_dir=root / "cache") as store:
        store.config.update(lambda d: d.update(endpoint_url=endpoint))
        store.map_base_directory_to_bucket(root / "data", bucket)
        obj = {"rows": list(range(1000))}
        mapped, url = root / "data" / "mapped.pkl", f"s3://{bucket}/url.pkl"
        store.save_object(obj, mapped, wait=True)
        store.save_object(obj, url, wait=True)
        sent: list[str] = []
        store.client().meta.events.register("before-send.s3", lambda request, **kw: sent.append(request.method))
        times: dict[str, list[float]] = {"mapped path": [], "s3:// URL": []}
        requests: dict[str, int] = {}
        for target in (mapped, url):  # one warm-up each
            store.load_object(target)
        for _ in range(loads):
            for name, target in (("mapped path", mapped), ("s3:// URL", url)):
                before = len(sent)
                start = time.perf_counter()
                assert store.load_object(target) == obj
                times[name].append(time.perf_counter() - start)
                requests[name] = requests.get(name, 0) + len(sent) - before
        print(f"warm loads ({loads} each, alternating, 1000-int list pickled):")
        for name, xs in times.items():
            print(f"  {name:12} median {statistics.median(xs) * 1000:.2f} ms, p90 {sorted(xs)[int(len(xs) * 0.9)] * 1000:.2f} ms, "
                  f"{requests[name] / loads:.2f} requests per load")  # fmt: skip
        ratio = statistics.median(times["s3:// URL"]) / statistics.median(times["mapped path"])
        print(f"  URL / mapped median ratio: {ratio:.2f}")


def prune(endpoint: str, root: Path, files: int) -> None:
    import s3bp
    from s3bp.cache import endpoint_id
    from s3bp.freshness import SyncRecord

    with s3bp.Store(config=root / "config.yml", state_dir=root / "state", cache_dir=root / "cache") as store:
        db = store._index()
        base = root / "cache" / endpoint_id(endpoint) / "bench-bucket"
        records, uses, now = [], [], time.time()
        for i in range(files):
            path = base / f"part-{i // 100:03d}" / f"file-{i:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * 1000)
            st = path.stat()
            key = str(path.relative_to(base)).replace(os.sep, "/")
            records.append(SyncRecord(str(path), endpoint, "bench-bucket", key, '"etag"', st.st_size, st.st_mtime_ns, now))
            uses.append((str(path), now - files + i, st.st_size))
        db.put_records(records)
        with db._transaction() as conn:  # the use rows loads leave, in one transaction
            conn.executemany("INSERT OR REPLACE INTO cache_uses (path, used_at, size) VALUES (?, ?, ?)", uses)
    env = {**os.environ, "S3BP_CONFIG": str(root / "config.yml"), "S3BP_STATE_DIR": str(root / "state"), "S3BP_CACHE_DIR": str(root / "cache")}
    print(f"s3bp cache prune over {files:,} cached files of 1,000 bytes (as commands, interpreter start included):")
    for args in (["info"], ["prune", "--max-size", f"{files * 1000 // 2}B", "--dry-run"], ["prune", "--max-size", f"{files * 1000 // 2}B"],
                 ["clear"]):  # fmt: skip
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "s3bp", "cache", *args], env=env, capture_output=True, text=True, check=True).stdout
        elapsed = time.perf_counter() - start
        print(f"  s3bp cache {' '.join(args):40} {elapsed:6.2f} s   {out.strip().splitlines()[-1 if args != ['info'] else 1]}")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import s3bp"], env=env, check=True)
    print(f"  (python -c 'import s3bp' alone: {time.perf_counter() - start:.2f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=300)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    for var, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"), ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(var, value)
    with tempfile.TemporaryDirectory(prefix="s3bp-bench-urls-") as tmp, Server() as endpoint:
        os.environ["HOME"] = tmp
        warm_loads(endpoint, Path(tmp) / "loads", args.loads)
        prune(endpoint, Path(tmp) / "prune", args.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
