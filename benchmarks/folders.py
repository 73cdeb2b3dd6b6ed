"""Folders: ``s3bp push``/``pull`` beside rclone and ``aws s3 sync``, each a new process per command, on one server.

    python benchmarks/folders.py                            # 1,000 x 10 KB and 20 x 50 MB, 3 rounds
    python benchmarks/folders.py --sets small --rounds 1    # a quick look
    python benchmarks/folders.py --aws ~/.venvs/awscli/bin/aws

Five phases per tool, in this order: first push of a fresh tree into a fresh
prefix; push again with nothing changed; push after one file changed; pull
into an empty folder; pull again with nothing changed. Each command is a new
process with the tool's defaults (s3bp: ``python -m s3bp push|pull``;
rclone: ``rclone copy``; aws: ``aws s3 sync``). The tools run interleaved
(phase by phase, tool after tool) against the same moto-under-waitress
server; the table gives medians. Request counts per phase come from the
server's own counter (benchmarks/server.py), in a separate pass after the
timed rounds. The last column is s3bp's own CPU time (user + system of its
process, median): on a shared machine it moves less than the wall time, and
every CPU-second s3bp spends is one the server (on the same cores) cannot use.
Before each command the disk is synced, so that no tool pays for the writes
of the one before it (a pull writes 1,000 files).

Beside them runs a floor, not a peer: ``benchmarks/boto3_folder.py``, boto3
alone on 8 threads (one ``put_object`` or ``get_object`` per file, no sync
records, no snapshots, no checks of its own). It has no sync logic, so it
moves every file in every phase: compare it on the first push and the first
pull, where it is the least a Python tool built on boto3 costs against this
server on this machine (``--no-floor`` leaves it out).

A missing tool is skipped with a line saying how to install it: rclone from
the OS (``apt-get install -y rclone``), awscli with pip into its own venv
(``python -m venv ~/.venvs/awscli && ~/.venvs/awscli/bin/pip install
awscli``), since it pins its own botocore.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import machine, start  # noqa: E402
from server import counts  # noqa: E402

PHASES = ("first push", "push again, nothing changed", "one file changed, push", "pull into an empty folder", "pull again, nothing changed")
SETS = {"small": (1000, 10_000), "large": (20, 50_000_000)}


def make_tree(root: Path, files: int, size: int) -> None:
    """``files`` files of ``size`` random bytes, 50 to a sub-folder."""
    for i in range(files):
        path = root / f"part-{i // 50:03d}" / f"file-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            left = size
            while left:
                chunk = min(left, 1 << 24)
                out.write(os.urandom(chunk))
                left -= chunk


class Tool:
    """One tool's push and pull commands between a local folder and ``bucket/<folder name>/``."""

    name = ""
    cpu = 0.0  #: the CPU time (user + system) of the last command run

    def __init__(self, endpoint: str, bucket: str, env: dict[str, str]):
        self.endpoint, self.bucket, self.env = endpoint, bucket, env

    def push(self, local: Path) -> list[str]:
        raise NotImplementedError

    def pull(self, local: Path) -> list[str]:
        raise NotImplementedError

    def prepare(self, local: Path) -> None:
        """Anything the tool needs before a folder is used (s3bp: the mapping)."""

    def run(self, cmd: list[str]) -> float:
        """Run ``cmd``; its wall time (its CPU time goes to :attr:`cpu`)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        res = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if res.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-2000:]}")
        return seconds


class S3bp(Tool):
    name = "s3bp"

    def prepare(self, local: Path) -> None:
        subprocess.run([sys.executable, "-m", "s3bp", "map", str(local), self.bucket], env=self.env, check=True, capture_output=True)

    def push(self, local: Path) -> list[str]:
        return [sys.executable, "-m", "s3bp", "push", str(local), "--no-progress"]

    def pull(self, local: Path) -> list[str]:
        return [sys.executable, "-m", "s3bp", "pull", str(local), "--no-progress"]


class Rclone(Tool):
    name = "rclone"
    install = "apt-get install -y rclone"

    def __init__(self, endpoint: str, bucket: str, env: dict[str, str]):
        super().__init__(endpoint, bucket, env)
        conf = {"TYPE": "s3", "PROVIDER": "Other", "ENDPOINT": endpoint, "REGION": "us-east-1", "FORCE_PATH_STYLE": "true"}
        conf.update(ACCESS_KEY_ID=env["AWS_ACCESS_KEY_ID"], SECRET_ACCESS_KEY=env["AWS_SECRET_ACCESS_KEY"])
        plain = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}  # rclone's S3 transport refuses a custom CA bundle
        self.env = {**plain, **{f"RCLONE_CONFIG_BENCH_{k}": v for k, v in conf.items()}}

    def push(self, local: Path) -> list[str]:
        return ["rclone", "copy", str(local), f"bench:{self.bucket}/{local.name}"]

    def pull(self, local: Path) -> list[str]:
        return ["rclone", "copy", f"bench:{self.bucket}/{local.name}", str(local)]


class Aws(Tool):
    name = "aws s3 sync"
    install = "python -m venv ~/.venvs/awscli && ~/.venvs/awscli/bin/pip install awscli, then --aws ~/.venvs/awscli/bin/aws"
    exe = "aws"

    def push(self, local: Path) -> list[str]:
        return [self.exe, "s3", "sync", str(local), f"s3://{self.bucket}/{local.name}", "--endpoint-url", self.endpoint, "--only-show-errors"]

    def pull(self, local: Path) -> list[str]:
        return [self.exe, "s3", "sync", f"s3://{self.bucket}/{local.name}", str(local), "--endpoint-url", self.endpoint, "--only-show-errors"]


class Boto3(Tool):
    """The floor: boto3 alone, 8 threads, no bookkeeping (benchmarks/boto3_folder.py); not a peer, a reference."""

    name = "boto3 floor"
    script = str(Path(__file__).resolve().parent / "boto3_folder.py")

    def push(self, local: Path) -> list[str]:
        return [sys.executable, self.script, "push", str(local), self.bucket, local.name, self.endpoint]

    def pull(self, local: Path) -> list[str]:
        return [sys.executable, self.script, "pull", str(local), self.bucket, local.name, self.endpoint]


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


def one_round(tools: list[Tool], root: Path, master: Path, tag: str, counted: bool) -> dict[tuple[str, str], object]:
    """Every phase for every tool (interleaved); seconds, or the server's request counts when ``counted``."""
    out: dict[tuple[str, str], object] = {}
    dirs = {}
    for tool in tools:
        name = f"{tag}-{tool.name.split()[0]}"
        src, dst = root / "src" / tool.name.split()[0] / name, root / "dst" / tool.name.split()[0] / name
        shutil.copytree(master, src)
        tool.prepare(src)
        tool.prepare(dst)
        dirs[tool.name] = (src, dst)
    for phase in PHASES:
        for tool in tools:
            src, dst = dirs[tool.name]
            if phase == "one file changed, push":
                victim = next(p for p in sorted(src.rglob("*.bin")))
                with open(victim, "r+b") as fh:
                    fh.write(os.urandom(64))
                os.utime(victim, (time.time() + 5, time.time() + 5))
            if phase.startswith("pull into"):
                dst.mkdir(parents=True, exist_ok=True)
            cmd = tool.pull(dst) if phase.startswith("pull") else tool.push(src)
            if counted:
                counts(tool.endpoint)
            os.sync()  # each command starts on a settled disk, not paying for the writes of the one before
            seconds = tool.run(cmd)
            out[(phase, tool.name)] = counts(tool.endpoint) if counted else seconds
            if not counted:
                out[(phase, tool.name + " cpu")] = tool.cpu
        if phase.startswith("pull into"):
            for tool in tools:
                src, dst = dirs[tool.name]
                got = sum(1 for p in dst.rglob("*.bin"))
                want = sum(1 for p in src.rglob("*.bin"))
                assert got == want, (tool.name, got, want)
    for tool in tools:
        for d in dirs[tool.name]:
            shutil.rmtree(d, ignore_errors=True)
    return out


