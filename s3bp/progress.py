"""Progress bars (tqdm) for folder operations and large downloads: shown on a terminal or in a notebook only."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


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
    done = [0]
    lock = threading.Lock()
    with _tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc) as shown:

        def tick(n: int) -> None:
            with lock:
                if files:
                    done[0] += 1
                    shown.set_postfix_str(f"{done[0]}/{files} files", refresh=False)
                shown.update(n)

        yield tick


@contextlib.contextmanager
def _tqdm(**options: Any) -> Iterator[Any]:
    """A widget bar in a notebook kernel with ipywidgets, else a text bar on stderr (never tqdm's IProgress warning).

    A widget's saved text (what a notebook shows without its widget state) is
    taken when it is displayed; it is displayed again when the bar closes, so
    the saved notebook shows the final count rather than 0%.
    """
    widgets = _widgets()
    if widgets is None:
        from tqdm.std import tqdm

        with tqdm(file=sys.stderr, **options) as shown:
            yield shown
        return
    from IPython.display import display
    from tqdm.notebook import tqdm as notebook_tqdm

    shown = notebook_tqdm(display=False, **options)
    handle = display(shown.container, display_id=True)
    try:
        yield shown
    finally:
        shown.close()
        if handle is not None:
            handle.update(shown.container)


def _widgets() -> Any:
    """ipywidgets when this is a notebook kernel that has it, else None."""
    if not in_kernel():
        return None
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def human_bytes(n: float) -> str:
    """A byte count for people, in powers of 1024 (``512 B``, ``1.5 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
