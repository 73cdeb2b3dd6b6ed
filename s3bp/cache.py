"""The managed cache: where local copies of ``s3://`` URLs and pinned versions live.

Layout under :func:`cache_root` (readable, since people look in there)::

    <endpoint id>/<bucket>/<key>                          the copy of s3://bucket/key
    <endpoint id>/.versions/<bucket>/<version id>/<key>   an immutable pinned version

Bucket names never start with a dot, so ``.versions`` cannot clash with a bucket.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

#: The directory under an endpoint's directory that holds pinned versions.
VERSIONS_DIR = ".versions"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$S3BP_CACHE_DIR``, else ``$XDG_CACHE_HOME/s3bp``, else ``~/.cache/s3bp``."""
    env = os.environ if environ is None else environ
    if env.get("S3BP_CACHE_DIR"):
        return Path(env["S3BP_CACHE_DIR"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "s3bp"
    return Path("~/.cache/s3bp").expanduser()


def endpoint_id(endpoint: str) -> str:
    """A readable directory name for an endpoint URL: its host, and port if any.

    ``https://s3.eu-west-1.amazonaws.com`` -> ``s3.eu-west-1.amazonaws.com``;
    ``http://127.0.0.1:9000`` -> ``127.0.0.1_9000``.
    """
    parts = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    host = (parts.hostname or "endpoint") + (f"_{parts.port}" if parts.port else "")
    path = parts.path.strip("/")
    name = host + (f"_{path}" if path else "")
    return _UNSAFE.sub("_", name).lstrip(".") or "endpoint"


def url_copy_path(root: Path, endpoint: str, bucket: str, key: str) -> Path:
    """Where the local copy of ``s3://bucket/key`` on ``endpoint`` lives (``key`` already checked safe)."""
    return root / endpoint_id(endpoint) / bucket / key


def version_copy_path(root: Path, endpoint: str, bucket: str, key: str, version_id: str) -> Path:
    """Where the immutable copy of one version of ``s3://bucket/key`` lives (``key`` already checked safe)."""
    return root / endpoint_id(endpoint) / VERSIONS_DIR / bucket / _UNSAFE.sub("_", version_id) / key
