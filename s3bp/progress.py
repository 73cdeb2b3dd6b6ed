"""Progress bars (tqdm) for folder operations and large downloads: shown on a terminal or in a notebook only."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator


def wanted(flag: bool | None) -> bool:
    """Whether to show progress: ``flag`` if given, else only when stderr is a terminal or in a notebook."""
    if flag is not None:
        return flag
    return sys.stderr.isatty() or in_kernel()


def in_kernel() -> bool:
    """Whether this interpreter runs a notebook kernel (an IPython shell with a kernel), not just has ipykernel imported."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


@contextlib.contextmanager
def bar(flag: bool | None, total: int, files: int, desc: str) -> Iterator[Callable[[int], None]]:
    """A thread-safe byte counter: ``tick(n)`` after each of ``files`` files, or after each chunk of one transfer (``files=0``)."""
    if not wanted(flag) or not total and not files:
        yield lambda n: None
        return
    from tqdm.auto import tqdm

    done = [0]
    lock = threading.Lock()
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr, disable=False) as shown:

        def tick(n: int) -> None:
            with lock:
                if files:
                    done[0] += 1
                    shown.set_postfix_str(f"{done[0]}/{files} files", refresh=False)
                shown.update(n)

        yield tick

