"""s3bp against the raw boto3 floor, side by side on one local S3 server.

    python benchmarks/run.py                # every workload, moto under waitress
    python benchmarks/run.py --only W1,W3   # some of them
    python benchmarks/run.py --quick        # smaller sizes, for a smoke run
    python benchmarks/run.py --endpoint-url http://127.0.0.1:9000   # e.g. MinIO (credentials from the environment)

Each workload runs s3bp and the floor in the same run, alternating, and the
table gives medians (p95 where it matters), request counts, peak RSS and the
ratio s3bp / floor. Nothing here talks to anything but 127.0.0.1 (or the
endpoint given).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import pickle
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ROWS: list[tuple[str, str, str, str, str, str]] = []


def add(workload: str, metric: str, ours: float | str, floor: float | str | None, unit: str = "", note: str = "") -> None:
    """One table row; the ratio is ours / floor when both are numbers."""
    ratio = f"{ours / floor:.2f}x" if isinstance(ours, (int, float)) and isinstance(floor, (int, float)) and floor else ""
    fmt = lambda v: "" if v is None else (f"{v:.3g}{unit}" if isinstance(v, float) else f"{v}{unit}")  # noqa: E731
    ROWS.append((workload, metric, fmt(ours), fmt(floor), ratio, note))
    print(f"  {workload} {metric}: s3bp {fmt(ours)}  floor {fmt(floor)}  {ratio}  {note}", flush=True)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def ms(seconds: float) -> float:
    return seconds * 1000


class Bench:
    """The shared set-up: an endpoint, a bucket, temp dirs, a raw client."""

    def __init__(self, endpoint: str, root: Path):
        import boto3

        self.endpoint, self.root = endpoint, root
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        self.raw = boto3.client("s3", endpoint_url=endpoint)
        self.bucket = f"s3bp-bench-{uuid.uuid4().hex[:10]}"
        self.raw.create_bucket(Bucket=self.bucket)

    def store(self, name: str, **settings):
        """A fresh s3bp store with its own config and state dir."""
        import s3bp

        d = self.root / name
        store = s3bp.Store(config=d / "config.yml", state_dir=d / "state")
        if settings:
            store.config.update(lambda cfg: cfg.update(settings))
        return store


def count_requests(client) -> list[str]:
    """A list that fills with the HTTP method of every request ``client`` sends."""
    sent: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **kw: sent.append(request.method))
    return sent


# -- W1 warm load -----------------------------------------------------------


def w1(b: Bench, loads: int) -> None:
    print("W1 warm load", flush=True)
    obj = {f"name-{i}": i for i in range(700)}  # ~10 KB pickled
    store = b.store("w1")
    path = b.root / "w1-data" / "warm.pkl"
    store.save_object(obj, path, b.bucket, wait=True)
    sent = count_requests(store.client())
    import boto3

    floor = boto3.client("s3", endpoint_url=b.endpoint)
    floor.head_object(Bucket=b.bucket, Key="warm.pkl")  # connect first, as s3bp already has
    ours, base = [], []
    for _ in range(loads):
        t = time.perf_counter()
        store.load_object(path, b.bucket)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        floor.head_object(Bucket=b.bucket, Key="warm.pkl")
        with open(path, "rb") as fh:
            pickle.load(fh)
        base.append(time.perf_counter() - t)
    add("W1", "requests per warm load", len(sent) / loads, 1.0)
    add("W1", "median ms", ms(median(ours)), ms(median(base)), " ms")
    add("W1", "p95 ms", ms(p(ours, 0.95)), ms(p(base, 0.95)), " ms")
    sent.clear()
    trusted = []
    for _ in range(loads):
        t = time.perf_counter()
        store.load_object(path, b.bucket, max_age=3600)
        trusted.append(time.perf_counter() - t)
    add("W1", "max_age=3600: requests per load", len(sent) / loads, None, note="trust window")
    add("W1", "max_age=3600: median ms", ms(median(trusted)), ms(median(base)), " ms", "floor: HEAD + unpickle")
    store.close()


# -- W2 cold load -------------------------------------------------------------


FLOOR_READERS = {
    "parquet": lambda pd, path: pd.read_parquet(path),
    "feather": lambda pd, path: pd.read_feather(path),
    "csv": lambda pd, path: pd.read_csv(path, index_col=0),
    "excel": lambda pd, path: pd.read_excel(path, index_col=0),
    "pickle": lambda pd, path: pd.read_pickle(path),
}


def _child(kind: str, endpoint: str, bucket: str, key: str, out: str) -> None:
    """One cold load in a fresh process; prints seconds and peak RSS.

    ``kind`` is ``s3bp-bin``, ``floor-bin``, ``s3bp-frame-FORMAT`` or ``floor-frame-FORMAT``.
    """
    state = tempfile.mkdtemp()
    os.environ.update(S3BP_CONFIG=f"{state}/config.yml", S3BP_STATE_DIR=f"{state}/state", AWS_ENDPOINT_URL=endpoint)
    who, what = kind.split("-", 1)
    if who == "s3bp":
        import s3bp

        s3bp.get_default_store().client()  # create the client before timing, as the floor does
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    if what.startswith("frame-"):
        import pandas as pd
        import pyarrow  # noqa: F401
    t = time.perf_counter()
    if kind == "s3bp-bin":
        s3bp.download_file(out, bucket)
    elif kind == "floor-bin":
        client.download_file(bucket, key, out)
    elif who == "s3bp":
        df = s3bp.load_dataframe(out, bucket, format=what[len("frame-") :])
    else:
        client.download_file(bucket, key, out)
        df = FLOOR_READERS[what[len("frame-") :]](pd, out)
    seconds = time.perf_counter() - t
    if what.startswith("frame-"):
        assert len(df) > 0
    print(json.dumps({"seconds": seconds, "maxrss_mb": peak_rss_mb()}))
    shutil.rmtree(state, ignore_errors=True)


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, which exec resets (ru_maxrss carries the parent's over)."""
    with contextlib.suppress(OSError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cold(b: Bench, kind: str, key: str) -> dict:
    out = b.root / f"cold-{uuid.uuid4().hex[:6]}" / key
    out.parent.mkdir(parents=True)
    res = subprocess.run(
        [sys.executable, __file__, "--child", kind, b.endpoint, b.bucket, key, str(out)], capture_output=True, text=True
    )
    if res.returncode:
        raise RuntimeError(res.stderr)
    shutil.rmtree(out.parent)
    return json.loads(res.stdout.strip().splitlines()[-1])


def make_frame(rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "i": rng.integers(0, 1_000_000, rows),
            "f": rng.random(rows),
            "s": pd.Series(rng.integers(0, 100_000, rows)).map("item-{:06d}".format),
            "t": pd.date_range("2020-01-01", periods=rows, freq="s", tz="UTC"),
            "c": pd.Categorical(rng.choice(["red", "green", "blue"], rows)),
        }
    )