def clear_bucket(raw, bucket: str) -> None:
    """Delete every object (moto keeps them in memory)."""
    for page in raw.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            raw.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def describe(c: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(c.items())) if c else "0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="small,large", help="comma-separated: small (1,000 x 10 KB), large (20 x 50 MB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--aws", default=shutil.which("aws"), help="the aws executable (default: the one on PATH)")
    parser.add_argument("--no-count", action="store_true", help="skip the request-counting pass")
    parser.add_argument("--no-floor", action="store_true", help="skip the boto3 floor (boto3 alone, no bookkeeping)")
    parser.add_argument("--out")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="s3bp-folders-"))
    text = [f"{time.strftime('%Y-%m-%d')}, {machine()}, each tool a new process per command, median of {args.rounds}"]
    try:
        with contextlib.ExitStack() as stack:
            b = start(stack, None, root)
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # installed tools have bytecode
            env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
            tools: list[Tool] = [S3bp(b.endpoint, b.bucket, env)]
            if shutil.which("rclone"):
                tools.append(Rclone(b.endpoint, b.bucket, env))
                text.append(f"rclone: {version(['rclone', 'version'])}")
            else:
                print(f"rclone not found: skipped (install it with `{Rclone.install}`)")
            if args.aws and os.path.exists(args.aws):
                Aws.exe = args.aws
                tools.append(Aws(b.endpoint, b.bucket, env))
                text.append(f"aws: {version([args.aws, '--version'])}")
            else:
                print(f"aws not found: skipped (install it with `{Aws.install}`)")
            if not args.no_floor:
                tools.append(Boto3(b.endpoint, b.bucket, env))
            subprocess.run([sys.executable, "-m", "s3bp", "config"], env=env, capture_output=True)  # write s3bp's bytecode
            for set_name in args.sets.split(","):
                files, size = SETS[set_name]
                master = root / "master" / set_name
                make_tree(master, files, size)
                times: dict[tuple[str, str], list[float]] = {}
                for r in range(args.rounds):
                    print(f"{set_name} round {r + 1}", flush=True)
                    for key, seconds in one_round(tools, root, master, f"{set_name}{r}", False).items():
                        times.setdefault(key, []).append(seconds)  # type: ignore[arg-type]
                    clear_bucket(b.raw, b.bucket)
                requests = {} if args.no_count else one_round(tools, root, master, f"{set_name}-count", True)
                clear_bucket(b.raw, b.bucket)
                shutil.rmtree(master)
                names = [t.name for t in tools]
                head = f"\n{files:,} files x {size:,} B\n\n| phase | " + " | ".join(names) + " | s3bp / best peer | s3bp / floor | s3bp CPU |\n"
                head += "|---" * (len(names) + 4) + "|\n"
                rows = []
                for phase in PHASES:
                    med = {n: statistics.median(times[(phase, n)]) for n in names}
                    others = [med[n] for n in names if n not in ("s3bp", Boto3.name)]
                    ratio = f"{med['s3bp'] / min(others):.2f}x" if others else ""
                    floor = f"{med['s3bp'] / med[Boto3.name]:.2f}x" if Boto3.name in med else ""
                    cpu = statistics.median(times[(phase, "s3bp cpu")])
                    rows.append(f"| {phase} | " + " | ".join(f"{med[n]:.2f} s" for n in names) + f" | {ratio} | {floor} | {cpu:.2f} s |")
                if requests:
                    rows.append("")
                    rows.append("| requests | " + " | ".join(names) + " |")
                    rows.append("|---" * (len(names) + 1) + "|")
                    for phase in PHASES:
                        rows.append(f"| {phase} | " + " | ".join(describe(requests[(phase, n)]) for n in names) + " |")  # type: ignore[arg-type]
                text.append(head + "\n".join(rows))
                print(text[-1], flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = "\n".join(text) + "\n"
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
