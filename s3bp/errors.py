"""The exceptions s3bp raises.

Every exception subclasses :class:`S3bpError` and, where a caller would
naturally catch a builtin, that builtin too (``ObjectNotFoundError`` is a
``FileNotFoundError``). Each message names what was asked for and what to do.
This module holds the types only: botocore errors become these in
:mod:`s3bp.remote`.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

__all__ = [
    "Remedy",
    "S3bpError",
    "NoBucketError",
    "InvalidPathError",
    "InvalidBucketNameError",
    "InvalidArgumentError",
    "ObjectNotFoundError",
    "BucketNotFoundError",
    "AccessDeniedError",
    "CredentialsError",
    "EndpointError",
    "UploadError",
    "DownloadError",
    "SerializationError",
    "UnknownFormatError",
    "MissingDependencyError",
    "ConfigError",
    "ConflictError",
    "StateError",
    "LocalFileError",
    "OfflineWarning",
    "StateWarning",
    "VersioningError",
]


class Remedy(NamedTuple):
    """What to do about an error, in the words of the Python API and of the ``s3bp`` command."""

    python: str
    cli: str


_E = TypeVar("_E", bound="S3bpError")


class S3bpError(Exception):
    """Base class of every error s3bp raises.

    An error may carry a :class:`Remedy`: ``str(error)`` ends with its Python
    spelling, :meth:`cli_message` with its command-line one.
    """

    remedy: Remedy | None = None

    def with_remedy(self: _E, python: str, cli: str) -> _E:
        """Attach a remedy (returns ``self``, to be raised)."""
        self.remedy = Remedy(python, cli)
        return self

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} {self.remedy.python}" if self.remedy is not None else text

    def cli_message(self) -> str:
        """The message with the remedy as ``s3bp`` commands, for the command line."""
        text = super().__str__()
        return f"{text} {self.remedy.cli}" if self.remedy is not None else text


class NoBucketError(S3bpError, ValueError):
    """No bucket was given and none could be derived from the configuration."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(f"No bucket for {path!r}:")
        self.with_remedy(
            "pass bucket_name=..., map a parent directory with s3bp.map_base_directory_to_bucket(dir, bucket), "
            "or set one with s3bp.set_default_bucket(bucket).",
            "map a parent directory with `s3bp map DIR BUCKET`, or set a default with `s3bp default-bucket NAME`.",
        )


class InvalidPathError(S3bpError, ValueError):
    """A local path (or the key derived from it) cannot be used."""


class InvalidArgumentError(S3bpError, ValueError):
    """An argument or setting has a value s3bp cannot use."""


class InvalidBucketNameError(S3bpError, ValueError):
    """A bucket name breaks S3's naming rules; checked before any request."""


class ObjectNotFoundError(S3bpError, FileNotFoundError):
    """The object is neither on the local disk nor in S3."""


class BucketNotFoundError(S3bpError):
    """The bucket does not exist on the endpoint."""


class AccessDeniedError(S3bpError, PermissionError):
    """The credentials in use may not perform the request."""


class CredentialsError(S3bpError):
    """No usable AWS credentials were found."""


class EndpointError(S3bpError, ConnectionError):
    """The S3 endpoint could not be reached."""


class UploadError(S3bpError):
    """An upload failed; the saved file stays on disk and in the upload journal."""

    def __init__(self, message: str, failures: list[tuple[str, str, str]] | None = None):
        super().__init__(message)
        #: ``(bucket, key, reason)`` for every failed upload this error reports.
        self.failures = list(failures or [])


class DownloadError(S3bpError):
    """A download failed for a reason other than a missing object."""


class SerializationError(S3bpError):
    """A serializer or deserializer raised, or produced nothing."""


class UnknownFormatError(S3bpError, ValueError):
    """A format name is not in the registry."""


class MissingDependencyError(S3bpError, ImportError):
    """A format's engine is not installed; the message names the extra to install."""


class ConfigError(S3bpError):
    """The configuration file cannot be read or holds a wrong value."""


class ConflictError(S3bpError):
    """Both the local file and the S3 object changed since they were last in sync; neither was overwritten."""

    def __init__(self, message: str, path: str | None = None, bucket: str | None = None, key: str | None = None):
        super().__init__(message)
        self.path, self.bucket, self.key = path, bucket, key


class StateError(S3bpError, OSError):
    """The state directory (sync records, upload journal, spool) cannot be used: read-only, full, or damaged beyond repair.

    The message names the directory or file and what to do (free space, make it
    writable, or point ``S3BP_STATE_DIR`` elsewhere).
    """


class LocalFileError(S3bpError, OSError):
    """A local file or its directory cannot be written or read (disk full, read-only, no permission); the old file is kept."""


class OfflineWarning(UserWarning):
    """S3 could not be reached, so a local copy that may be out of date was loaded."""


class StateWarning(UserWarning):
    """The state directory is read-only or was repaired: loads still work, and the message says what was kept or skipped."""


class VersioningError(S3bpError):
    """A version was asked for in a bucket without versioning; the message names the bucket and how to turn it on."""