def w2(b: Bench, mib: int, rows: int, reps: int) -> None:
    print("W2 cold load", flush=True)
    blob = b.root / "blob.bin"
    with open(blob, "wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(1 << 20))
    b.raw.upload_file(str(blob), b.bucket, "blob.bin")
    blob.unlink()
    import s3bp.frames

    frame_file = b.root / "frame.parquet"
    s3bp.frames.parquet_write(make_frame(rows), str(frame_file))
    b.raw.upload_file(str(frame_file), b.bucket, "frame.parquet")
    frame_file.unlink()
    for what, key in ((f"{mib} MiB binary", "blob.bin"), (f"{rows:,}-row parquet frame", "frame.parquet")):
        suffix = "bin" if key.endswith("bin") else "frame-parquet"
        ours, base = [], []
        for _ in range(reps if key.endswith("bin") else 3 * reps):  # the frame loads are short and noisy: more of them
            ours.append(_cold(b, f"s3bp-{suffix}", key))
            base.append(_cold(b, f"floor-{suffix}", key))
        add("W2", f"{what}: median s", median([r["seconds"] for r in ours]), median([r["seconds"] for r in base]), " s")
        add("W2", f"{what}: peak RSS", median([r["maxrss_mb"] for r in ours]), median([r["maxrss_mb"] for r in base]), " MB")


# -- W3 save-and-forget ---------------------------------------------------------


def _saves(b: Bench, store, count: int, folder: Path, obj_of) -> tuple[float, list[float]]:
    """``count`` background saves and a flush: total seconds and per-call latencies.

    Also counts the caller thread's voluntary context switches during the calls (``SWITCHES``): each is a wait,
    for the GIL or the disk; unlike the latencies, the count does not grow with other load on the machine.
    """
    latencies = []
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
    t0 = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        store.save_object(obj_of(i), folder / f"o{i}.pkl", b.bucket)
        latencies.append(time.perf_counter() - t)
    SWITCHES.append((resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - before) / count)
    store.flush()
    return time.perf_counter() - t0, latencies


SWITCHES: list[float] = []


def w3(b: Bench, count: int, workers: int = 8) -> None:
    print("W3 save-and-forget", flush=True)
    import boto3

    payload = os.urandom(10_000)
    obj_of = lambda i: (i, payload)  # noqa: E731
    floor = boto3.client("s3", endpoint_url=b.endpoint, config=__import__("botocore.config").config.Config(max_pool_connections=workers + 2))
    floor.head_bucket(Bucket=b.bucket)

    def put(i: int, prefix: str) -> None:
        floor.put_object(Bucket=b.bucket, Key=f"{prefix}/o{i}.pkl", Body=pickle.dumps(obj_of(i), pickle.HIGHEST_PROTOCOL))

    ours, threaded, sequential, latencies = [], [], [], []
    SWITCHES.clear()
    for rep in range(3):
        store = b.store(f"w3-{rep}", max_workers=workers)
        store.client().head_bucket(Bucket=b.bucket)  # connect and import before timing
        _warm(b, store)
        total, lat = _saves(b, store, count, b.root / f"w3-data-{rep}", obj_of)
        store.close()
        ours.append(total)
        latencies += lat
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(put, range(count), [f"floor{rep}"] * count))
        threaded.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(count):
            put(i, f"seq{rep}")
        sequential.append(time.perf_counter() - t)
    tput = lambda s: count / s  # noqa: E731
    add("W3", f"{count} saves + flush: objects/s", tput(median(ours)), tput(median(threaded)), note=f"floor: put_object on {workers} threads")
    add("W3", "  vs sequential put_object: objects/s", tput(median(ours)), tput(median(sequential)))
    ser = []
    scratch = b.root / "ser.pkl"
    for i in range(200):
        t = time.perf_counter()
        with open(scratch, "wb") as fh:
            pickle.dump(obj_of(i), fh, pickle.HIGHEST_PROTOCOL)
        ser.append(time.perf_counter() - t)
    add("W3", "caller latency per save, median", ms(median(latencies)), ms(median(ser)), " ms", "floor: the serializer alone")
    add("W3", "caller latency per save, p99", ms(p(latencies, 0.99)), ms(p(ser, 0.99)), " ms")
    add("W3", "500 saves durable, vs sequential put_object", median(ours), median(sequential), " s", "goal: <= 0.5x")
    default_switches = median(SWITCHES)
    # The options for the caller's stall, side by side (the rows above are the default: the child uploader process):
    # uploads in this process's threads (8, or 2), and no network work at all in the process (threads running an
    # upload function that only sleeps).
    options = (("in-process threads (upload_process: false)", workers, False), ("2 in-process threads", 2, False),
               ("8 threads, network stubbed away", workers, True))  # fmt: skip
    for label, n, stub in options:
        totals, lat_opt = [], []
        SWITCHES.clear()
        for rep in range(3):
            store = b.store(f"w3-opt-{n}-{stub}-{rep}", max_workers=n, upload_process=False)
            store.client().head_bucket(Bucket=b.bucket)
            _warm(b, store)
            if stub:
                store._upload_entry = _sleeping_upload
            total, lat = _saves(b, store, count, b.root / f"w3-opt-{n}-{stub}-{rep}-data", obj_of)
            store.close()
            totals.append(total)
            lat_opt += lat
        add("W3", f"{label}: caller median", ms(median(lat_opt)), ms(median(ser)), " ms")
        add("W3", f"{label}: caller p99", ms(p(lat_opt, 0.99)), ms(p(ser, 0.99)), " ms")
        add("W3", f"caller waits per save (voluntary switches): default vs {label}", default_switches, median(SWITCHES))
        if not stub:
            add("W3", f"{label}: {count} saves durable", median(totals), median(sequential), " s", "floor: sequential put_object")


