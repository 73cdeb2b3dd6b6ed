"""CPU and wall time of ``s3bp pull`` into an empty folder, for several versions of s3bp in one run.

    python benchmarks/pull_cpu.py main .                   # 20 x 50 MB, 6 rounds: main against the work tree
    python benchmarks/pull_cpu.py --set small --rounds 3 v0.2 HEAD

Each version (a git ref, or ``.`` for the files as they are) is exported to a
temp dir and run as a new process, ``python -m s3bp pull DIR --no-progress``,
from a temp dir (``python -m`` puts the working directory first on
``sys.path``). The versions take turns, in alternating order, on one tree
pushed once to one moto-under-waitress server. CPU is user + system of the
pull process (``getrusage(RUSAGE_CHILDREN)``); request counts come from the
server's own counter.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from folders import SETS, make_tree  # noqa: E402
from run import machine, start  # noqa: E402
from server import counts  # noqa: E402


def export(ref: str, into: Path) -> Path:
    """The ``s3bp`` package of git ref ``ref`` (``.``: the work tree) under ``into``; returns the dir to put on PYTHONPATH."""
    repo = HERE.parent
    if ref == ".":
        return repo
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref, "s3bp"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("refs", nargs="+", help="git refs to compare ('.': the work tree)")
    parser.add_argument("--set", default="large", choices=sorted(SETS))
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="s3bp-pullcpu-"))
    trees = {ref: str(export(ref, root / "code" / str(i))) for i, ref in enumerate(args.refs)}
    results: dict[str, list[tuple[float, float]]] = {ref: [] for ref in trees}
    requests: dict[str, dict[str, int]] = {}
    try:
        with contextlib.ExitStack() as stack:
            bench = start(stack, None, root)
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
            env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")

            def s3bp(ref: str, *argv: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    [sys.executable, "-m", "s3bp", *argv], env={**env, "PYTHONPATH": trees[ref]}, cwd=root, capture_output=True, text=True
                )

            files, size = SETS[args.set]
            src = root / "src" / "tree"
            make_tree(src, files, size)
            first = args.refs[0]
            s3bp(first, "map", str(src), bench.bucket)
            pushed = s3bp(first, "push", str(src), "--no-progress")
            if pushed.returncode:
                print(pushed.stderr, file=sys.stderr)
                return 1
            print(f"{machine()}; {files} x {size:,} bytes", flush=True)
            for i in range(args.rounds):
                for ref in trees if i % 2 == 0 else reversed(list(trees)):
                    dst = root / f"dst-{i}-{args.refs.index(ref)}" / "tree"
                    dst.mkdir(parents=True)
                    s3bp(ref, "map", str(dst), bench.bucket)
                    counts(bench.endpoint)  # start counting afresh
                    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                    done = s3bp(ref, "pull", str(dst), "--no-progress")
                    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
                    if done.returncode:
                        print(done.stderr, file=sys.stderr)
                        return 1
                    requests[ref] = counts(bench.endpoint)
                    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                    results[ref].append((wall, cpu))
                    print(f"round {i} {ref:>12}: wall {wall:.2f} s, cpu {cpu:.2f} s", flush=True)
                    shutil.rmtree(dst.parent)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n| version | wall (median) | CPU user+sys (median) | requests |\n|---|---|---|---|")
    for ref, runs in results.items():
        wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"| {ref} | {wall:.2f} s | {cpu:.2f} s | {', '.join(f'{k} {v}' for k, v in sorted(requests[ref].items()))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
