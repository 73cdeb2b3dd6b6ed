"""The background uploader (``python -m s3bp.uploader``): finishes the uploads a process handed over.

Started detached by :func:`s3bp.handoff.spawn`. It waits for the process
that handed over to exit, takes over its journal entries through the owner
locks, uploads them with the usual retries and exits when nothing it can
deliver is left. One works per state directory at a time; a second one waits
for the first, then finds the work done.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .handoff import LOCK, PID, WAIT_FOR_EXIT
from .locks import FileLock, open_own


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the uploader (``python -m s3bp.uploader``); its exit code."""
    parser = argparse.ArgumentParser(prog="python -m s3bp.uploader", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--after-pid", type=int, default=None, help="wait for this process to exit first")
    parser.add_argument("--serve", metavar="TOKEN", help="upload the journal entries named on stdin, holding claim TOKEN")
    parser.add_argument("--owner-fd", type=int, help="with --serve: the open lock file of the claim")
    parser.add_argument("--workers", type=int, default=8, help="with --serve: upload threads")
    parser.add_argument("--overrides", default="{}", help="with --serve: settings that win over the config file's (JSON)")
    args = parser.parse_args(argv)
    if args.serve:
        import json

        from .offload import serve

        return serve(config=args.config, overrides=json.loads(args.overrides), state_dir=args.state_dir, token=args.serve,
                     fd=args.owner_fd, workers=args.workers)  # fmt: skip
    state = Path(args.state_dir)
    deadline = time.monotonic() + WAIT_FOR_EXIT
    while args.after_pid and _alive(args.after_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with FileLock(state / LOCK):  # one uploader at a time: a second one waits, then finds the work done
        fd = open_own(state / PID, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "w") as pidfile:
            pidfile.write(str(os.getpid()))
        from .core import Store

        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with Store(config=args.config, state_dir=state) as store:
            delivered = store.deliver_orphans()
        print(f"{stamp} s3bp uploader (pid {os.getpid()}): {delivered} upload(s) taken over and finished or kept journaled", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