def _warm(b: Bench, store) -> None:
    """One background save and a flush before timing: the child uploader (by default) is started and connected."""
    store.save_object(0, b.root / f"warm-{uuid.uuid4().hex[:8]}.pkl", b.bucket)
    store.flush()


def _sleeping_upload(entry):
    """An upload that holds no GIL: 4 ms of sleep, then the record S3 would have given."""
    from s3bp.freshness import SyncRecord

    time.sleep(0.004)
    return SyncRecord(
        path=entry.path, endpoint=entry.endpoint, bucket=entry.bucket, key=entry.key, etag='"stub"', size=entry.size,
        mtime_ns=entry.mtime_ns, verified_at=time.time(), saved_ns=entry.seq,
    )


# -- W4 import ------------------------------------------------------------------


def w4(b: Bench, reps: int = 10) -> None:
    print("W4 import", flush=True)

    def timed(code: str) -> float:
        subprocess.run([sys.executable, "-c", code], check=True, env=_env())  # bytecode written
        runs = []
        for _ in range(reps):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=_env())
            runs.append(time.perf_counter() - t)
        return median(runs)

    bare, ours, boto = timed("pass"), timed("import s3bp"), timed("import boto3")
    add("W4", "python -c 'import s3bp' (ms)", ms(ours), ms(boto), " ms", "floor: import boto3")
    add("W4", "  over the bare interpreter", ms(ours - bare), None, " ms", f"bare interpreter {ms(bare):.0f} ms")
    folder = b.root / "w4-folder"
    for i in range(20):
        (folder / f"f{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.txt").write_text(str(i))
    subprocess.run([sys.executable, "-m", "s3bp", "map", str(folder), b.bucket], check=True, capture_output=True, env=_env())
    for name, args in (
        ("s3bp config", ["config"]), ("s3bp status", ["status"]), ("s3bp where FILE", ["where", str(folder / "f1.txt")]),
        ("s3bp ls DIR", ["ls", str(folder)]),
    ):
        cli, loaded = [], ""
        for _ in range(reps):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "s3bp", *args], check=True, capture_output=True, env=_env())
            cli.append(time.perf_counter() - t)
        probe = f"import runpy, sys; sys.argv = ['s3bp', *{args!r}]\ntry: runpy.run_module('s3bp', run_name='__main__')\nexcept SystemExit: pass\n"
        probe += "print(' '.join(m for m in ('boto3', 'botocore', 'pandas') if m in sys.modules), file=sys.stderr)"
        loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=_env()).stderr.strip().splitlines()
        note = f"imports {loaded[-1]}" if loaded and loaded[-1] else "imports neither boto3 nor pandas"
        add("W4", f"{name}: over the bare interpreter", ms(median(cli) - bare), 60.0, " ms", f"goal <= 60 ms; {note}")
    # ls DIR must list S3: what that costs at the least, as a new process
    listing = timed(f"import boto3; boto3.client('s3', endpoint_url={b.endpoint!r}).list_objects_v2(Bucket={b.bucket!r}, Prefix='w4-folder/')")
    add("W4", "  floor of ls DIR: import boto3, a client, one LIST; over the bare interpreter", ms(listing - bare), None, " ms")


