"""The endpoint URL a client would use, remembered so that work needing no request needs no boto3 either.

Sync records name the endpoint they are about, so a push must know it before
it can tell that nothing changed; botocore decides it (the config file, the
``AWS_*`` environment, the AWS config file, the region's default), and
importing botocore costs more than the rest of such a push. The answer is
kept in the state directory under a fingerprint of everything it depends on;
any change to those inputs asks botocore again.

:func:`describe_connection` says which endpoint, region and profile a client
would use and where each comes from (``s3bp config``), asking botocore only
when neither the config nor the environment says.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: The file, in the state directory, that maps input fingerprints to endpoint URLs.
FILE = "endpoints.json"
_KEEP = 32  # fingerprints remembered; the oldest go first


def fingerprint(settings: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """A digest of every input of botocore's endpoint choice: the config's connection keys, the ``AWS_*``
    environment, ``HOME`` and the AWS config file's size and modification time."""
    import hashlib  # here: ``s3bp config`` describes the connection without it

    aws_config = environ.get("AWS_CONFIG_FILE") or os.path.join(environ.get("HOME", os.path.expanduser("~")), ".aws", "config")
    try:
        st = os.stat(os.path.expanduser(aws_config))
        config_stat: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
    except OSError:
        config_stat = None
    inputs = {
        "settings": [settings.get(k) for k in ("endpoint_url", "profile", "region")],
        "env": sorted((k, v) for k, v in environ.items() if k.startswith("AWS_") and "SECRET" not in k and "TOKEN" not in k),
        "home": environ.get("HOME"),
        "aws_config": [aws_config, config_stat],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def endpoint_for(state_dir: Path, settings: Mapping[str, Any], ask: Callable[[], str], environ: Mapping[str, str] | None = None) -> str:
    """The endpoint URL for ``settings``: remembered in ``state_dir`` when its inputs are unchanged, else ``ask()``-ed and remembered.

    A state directory that cannot be read or written only costs asking again.
    """
    key = fingerprint(settings, os.environ if environ is None else environ)
    known = _read(state_dir / FILE)
    if isinstance(known.get(key), str):
        return known[key]
    endpoint = ask()
    known.pop(key, None)
    known[key] = endpoint
    with contextlib.suppress(OSError):
        _write(state_dir / FILE, dict(list(known.items())[-_KEEP:]))
    return endpoint


def _read(path: Path) -> dict[str, Any]:
    """The remembered endpoints ({} when missing or unreadable)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, str]) -> None:
    """Replace the file atomically (a temp file beside it, private to the user)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def describe_connection(*, profile: str | None, region: str | None, endpoint_url: str | None) -> list[tuple[str, str | None, str]]:
    """The effective endpoint, region and profile, and where each comes from.

    Parameters
    ----------
    profile, region, endpoint_url
        The config file's values (None when unset).

    Returns
    -------
    list of (name, value, source)
        One row each for ``endpoint_url``, ``region`` and ``profile``.
    """
    rows: list[tuple[str, str | None, str]] = []
    if profile:
        rows.append(("profile", profile, "config file"))
    elif os.environ.get("AWS_PROFILE"):
        rows.append(("profile", os.environ["AWS_PROFILE"], "the environment variable AWS_PROFILE"))
    else:
        rows.append(("profile", "default", "boto3's default"))
    if region:
        rows.insert(0, ("region", region, "config file"))
    elif os.environ.get("AWS_DEFAULT_REGION"):  # botocore reads it before any config file: no need to import botocore
        rows.insert(0, ("region", os.environ["AWS_DEFAULT_REGION"], "the environment variable AWS_DEFAULT_REGION"))
    else:
        from .remote import configured_region  # imports botocore: only when the environment does not say

        found = configured_region(profile)
        env = next((v for v in ("AWS_REGION", "AWS_DEFAULT_REGION") if os.environ.get(v) == found and found), None)
        source = f"the environment variable {env}" if env else ("the AWS config file" if found else "boto3's default, us-east-1 for S3")
        rows.insert(0, ("region", found, source))
    if endpoint_url:
        rows.insert(0, ("endpoint_url", endpoint_url, "config file"))
    else:
        env = next((v for v in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if os.environ.get(v)), None)
        if env:
            rows.insert(0, ("endpoint_url", os.environ[env], f"the environment variable {env}"))
        else:
            rows.insert(0, ("endpoint_url", None, "boto3's default: AWS S3 for the region"))
    return rows
