"""What checking costs: requests for ``info`` and an identical save, and ``verify`` over a folder against ``aws s3 sync --dryrun``.

    python benchmarks/verify.py                   # 1,000 files of 4 KiB
    python benchmarks/verify.py --files 200 --size 65536
    python benchmarks/verify.py --aws /tmp/awscli/bin/aws   # also time `aws s3 sync --dryrun` over the same folder

The two do different work: ``verify`` hashes every synced file and compares
it, and S3's listing, with the sync records; ``aws s3 sync --dryrun`` lists
the prefix and compares sizes and modification times only. Both send one
LIST per 1,000 keys. Nothing here talks to anything but 127.0.0.1.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--aws", default=None, help="the aws command, to time `aws s3 sync --dryrun` beside verify")
    args = parser.parse_args()

    from server import Server

    with Server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
        os.environ.update(S3BP_CONFIG=f"{tmp}/config.yml", S3BP_STATE_DIR=f"{tmp}/state", S3BP_CACHE_DIR=f"{tmp}/cache")
        import s3bp
        from tests.support import RequestLog

        store = s3bp.Store()
        store.config.update(lambda d: d.update(endpoint_url=endpoint))
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        store.client().create_bucket(Bucket=bucket)
        folder = Path(tmp) / "data"
        folder.mkdir()
        store.map_base_directory_to_bucket(folder, bucket)
        for i in range(args.files):
            (folder / f"d{i // 100:02d}" / f"f{i:05d}.bin").parent.mkdir(exist_ok=True)
            (folder / f"d{i // 100:02d}" / f"f{i:05d}.bin").write_bytes(os.urandom(args.size))
        store.push(folder, progress=False)
        log = RequestLog()
        log.attach(store.client())

        def counted(what: str, fn) -> None:
            log.clear()
            fn()
            ops = log.operations
            print(f"{what:40} {len(ops):>5} request(s): {', '.join(sorted(set(ops))) or '-'}")

        target = folder / "obj.pkl"
        store.save_object({"a": 1}, target, wait=True)
        counted("info", lambda: store.info(target))
        counted("identical save (max_age 0)", lambda: store.save_object({"a": 1}, target, wait=True))
        store.config.update(lambda d: d.__setitem__("max_age", 3600))
        counted("identical save (within max_age)", lambda: store.save_object({"a": 1}, target, wait=True))
        counted(f"verify over {args.files + 1} files", lambda: store.verify(folder))
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            report = store.verify(folder)
            times.append(time.perf_counter() - start)
        assert report.ok, report.summary()
        print(f"verify: median {statistics.median(times) * 1000:.0f} ms over {args.runs} runs ({args.files + 1} files of {args.size} B)")
        if args.aws:
            env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                subprocess.run([args.aws, "s3", "sync", "--dryrun", str(folder), f"s3://{bucket}/data"], env=env, check=True, capture_output=True)
                times.append(time.perf_counter() - start)
            print(f"aws s3 sync --dryrun: median {statistics.median(times) * 1000:.0f} ms over {args.runs} runs (process start included)")
            start = time.perf_counter()
            subprocess.run([args.aws, "--version"], env=env, check=True, capture_output=True)
            print(f"aws --version alone (its start-up): {(time.perf_counter() - start) * 1000:.0f} ms")
        log.detach()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