def _env() -> dict[str, str]:
    """The environment for timed subprocesses: with bytecode (an installed package has it), cached outside the tree."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "s3bp-bench-pycache")
    return env


# -- W5 load after save -----------------------------------------------------------


def w5(b: Bench, reps: int = 50) -> None:
    print("W5 load after save", flush=True)
    store = b.store("w5")
    sent = count_requests(store.client())
    obj = {f"k{i}": i for i in range(700)}
    loads_waited, loads_pending, bodies = [], [], 0
    for i in range(reps):
        path = b.root / "w5-data" / f"x{i}.pkl"
        store.save_object(obj, path, b.bucket)
        sent.clear()
        t = time.perf_counter()
        store.load_object(path, b.bucket)
        loads_pending.append(time.perf_counter() - t)
        bodies += sent.count("GET")
        store.flush()
        sent.clear()
        t = time.perf_counter()
        store.load_object(path, b.bucket)
        loads_waited.append(time.perf_counter() - t)
        assert sent == ["GET"], sent
    add("W5", "requests: load while the upload is pending", 0.0 if not bodies else bodies / reps, None)
    add("W5", "load after a background save, median ms", ms(median(loads_pending)), None, " ms")
    add("W5", "load after the upload finished, median ms", ms(median(loads_waited)), None, " ms", "1 GET answered 304: no body")
    store.close()


# -- W6 scaling ---------------------------------------------------------------------


def w6(b: Bench, sizes: list[int], loads: int = 300) -> None:
    print("W6 scaling", flush=True)
    per_save, per_load, first = {}, {}, []
    for n in sizes:
        base = b.root / f"w6-{n}"
        mappings = {str(base / f"mapped{j}"): b.bucket for j in range(100)}
        store = b.store(f"w6-{n}", base_dir_to_bucket_map=mappings)
        store.client().head_bucket(Bucket=b.bucket)
        # One save and flush first: it starts the child uploader, a fixed cost per process measured on its own below.
        t = time.perf_counter()
        store.save_object({"warm": n}, base / "warm.pkl", b.bucket)
        store.flush()
        first.append(time.perf_counter() - t)
        folder = base / "mapped7"
        total, _ = _saves(b, store, n, folder, lambda i: {"i": i, "pad": "x" * 9000})
        per_save[n] = total / n
        rng = random.Random(n)
        times = []
        for _ in range(loads):
            i = rng.randrange(n)
            t = time.perf_counter()
            store.load_object(folder / f"o{i}.pkl")
            times.append(time.perf_counter() - t)
        per_load[n] = median(times)
        store.close()
        add("W6", f"{n:>6} objects, 100 mappings: per save (ms)", ms(per_save[n]), None, " ms")
        add("W6", f"{n:>6} objects, 100 mappings: per warm load (ms)", ms(per_load[n]), None, " ms")
    lo, hi = sizes[0], sizes[-1]
    add("W6", f"per save at {hi} / at {lo}", per_save[hi] / per_save[lo], None, "x")
    add("W6", f"per warm load at {hi} / at {lo}", per_load[hi] / per_load[lo], None, "x")
    add("W6", "first background save + flush of a store (starts the child uploader), median", median(first), None, " s")


# -- W7 unchanged folders ----------------------------------------------------------------


def w7(b: Bench, small: int, large: int, reps: int = 5) -> None:
    """A push of an unchanged folder (a new process, and through the API at ``large`` files) and a pull of one."""
    print("W7 unchanged folders", flush=True)
    from server import counts

    import s3bp

    folder = b.root / "w7-small"
    for i in range(small):
        (folder / f"d{i // 100}").mkdir(parents=True, exist_ok=True)
        (folder / f"d{i // 100}" / f"f{i}.bin").write_bytes(os.urandom(100))
    s3bp.map_base_directory_to_bucket(folder, b.bucket)
    s3bp.set_default_store(None)
    assert s3bp.push(folder, progress=False).ok
    s3bp.set_default_store(None)
    bare = median([_run([sys.executable, "-c", "pass"]) for _ in range(reps)])
    counts(b.endpoint)
    push = median([_run([sys.executable, "-m", "s3bp", "push", str(folder), "--no-progress"]) for _ in range(reps)])
    sent = counts(b.endpoint)
    add("W7", f"s3bp push, {small:,} unchanged files, new process", push, 0.35, " s", f"goal <= 0.35 s; bare interpreter {ms(bare):.0f} ms")
    add("W7", f"  requests per push of {small:,} unchanged files", sum(sent.values()) / reps, 0.0, "", "goal: 0")
    counts(b.endpoint)
    pull = median([_run([sys.executable, "-m", "s3bp", "pull", str(folder), "--no-progress"]) for _ in range(reps)])
    sent = counts(b.endpoint)
    add("W7", f"s3bp pull, {small:,} unchanged files, new process", pull, None, " s")
    per_pull = ", ".join(f"{v / reps:g} {k}" for k, v in sent.items())
    add("W7", f"  requests per pull of {small:,} unchanged files", per_pull, None, "", "goal: 1 LIST per 1,000")
    # large: the sync records a push would have left, written directly (uploading 100,000 objects to moto takes long)
    big = b.root / "w7-large"
    store = b.store("w7-large-store")  # its config and state outside the folder pushed
    store.map_base_directory_to_bucket(big, b.bucket)
    from s3bp.freshness import SyncRecord

    records = []
    endpoint = store._endpoint(store.settings())
    for i in range(large):
        path = big / f"d{i // 1000:03d}" / f"f{i:06d}.bin"
        if i % 1000 == 0:
            path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        st = path.stat()
        key = f"{big.name}/{path.parent.name}/{path.name}"
        records.append(SyncRecord(str(path), endpoint, b.bucket, key, '"0"', st.st_size, st.st_mtime_ns, time.time()))
    store._index().put_records(records)
    store.close()
    times = []
    for _ in range(3):
        store = b.store("w7-large-store")
        t = time.perf_counter()
        report = store.push(big, progress=False)
        times.append(time.perf_counter() - t)
        assert report.unchanged == large and not report.listed, report.summary()
        store.close()
    add("W7", f"push of {large:,} unchanged files (API, fresh store)", median(times), 3.0, " s", "goal <= 3 s")
    env = dict(_env(), S3BP_CONFIG=str(b.root / "w7-large-store" / "config.yml"), S3BP_STATE_DIR=str(b.root / "w7-large-store" / "state"))
    counts(b.endpoint)
    cli = median([_run([sys.executable, "-m", "s3bp", "push", str(big), "--no-progress"], env) for _ in range(3)])
    sent = counts(b.endpoint)
    add("W7", f"s3bp push, {large:,} unchanged files, new process", cli, 3.0, " s", f"goal <= 3 s; {sum(sent.values())} requests in 3 pushes")


def _run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env or _env())
    return time.perf_counter() - t


# -- main -----------------------------------------------------------------------------


def start(stack: contextlib.ExitStack, endpoint: str | None, root: Path) -> Bench:
    """Isolate settings under ``root``, start moto under waitress unless ``endpoint`` is given, make the bench."""
    for var, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"), ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(var, value)
    os.environ.update(HOME=str(root / "home"), S3BP_CONFIG=str(root / "config.yml"), S3BP_STATE_DIR=str(root / "state"))
    if endpoint is None:
        from server import Server

        endpoint = stack.enter_context(Server())
    return Bench(endpoint, root)


def table() -> str:
    head = "| workload | metric | s3bp | floor | s3bp / floor | note |\n|---|---|---|---|---|---|\n"
    return head + "\n".join("| " + " | ".join(r) + " |" for r in ROWS)


def machine() -> str:
    import boto3
    import botocore

    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, boto3 {boto3.__version__}, "
        f"botocore {botocore.__version__}, {platform.system()} {platform.machine()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint-url", help="use this S3 server instead of starting moto under waitress")
    parser.add_argument("--only", default="W1,W2,W3,W4,W5,W6,W7", help="comma-separated workloads")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--out", help="also write the markdown table to this file")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    only = {w.strip().upper() for w in args.only.split(",")}
    root = Path(tempfile.mkdtemp(prefix="s3bp-bench-"))
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            b = start(stack, args.endpoint_url, root)
            q = args.quick
            if "W1" in only:
                w1(b, 100 if q else 300)
            if "W2" in only:
                w2(b, 32 if q else 256, 200_000 if q else 2_000_000, 1 if q else 3)
            if "W3" in only:
                w3(b, 100 if q else 500)
            if "W4" in only:
                w4(b, 3 if q else 10)
            if "W5" in only:
                w5(b, 10 if q else 50)
            if "W6" in only:
                w6(b, [10, 100, 1000] if q else [10, 100, 1000, 10000])
            if "W7" in only:
                w7(b, 1000, 10_000 if q else 100_000)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    server = args.endpoint_url or "moto under waitress"
    text = f"{time.strftime('%Y-%m-%d')}, {machine()}, endpoint: {server}\n\n{table()}\n"
    print("\n" + text)
    print(f"(ran in {time.perf_counter() - started:.0f} s)")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
