"""DataFrame formats: s3bp's save and cold load against the pandas writer/reader plus raw boto3.

    python benchmarks/formats.py            # 2,000,000 x 5 frame (Excel: 100,000 rows, its sheet limit is 1,048,576)
    python benchmarks/formats.py --rows 200000

Saves run in this process; every cold load runs in its own subprocess so its
peak RSS is its own. s3bp and the floor alternate, three times each.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Bench, _cold, add, machine, make_frame, start, table  # noqa: E402

FLOOR_WRITERS = {
    "parquet": lambda df, path: df.to_parquet(path),
    "feather": lambda df, path: df.to_feather(path),
    "csv": lambda df, path: df.to_csv(path),
    "excel": lambda df, path: df.to_excel(path),
    "pickle": lambda df, path: df.to_pickle(path),
}
SUFFIX = {"parquet": ".parquet", "feather": ".feather", "csv": ".csv", "excel": ".xlsx", "pickle": ".pkl"}


def bench_format(b: Bench, fmt: str, df, reps: int) -> None:
    key = f"frame{SUFFIX[fmt]}"
    store = b.store(f"fmt-{fmt}")
    store.client().head_bucket(Bucket=b.bucket)
    saves, floor_saves = [], []
    for rep in range(reps):
        t = time.perf_counter()
        store.save_dataframe(df, b.root / f"save-{fmt}-{rep}" / key, b.bucket, format=fmt, wait=True)
        saves.append(time.perf_counter() - t)
        local = b.root / f"floor-{fmt}-{rep}{SUFFIX[fmt]}"
        t = time.perf_counter()
        FLOOR_WRITERS[fmt](df, local)
        b.raw.upload_file(str(local), b.bucket, f"floor-{key}")
        floor_saves.append(time.perf_counter() - t)
    store.close()
    ours, base = [], []
    for _ in range(reps):
        ours.append(_cold(b, f"s3bp-frame-{fmt}", key))
        base.append(_cold(b, f"floor-frame-{fmt}", key))
    size = b.raw.head_object(Bucket=b.bucket, Key=key)["ContentLength"] / 1e6
    rows = f"{len(df):,} rows, {size:.0f} MB"
    med = statistics.median
    add(fmt, f"save ({rows}), s", med(saves), med(floor_saves), " s", "floor: pandas writer + boto3 upload_file")
    add(fmt, "cold load, s", med([r["seconds"] for r in ours]), med([r["seconds"] for r in base]), " s", "floor: boto3 download_file + pandas reader")
    add(fmt, "cold load peak RSS", med([r["maxrss_mb"] for r in ours]), med([r["maxrss_mb"] for r in base]), " MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--excel-rows", type=int, default=100_000)
    parser.add_argument("--formats", default="parquet,feather,pickle,csv,excel")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--endpoint-url")
    parser.add_argument("--out")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="s3bp-formats-"))
    try:
        with contextlib.ExitStack() as stack:
            b = start(stack, args.endpoint_url, root)
            big = make_frame(args.rows)
            for fmt in args.formats.split(","):
                df = make_frame(args.excel_rows) if fmt == "excel" else big
                if fmt == "excel":
                    df = df.assign(t=df["t"].dt.tz_localize(None))  # Excel has no time zones
                print(fmt, flush=True)
                bench_format(b, fmt, df, args.reps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = f"{time.strftime('%Y-%m-%d')}, {machine()}\n\n{table()}\n"
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
