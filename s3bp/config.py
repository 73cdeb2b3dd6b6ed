"""The persisted configuration (YAML) and where s3bp keeps its state.

Settings resolve as explicit argument > environment variable > default.
The file is read again only when its stat changes, and written atomically
(temp file + rename) under a file lock, so concurrent edits are not lost.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import stat
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import paths
from .errors import ConfigError, InvalidPathError, S3bpError

logger = logging.getLogger("s3bp")

DEFAULTS: dict[str, Any] = {
    "default_bucket": None,
    "base_dir_to_bucket_map": {},
    "max_workers": 8,
    "endpoint_url": None,
    "profile": None,
    "region": None,
    "max_age": 0,
    "max_attempts": 5,
    "retry_mode": "standard",
    "conflict": "raise",
    "offline": "warn",
    "connect_timeout": 5,
    "read_timeout": 60,
    "upload_args": {},
    "on_exit": "auto",
    "exit_grace": 1.0,
    "record_origin": False,
    "cache_max_size": None,
    "cache_max_age": None,
    "upload_process": True,
}
_OPTIONAL_STR = ("default_bucket", "endpoint_url", "profile", "region")
_RETRY_MODES = ("standard", "adaptive", "legacy")
_ENDPOINT = re.compile(r"https?://[^\s/?#]+(/[^\s]*)?", re.IGNORECASE)  # a scheme botocore can talk to, and a host
_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")  # botocore's own rule for region names


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The config file: ``$S3BP_CONFIG``, else under ``$XDG_CONFIG_HOME`` or ``~/.config``."""
    if environ.get("S3BP_CONFIG"):
        return Path(environ["S3BP_CONFIG"]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(_home(environ), ".config")
    return Path(base) / "s3bp" / "config.yml"


def state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The state directory: ``$S3BP_STATE_DIR``, else under ``$XDG_STATE_HOME`` or ``~/.local/state``."""
    if environ.get("S3BP_STATE_DIR"):
        return Path(environ["S3BP_STATE_DIR"]).expanduser()
    base = environ.get("XDG_STATE_HOME") or os.path.join(_home(environ), ".local", "state")
    return Path(base) / "s3bp"


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$S3BP_CACHE_DIR``, else ``$XDG_CACHE_HOME/s3bp``, else ``~/.cache/s3bp``."""
    env = os.environ if environ is None else environ
    if env.get("S3BP_CACHE_DIR"):
        return Path(env["S3BP_CACHE_DIR"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "s3bp"
    return Path("~/.cache/s3bp").expanduser()


def _home(environ: Mapping[str, str]) -> str:
    """The home directory as ``environ`` sees it."""
    return environ.get("HOME") or os.path.expanduser("~")


def validate(data: Any, source: str) -> dict[str, Any]:
    """Check a parsed config document and fill in defaults.

    Parameters
    ----------
    data
        The parsed YAML (None for an empty file).
    source
        The file name, used in error messages.

    Returns
    -------
    dict
        Every key of :data:`DEFAULTS`, with the file's values where set.

    Raises
    ------
    ConfigError
        Naming the file and the field, for any wrong type or value.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping, found {type(data).__name__}. Fix or remove the file.")
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for field, value in data.items():
        if field not in DEFAULTS:
            raise ConfigError(f"{source}: unknown field {field!r}; known fields are {', '.join(DEFAULTS)}.")
        out[field] = _check_field(field, value, source)
    return out


_CHOICES = {"conflict": ("raise", "overwrite"), "offline": ("warn", "error"), "on_exit": ("auto", "wait", "handoff")}


def _check_field(field: str, value: Any, source: str, fix: str = " Fix the file.") -> Any:
    """Return ``value`` if it is right for ``field``, else raise :class:`ConfigError`."""

    def wrong(expected: str) -> ConfigError:
        where = f"{source}: field" if source else "setting"
        return ConfigError(f"{where} {field!r} must be {expected}, found {value!r}.{fix}")

    if field in _OPTIONAL_STR:
        if value is not None and (not isinstance(value, str) or not value):
            raise wrong("a non-empty string or null")
        if field == "endpoint_url" and value is not None and not _ENDPOINT.fullmatch(value):
            raise wrong("an http:// or https:// URL such as http://localhost:9000")
        if field == "region" and value is not None and not _REGION.fullmatch(value):
            raise wrong("a region name such as eu-west-1 (letters, digits and hyphens)")
        return value
    if field == "base_dir_to_bucket_map":
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()):
            raise wrong("a mapping of directory to bucket name")
        return dict(value)
    if field in ("max_workers", "max_attempts"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise wrong("a whole number of at least 1")
        return value
    if field in ("max_age", "exit_grace"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise wrong("a number of seconds, 0 or more")
        return value
    if field in _CHOICES:
        if value not in _CHOICES[field]:
            raise wrong("one of " + ", ".join(_CHOICES[field]))
        return value
    if field in ("connect_timeout", "read_timeout"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise wrong("a number of seconds above 0")
        return value
    if field == "upload_args":
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise wrong("a mapping of upload argument name (e.g. ServerSideEncryption) to value")
        return dict(value)
    if field in ("record_origin", "upload_process"):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if field in _PARSERS:
        if value is None:
            return None
        try:
            _PARSERS[field](value)
        except ValueError as exc:
            raise wrong(str(exc)) from None
        return value
    if field == "retry_mode":
        if value not in _RETRY_MODES:
            raise wrong("one of " + ", ".join(_RETRY_MODES))
        return value
    raise AssertionError(field)  # pragma: no cover - DEFAULTS and the checks agree


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4,
               "tb": 1000**4, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}  # fmt: skip
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


def parse_size(value: Any) -> int:
    """A size in bytes from a number or a string such as ``"20GB"`` (10**9), ``"500MiB"`` (2**20) or ``"1.5 TB"``.

    Raises
    ------
    ValueError
        Saying what is accepted.
    """
    return int(_amount(value, _SIZE_UNITS, "a size in bytes such as 20GB, 500MiB or 1000000"))


def parse_age(value: Any) -> float:
    """A duration in seconds from a number or a string such as ``"30d"``, ``"12h"``, ``"90min"``, ``"45s"`` or ``"2w"``.

    Raises
    ------
    ValueError
        Saying what is accepted.
    """
    return _amount(value, _AGE_UNITS, "a duration such as 30d, 12h, 90min, 45s, 2w or a number of seconds")


def _amount(value: Any, units: Mapping[str, int], expected: str) -> float:
    """A non-negative number, or a number and one of ``units`` (case-insensitive), times the unit."""
    if isinstance(value, bool):
        raise ValueError(expected)
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(_float(value, expected)):
            raise ValueError(expected)
        return value
    found = _AMOUNT.fullmatch(value) if isinstance(value, str) else None
    if found is None or found.group(2).lower() not in units:
        raise ValueError(expected)
    amount = float(found.group(1)) * units[found.group(2).lower()]
    if not math.isfinite(amount):
        raise ValueError(expected)
    return amount


def _float(value: float, expected: str) -> float:
    """``value`` as a float; :class:`ValueError` saying what is expected when it is too large for one."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(expected) from None


_PARSERS: dict[str, Callable[[Any], float]] = {"cache_max_size": parse_size, "cache_max_age": parse_age}


class ConfigFile:
    """The YAML config file, cached until its stat changes.

    Parameters
    ----------
    path
        The file; None means :func:`config_path` of the environment (and, when
        that file does not exist yet, a 0.1.x config found beside the installed
        package is imported into it once: see :func:`import_legacy`).
    overrides
        Settings that win over the file's for this object's lifetime and are
        never written (the ``s3bp`` command's ``--endpoint-url``, ``--profile``
        and ``--region``); checked like the file's.
    memo
        A file (in the state directory) where the parsed text of the config is
        remembered as JSON, so that a new process reading the same text needs
        no YAML parser (importing one costs more than a short command's work);
        None: parse every time.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None, *,
        memo: str | os.PathLike[str] | None = None,
    ):  # fmt: skip
        # absolute now: a later chdir (of this process, or the child uploader started from another directory) reads the same file
        self.path = Path(os.path.abspath(path if path is not None else config_path()))
        self._memo = None if memo is None else Path(memo)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._data: dict[str, Any] = validate({}, str(self.path))
        self._overrides = {k: check_setting(k, v) for k, v in (overrides or {}).items()}
        self._merged: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._legacy_pending = path is None

    def read(self) -> dict[str, Any]:
        """Return the current settings (the file's, with the overrides); re-parse only if the file changed.

        The same dict is returned until the file changes, so callers can
        cache what they derive from it; do not modify it.
        """
        data = self._read_file()
        if not self._overrides:
            return data
        with self._lock:
            if self._merged is None or self._merged[0] is not data:
                self._merged = (data, {**data, **self._overrides})
            return self._merged[1]

    @property
    def overrides(self) -> dict[str, Any]:
        """The settings given to override the file's (a copy)."""
        return dict(self._overrides)

    def _read_file(self) -> dict[str, Any]:
        """The file's settings, re-parsed only if its stat changed."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except (FileNotFoundError, NotADirectoryError):
            stamp = None
            if self._legacy_pending:
                self._legacy_pending = False
                _import_found_legacy(self)
                return self._read_file()
        with self._lock:
            if stamp != self._stamp:
                self._data = self._load() if stamp is not None else validate({}, str(self.path))
                self._stamp = stamp
            return self._data

    def _load(self) -> dict[str, Any]:
        """Parse and validate the file (taking the parse from the memo file when it holds this very text)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return validate({}, str(self.path))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read the config file ({exc}).") from exc
        known = recalled(self._memo, text) if self._memo is not None else _UNKNOWN
        if known is not _UNKNOWN:
            return validate(known, str(self.path))
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path}: not valid YAML ({exc}). Fix or remove the file; s3bp will not overwrite it.") from exc
        if self._memo is not None:
            remember(self._memo, text, data)
        return validate(data, str(self.path))

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` to the settings under the file lock and write them atomically.

        Parameters
        ----------
        change
            Called with a fresh copy of the settings; edits it in place.

        Returns
        -------
        dict
            The settings as written.
        """
        import tempfile

        import yaml

        from .locks import FileLock

        try:
            _make_private_dir(self.path.parent)
            with FileLock(str(self.path) + ".lock"):
                with self._lock:
                    self._stamp = None  # another process may have written since
                data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._read_file().items()}
                change(data)
                data = validate(data, str(self.path))
                written = {k: v for k, v in data.items() if v != DEFAULTS[k]}
                # created exclusively (0600, never through a link planted at its name), under a fresh name
                fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.{os.getpid()}.", suffix=".tmp", dir=self.path.parent)
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as fh:
                        yaml.safe_dump(written, fh, default_flow_style=False, sort_keys=True)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(tmp, self.path)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
        except OSError as exc:
            self._legacy_pending = False
            raise ConfigError(
                f"Cannot write the config file {self.path}: {exc.strerror or exc}. "
                f"Make {self.path.parent} writable, or set S3BP_CONFIG to a writable file."
            ) from exc
        return data

    def set(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``settings`` one by one (None: back to the default) and write them in one update; the settings as written.

        Raises
        ------
        ConfigError
            Naming the first unknown setting or wrong value; nothing is written then.
        """
        checked = {k: DEFAULTS[k] if v is None and k in DEFAULTS else check_setting(k, v) for k, v in settings.items()}
        return self.update(lambda d: d.update(checked))

    def set_default_bucket(self, bucket: str | None) -> None:
        """Use ``bucket`` when no bucket is given or mapped (None: forget it)."""
        if bucket is not None:
            paths.check_bucket_name(bucket)
        self.update(lambda d: d.__setitem__("default_bucket", bucket))

    def map_directory(self, directory: str | os.PathLike[str], bucket: str) -> None:
        """Map ``directory`` (and everything below it) to ``bucket``.

        Raises
        ------
        InvalidPathError
            When ``directory`` is the root directory or an existing file.
        """
        norm = paths.normalize(directory)
        paths.check_bucket_name(bucket)
        if os.path.dirname(norm) == norm:
            raise InvalidPathError(f"Cannot map {norm!r}: the root directory cannot be a base directory.")
        if os.path.isfile(norm):
            raise InvalidPathError(f"Cannot map {norm!r}: it is a file; map the directory that holds it.")

        def change(data: dict[str, Any]) -> None:
            mapping = paths.normalize_mappings(data["base_dir_to_bucket_map"])
            if mapping.get(norm) not in (None, bucket):
                logger.warning("s3bp: %s was mapped to %s; now mapped to %s", norm, mapping[norm], bucket)
            mapping[norm] = bucket
            data["base_dir_to_bucket_map"] = mapping

        self.update(change)

    def unmap_directory(self, directory: str | os.PathLike[str]) -> None:
        """Remove the mapping of ``directory``; a no-op if it is not mapped."""
        norm = paths.normalize(directory)

        def change(data: dict[str, Any]) -> None:
            mapping = paths.normalize_mappings(data["base_dir_to_bucket_map"])
            mapping.pop(norm, None)
            data["base_dir_to_bucket_map"] = mapping

        self.update(change)


#: The file, in the state directory, where :class:`ConfigFile` remembers the parse of the config's text.
MEMO = "config.json"
_UNKNOWN = object()


def recalled(memo: Path, text: str) -> Any:
    """The parse of ``text`` remembered in ``memo``, or ``_UNKNOWN`` (no memo, another text, an unreadable file)."""
    import json

    try:  # never through a symlink, never blocking on a FIFO planted there; only a regular file
        fd = os.open(memo, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return _UNKNOWN
    try:
        with os.fdopen(fd, encoding="utf-8") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return _UNKNOWN
            known = json.load(fh)
    except (OSError, ValueError):
        return _UNKNOWN
    if isinstance(known, dict) and known.get("text") == text and "parsed" in known:
        return known["parsed"]
    return _UNKNOWN


def remember(memo: Path, text: str, parsed: Any) -> None:
    """Keep the parse of ``text`` in ``memo`` when JSON gives it back exactly (no dates, no non-string keys), creating
    its directory (0700) if need be; best effort: a state directory that cannot be written only costs parsing again."""
    import json

    try:
        encoded = json.dumps({"text": text, "parsed": parsed}, allow_nan=False)
        if json.loads(encoded)["parsed"] != parsed:
            return
    except (TypeError, ValueError):
        return
    tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
    try:
        os.makedirs(memo.parent, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(encoded)
        os.replace(tmp, memo)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) readable by the owner only, if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def check_setting(field: str, value: Any) -> Any:
    """Check one setting as a value in the file is checked; return it.

    Raises
    ------
    ConfigError
        When ``field`` is no setting or ``value`` is wrong for it.
    InvalidBucketNameError
        When ``field`` is ``default_bucket`` and ``value`` breaks S3's naming rules.
    """
    if field not in DEFAULTS:
        raise ConfigError(f"Unknown setting {field!r}; the settings are {', '.join(DEFAULTS)}.")
    value = _check_field(field, value, "", fix="")
    if field == "default_bucket" and value is not None:
        paths.check_bucket_name(value)
    return value


def parse_value(field: str, text: str) -> Any:
    """A setting's value from the command line: text for the string settings, else YAML (``5``, ``0.5``, ``{a: b}``)."""
    import yaml

    if field in _OPTIONAL_STR:
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"setting {field!r}: {text!r} is not a value s3bp can read ({exc}).") from exc


# -- s3bp 0.1.x ---------------------------------------------------------------------
#
# 0.1.x kept ``s3bp_cfg.yml`` in its own package directory (default_bucket,
# base_dir_to_bucket_map, max_workers, and an unused default_base_dir). After an
# upgrade the file may still sit beside the new package. It is read, never written.

LEGACY_NAME = "s3bp_cfg.yml"
_LEGACY_KEYS = ("default_bucket", "base_dir_to_bucket_map", "max_workers")


def legacy_config_paths(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Where a 0.1.x config may be: ``$S3BP_LEGACY_CONFIG`` if set (empty: nowhere), else ``s3bp/s3bp_cfg.yml`` beside
    this package and in every site-packages directory."""
    if "S3BP_LEGACY_CONFIG" in environ:
        given = environ["S3BP_LEGACY_CONFIG"]
        return [Path(given).expanduser()] if given else []
    import site
    import sys

    dirs = [Path(__file__).resolve().parent.parent]
    with contextlib.suppress(AttributeError):  # a virtualenv's old site module
        dirs += [Path(d) for d in site.getsitepackages()]
    dirs += [Path(d) for d in sys.path if d.endswith("-packages")]
    seen: list[Path] = []
    for d in dirs:
        if d / "s3bp" / LEGACY_NAME not in seen:
            seen.append(d / "s3bp" / LEGACY_NAME)
    return seen


def read_legacy(path: str | os.PathLike[str], refused: list[str] | None = None) -> dict[str, Any]:
    """The settings of a 0.1.x ``s3bp_cfg.yml`` that s3bp can use (each checked like the file's).

    What cannot be used is logged, and also added in words to ``refused`` when given.

    Raises
    ------
    ConfigError
        When the file cannot be read or is not YAML; naming it.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read the s3bp 0.1.x config {path}: {' '.join(str(exc).split())}.") from exc
    if isinstance(data, tuple) and data and isinstance(data[0], dict):  # 0.1.x could write a one-element tuple
        data = data[0]
    if not isinstance(data, dict):
        if data is not None and refused is not None:
            refused.append(f"{path} holds a YAML {type(data).__name__}, not the mapping of settings an s3bp_cfg.yml has")
        return {}
    found: dict[str, Any] = {}
    for field in _LEGACY_KEYS:
        if data.get(field) in (None, {}):
            continue
        try:
            found[field] = check_setting(field, data[field])
        except S3bpError as exc:
            logger.warning("s3bp: not imported from %s: %s", path, exc)
            if refused is not None:
                refused.append(str(exc))
    return found


def import_legacy(config: ConfigFile, legacy: str | os.PathLike[str], refused: list[str] | None = None) -> dict[str, Any]:
    """Add a 0.1.x config's settings to ``config`` where it has none of its own; the old file is left as it is.

    The default bucket and the worker count are taken when ``config`` leaves
    them at their defaults; each mapping when its directory is not mapped yet.

    Returns
    -------
    dict
        What was imported (what was not usable is added in words to ``refused``, when given).
    """
    found = read_legacy(legacy, refused)
    taken: dict[str, Any] = {}

    def change(data: dict[str, Any]) -> None:
        taken.clear()
        for field in ("default_bucket", "max_workers"):
            if field in found and data[field] == DEFAULTS[field]:
                data[field] = taken[field] = found[field]
        mapping = paths.normalize_mappings(data["base_dir_to_bucket_map"])
        added = {d: b for d, b in paths.normalize_mappings(found.get("base_dir_to_bucket_map", {})).items() if d not in mapping}
        if added:
            data["base_dir_to_bucket_map"] = {**mapping, **added}
            taken["base_dir_to_bucket_map"] = added

    if found:
        config.update(change)
    return taken


def _import_found_legacy(config: ConfigFile) -> None:
    """First use with no config file: import the first 0.1.x config found, and say so in one line on stderr."""
    import sys

    for legacy in legacy_config_paths():
        if not legacy.is_file():
            continue
        if config.path.exists():  # another process made it meanwhile
            return
        try:
            taken = import_legacy(config, legacy)  # two processes at once: the second finds nothing left to add
        except S3bpError as exc:
            print(f"s3bp: could not import the s3bp 0.1.x config {legacy}: {exc}", file=sys.stderr)
            return
        if taken:
            what = ", ".join(f"{len(v)} mapping(s)" if isinstance(v, dict) else f"{k} {v}" for k, v in taken.items())
            print(f"s3bp: imported the s3bp 0.1.x config {legacy} into {config.path} ({what}); the old file is left as it was",
                  file=sys.stderr)  # fmt: skip
        return

