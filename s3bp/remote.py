"""The wire: every request s3bp sends to S3, and the only importer of boto3, botocore and s3transfer.

A :class:`Wire` wraps one shared client (and its transfer managers) and
offers a short list of primitives: :meth:`~Wire.get`, :meth:`~Wire.fetch`,
:meth:`~Wire.put`, :meth:`~Wire.head`, :meth:`~Wire.list`,
:meth:`~Wire.delete` and :meth:`~Wire.create_bucket`. Expected answers come
back as values (:class:`NotModified`, :class:`Missing`, :class:`Body`,
:class:`Stored`, :class:`Refused`); everything else is raised as an
:class:`~s3bp.errors.S3bpError`, translated here and nowhere else.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    DownloadError,
    EndpointError,
    InvalidBucketNameError,
    ObjectNotFoundError,
    S3bpError,
)
from .freshness import Answer, md5_of_etag
from .progress import bar, wanted
from .tree import Remote

#: Objects at least this large go through s3transfer (multipart, concurrent parts).
MULTIPART_THRESHOLD = 8 * 1024 * 1024
#: A load's first GET asks for this many bytes: small objects arrive in that one request.
PROBE_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
#: Checksums are computed by botocore itself; a caller-given one would be wrong for the snapshot.
_CHECKSUM_ARGS = frozenset(
    {"ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumMD5", "ChecksumSHA1", "ChecksumSHA256"}
    | {"ChecksumSHA512", "ChecksumXXHASH3", "ChecksumXXHASH64", "ChecksumXXHASH128", "MpuObjectSize"}
)
_MISSING_CODES = ("NoSuchKey", "404", "NotFound")
#: What a conditional PUT's refusal looks like: the condition failed, the object is gone, or the store cannot do it.
_REFUSAL_CODES = ("PreconditionFailed", "412", "NoSuchKey", "404", "NotImplemented", "501", "ConditionalRequestConflict", "409")


# -- outcomes ------------------------------------------------------------------


@dataclass(frozen=True)
class NotModified:
    """A conditional GET answered 304: the object still has the ETag (or age) we asked about."""

    answer = Answer.NOT_MODIFIED


@dataclass(frozen=True)
class Missing:
    """The object does not exist."""

    answer = Answer.MISSING


@dataclass
class Body:
    """The first bytes of an object, with what S3 said about the whole of it."""

    etag: str
    size: int
    last_modified: float
    encrypted: bool
    stream: Any
    answer = Answer.BODY


@dataclass(frozen=True)
class Head:
    """An object's metadata, from HEAD."""

    etag: str
    size: int
    last_modified: float


@dataclass(frozen=True)
class Stored:
    """A PUT was accepted; S3 now holds the object with this ETag."""

    etag: str


@dataclass(frozen=True)
class Refused:
    """A conditional PUT was refused: ``412`` (changed), ``404`` (gone) or ``501`` (the store cannot)."""

    code: str


# -- clients ---------------------------------------------------------------------


def new_client(
    *,
    endpoint_url: str | None,
    region: str | None = None,
    profile: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    retry_mode: str = "standard",
    max_attempts: int = 5,
    max_pool_connections: int = 18,
    connect_timeout: float = 5,
    read_timeout: float = 60,
) -> Any:
    """A boto3 S3 client with botocore's retries and a connection pool sized to the workers.

    With ``access_key``/``secret_key`` the client ignores ``AWS_PROFILE``; a
    given ``endpoint_url`` always wins over ``AWS_ENDPOINT_URL``.

    Raises
    ------
    CredentialsError
        When the profile does not exist.
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    try:
        if access_key is not None:
            core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})  # AWS_PROFILE not read
            session = boto3.session.Session(
                aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region, botocore_session=core
            )
        else:
            session = boto3.session.Session(profile_name=profile, region_name=region)
    except Exception as exc:  # botocore.exceptions.ProfileNotFound and friends
        raise CredentialsError(
            f"Cannot use AWS profile {profile!r}: {exc}. Check ~/.aws/config or the 'profile' config key."
        ) from exc
    cfg = Config(
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    return session.client("s3", endpoint_url=endpoint_url, config=cfg)


class Connections:
    """One :class:`Wire` per (profile, region, endpoint), created on first use and shared by all threads.

    Parameters
    ----------
    client
        A client to use for everything instead of creating them.
    """

    def __init__(self, client: Any = None):
        self._given = client
        self._lock = threading.Lock()
        self._wires: dict[tuple[str | None, str | None, str | None], Wire] = {}

    def get(self, settings: Mapping[str, Any], *, profile: str | None, region: str | None, endpoint: str | None) -> Wire:
        """The wire for ``profile``, ``region`` and ``endpoint``, its client made from ``settings`` (retries, timeouts, pool)."""
        key = (None, None, None) if self._given is not None else (profile, region, endpoint)
        with self._lock:
            if key not in self._wires:
                client = self._given or new_client(
                    profile=profile, region=region, endpoint_url=endpoint, retry_mode=settings["retry_mode"],
                    max_attempts=settings["max_attempts"], max_pool_connections=settings["max_workers"] + 10,
                    connect_timeout=settings["connect_timeout"], read_timeout=settings["read_timeout"],
                )  # fmt: skip
                self._wires[key] = Wire(client)
            return self._wires[key]

    def close(self) -> None:
        """Shut every wire's transfer managers down."""
        with self._lock:
            wires, self._wires = list(self._wires.values()), {}
        for wire in wires:
            wire.close()


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
    import os

    import botocore.session

    core = botocore.session.Session()
    rows: list[tuple[str, str | None, str]] = []
    if profile:
        rows.append(("profile", profile, "config file"))
    elif os.environ.get("AWS_PROFILE"):
        rows.append(("profile", os.environ["AWS_PROFILE"], "environment (AWS_PROFILE)"))
    else:
        rows.append(("profile", "default", "boto3 default"))
    if profile:
        core.set_config_variable("profile", profile)
    if region:
        rows.insert(0, ("region", region, "config file"))
    else:
        try:
            found = core.get_config_variable("region")
        except Exception as exc:  # a missing profile
            raise CredentialsError(f"Cannot read AWS profile {profile!r}: {exc}.") from exc
        env = next((v for v in ("AWS_REGION", "AWS_DEFAULT_REGION") if os.environ.get(v) == found and found), None)
        source = f"environment ({env})" if env else ("AWS config file" if found else "boto3 default (us-east-1 for S3)")
        rows.insert(0, ("region", found, source))
    if endpoint_url:
        rows.insert(0, ("endpoint_url", endpoint_url, "config file"))
    else:
        env = next((v for v in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if os.environ.get(v)), None)
        if env:
            rows.insert(0, ("endpoint_url", os.environ[env], f"environment ({env})"))
        else:
            rows.insert(0, ("endpoint_url", None, "boto3 default (AWS S3 for the region)"))
    return rows


def allowed_upload_args() -> frozenset[str]:
    """The upload arguments s3bp passes on (s3transfer's allowed ones, less the checksums botocore computes)."""
    from s3transfer.manager import TransferManager

    return frozenset(TransferManager.ALLOWED_UPLOAD_ARGS) - _CHECKSUM_ARGS


# -- the wire ---------------------------------------------------------------------


class Wire:
    """The S3 primitives s3bp uses, on one shared (thread-safe) client.

    Parameters
    ----------
    client
        A boto3 S3 client.
    """

    def __init__(self, client: Any):
        self.client = client
        self._lock = threading.Lock()
        self._transfers: dict[bool, Any] = {}

    @property
    def endpoint(self) -> str:
        """The endpoint URL the client talks to."""
        return str(self.client.meta.endpoint_url)

    @property
    def region(self) -> str | None:
        """The client's region."""
        return self.client.meta.region_name

    def get(self, bucket: str, key: str, *, if_none_match: str | None = None, if_modified_since: float | None = None) -> NotModified | Missing | Body:
        """GET the first :data:`PROBE_BYTES` of an object, optionally only if it changed.

        ``if_modified_since`` is compared in whole seconds, as S3 keeps LastModified.
        """
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{PROBE_BYTES - 1}"}
        if if_none_match is not None:
            kwargs["IfNoneMatch"] = if_none_match
        elif if_modified_since is not None:
            kwargs["IfModifiedSince"] = datetime.datetime.fromtimestamp(int(if_modified_since), tz=datetime.timezone.utc)
        with _errors("download", bucket, key, expected=("304", *_MISSING_CODES)) as seen:
            try:
                resp = self.client.get_object(**kwargs)
            except Exception as exc:
                if _code(exc) != "InvalidRange":
                    raise
                # An empty object has no byte 0: ask again without the range.
                resp = self.client.get_object(**{k: v for k, v in kwargs.items() if k != "Range"})
        if seen.code == "304":
            return NotModified()
        if seen.code:
            return Missing()
        encrypted = str(resp.get("ServerSideEncryption", "")).startswith("aws:kms") or bool(resp.get("SSECustomerAlgorithm"))
        return Body(resp["ETag"], _object_size(resp), resp["LastModified"].timestamp(), encrypted, resp["Body"])

    def fetch(self, body: Body, bucket: str, key: str, dest: str, *, progress: bool | None = None) -> None:
        """Write the whole object whose first bytes are ``body`` to the file ``dest``, checked.

        A small object is complete in ``body``; a medium one gets its rest in one
        more GET of the same version (IfMatch); a large one goes through
        s3transfer, told the size and ETag so that it sends no HEAD and every
        part carries IfMatch, with a progress bar where ``progress`` (default:
        on a terminal or in a notebook) says so.

        Raises
        ------
        DownloadError
            When the bytes do not match an MD5 ETag (``dest`` is then to be discarded).
        """
        md5 = md5_of_etag(body.etag, body.encrypted)
        digest = hashlib.md5(usedforsecurity=False) if md5 else None
        with _errors("download", bucket, key):
            if body.size >= MULTIPART_THRESHOLD:
                body.stream.read()  # drain it: the connection goes back to the pool
                with bar(progress, body.size, 0, os.path.basename(dest).split("-", 2)[-1]) as tick:
                    subscribers = [_known_object(body.size, body.etag)] + ([_progress(tick)] if wanted(progress) else [])
                    self._transfer().download(bucket, key, dest, subscribers=subscribers).result()
                if digest is not None:
                    with open(dest, "rb") as done:
                        _copy(done, None, digest)
            else:
                with open(dest, "wb") as out:
                    _copy(body.stream, out, digest)
                    if out.tell() < body.size:
                        rest = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={out.tell()}-", IfMatch=body.etag)
                        _copy(rest["Body"], out, digest)
        if digest is not None and digest.hexdigest() != md5:
            raise DownloadError(
                f"Download of s3://{bucket}/{key} was corrupted in transit (MD5 {digest.hexdigest()} does not "
                f"match ETag {body.etag}); the local file was left as it was. Try again; if it persists, check proxies on the way."
            )

    def put(self, bucket: str, key: str, source: str, size: int, extra: dict[str, Any], *, if_match: str | None = None) -> Stored | Refused:
        """Upload the file ``source`` (in parts if large); with ``if_match``, only over that version.

        Objects sent in parts cannot carry the condition (s3transfer does not
        send it): the caller checks with :meth:`head` first.
        """
        with _errors("upload", bucket, key, expected=_REFUSAL_CODES if if_match else ()) as seen:
            if size < MULTIPART_THRESHOLD:
                condition = {"IfMatch": if_match} if if_match is not None else {}
                with open(source, "rb") as body:
                    return Stored(self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra, **condition)["ETag"])
            try:
                self._transfer().upload(source, bucket, key, extra_args=extra).result()
            except RuntimeError:
                # The interpreter began exiting mid-upload: its thread pools now refuse
                # work ("cannot schedule new futures"), so send the parts from this thread.
                self._transfer(threaded=False).upload(source, bucket, key, extra_args=extra).result()
            return Stored(self.client.head_object(Bucket=bucket, Key=key)["ETag"])
        return Refused(seen.code)

    def honours_conditions(self, bucket: str) -> bool:
        """Whether the store refuses a PUT whose ``IfMatch`` does not hold (some S3-compatible stores ignore it).

        Sends one conditional PUT of an empty probe object that does not exist:
        a store that honours the condition refuses it (404 or 412); one that
        answers 501 cannot do conditions; one that stores it ignores them (the
        probe is then deleted).
        """
        key = f".s3bp-probe-{uuid.uuid4().hex}"
        answer = self.put(bucket, key, os.devnull, 0, {}, if_match='"' + "0" * 32 + '"')
        if isinstance(answer, Stored):
            self.delete(bucket, key)
            return False
        return answer.code != "501"

    def head(self, bucket: str, key: str) -> Head | Missing:
        """The object's ETag, size and LastModified, or :class:`Missing`."""
        with _errors("check", bucket, key, expected=_MISSING_CODES) as seen:
            resp = self.client.head_object(Bucket=bucket, Key=key)
            return Head(resp["ETag"], int(resp["ContentLength"]), resp["LastModified"].timestamp())
        assert seen.code
        return Missing()

    def list(self, bucket: str, prefix: str) -> Iterator[Remote]:
        """The objects of ``bucket`` under ``prefix``."""
        with _errors("list", bucket, prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    yield Remote(obj["Key"], obj["ETag"], obj["Size"], obj["LastModified"].timestamp())

    def delete(self, bucket: str, key: str) -> None:
        """Delete one object."""
        with _errors("delete", bucket, key):
            self.client.delete_object(Bucket=bucket, Key=key)

    def create_bucket(self, bucket: str) -> None:
        """Create a bucket (in the client's region)."""
        with _errors("create", bucket, ""):
            region = self.region
            if region and region != "us-east-1":
                self.client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
            else:
                self.client.create_bucket(Bucket=bucket)

    def _transfer(self, threaded: bool = True) -> Any:
        """The s3transfer manager on this client: multipart, concurrent parts, memory bounded by part size."""
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        with self._lock:
            if threaded not in self._transfers:
                tc = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, max_concurrency=10, use_threads=threaded)
                self._transfers[threaded] = create_transfer_manager(self.client, tc)
            return self._transfers[threaded]

    def close(self) -> None:
        """Shut the transfer managers down."""
        with self._lock:
            managers, self._transfers = list(self._transfers.values()), {}
        for manager in managers:
            manager.shutdown()


# -- errors -------------------------------------------------------------------------


class _Seen:
    """The code of an expected error answer, set by :func:`_errors`; empty when there was none."""

    code = ""


@contextlib.contextmanager
def _errors(action: str, bucket: str, key: str, expected: tuple[str, ...] = ()) -> Iterator[_Seen]:
    """Turn what botocore raises inside the block into an :class:`S3bpError`; note expected answers instead.

    An error whose code is in ``expected`` is swallowed and its code put on the
    yielded object, so the caller can return an outcome for it.
    """
    seen = _Seen()
    try:
        yield seen
    except S3bpError:
        raise
    except Exception as exc:
        code = _code(exc)
        if code and code in expected:
            seen.code = _canonical(code)
            return
        raise translate(exc, action, bucket, key) from exc


def _canonical(code: str) -> str:
    """One spelling per answer: ``304``, ``404``, ``412``, ``501``, ``409`` or the code as sent."""
    return {
        "NoSuchKey": "404",
        "NotFound": "404",
        "PreconditionFailed": "412",
        "NotImplemented": "501",
        "ConditionalRequestConflict": "409",
    }.get(code, code)


def _code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError (the HTTP status for bodiless answers like 304); else ''."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def translate(exc: BaseException, action: str, bucket: str, key: str | None) -> S3bpError:
    """The :class:`S3bpError` that explains a botocore (or transfer) failure.

    Parameters
    ----------
    exc
        What botocore or s3transfer raised.
    action
        What was attempted, e.g. ``"upload"``, used in the message.
    bucket, key
        What the request was about.
    """
    from botocore import exceptions as bex

    where = f"s3://{bucket}/{key}" if key else f"bucket {bucket!r}"
    if isinstance(exc, bex.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return _client_error(_code(exc), status, action, bucket, where)
    if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError, bex.CredentialRetrievalError)):
        return CredentialsError(
            f"Cannot {action} {where}: no usable AWS credentials. Configure them with `aws configure`, "
            f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a profile (AWS_PROFILE or the 'profile' config key)."
        )
    if isinstance(exc, bex.FlexibleChecksumError):
        return DownloadError(
            f"Cannot {action} {where}: the data was corrupted in transit ({exc}); the local file was left as it was. "
            f"Try again; if it persists, check proxies on the way."
        )
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectionClosedError, bex.ReadTimeoutError, bex.ConnectTimeoutError)):
        return EndpointError(
            f"Cannot {action} {where}: the S3 endpoint could not be reached ({type(exc).__name__}). "
            f"Check the network and the endpoint_url setting."
        )
    if isinstance(exc, (bex.BotoCoreError, OSError)):
        return S3bpError(f"Cannot {action} {where}: {exc}")
    return S3bpError(f"Cannot {action} {where}: {type(exc).__name__}: {exc}")


def _client_error(code: str, status: int | None, action: str, bucket: str, where: str) -> S3bpError:
    """The :class:`S3bpError` for an S3 error code."""
    if code == "NoSuchBucket":
        return BucketNotFoundError(
            f"Cannot {action} {where}: bucket {bucket!r} does not exist on this "
            f"endpoint. Check the bucket name and the endpoint/region, or create the bucket."
        )
    if code in _MISSING_CODES:
        return ObjectNotFoundError(f"Cannot {action} {where}: no such object in S3.")
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return AccessDeniedError(
            f"Cannot {action} {where}: access denied. Check that your credentials "
            f"(profile, AWS_ACCESS_KEY_ID) may {action} in bucket {bucket!r}."
        )
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
        return CredentialsError(
            f"Cannot {action} {where}: the endpoint rejected the credentials ({code}). Check your AWS credentials or profile."
        )
    if code == "InvalidBucketName":
        return InvalidBucketNameError(f"Cannot {action} {where}: {bucket!r} is not a valid bucket name.")
    suffix = f" (HTTP {status})" if status else ""
    return S3bpError(f"Cannot {action} {where}: S3 answered {code}{suffix}.")


# -- helpers -------------------------------------------------------------------------


def _object_size(resp: dict[str, Any]) -> int:
    """The whole object's size, from a ranged GET's Content-Range or else its Content-Length."""
    content_range = resp.get("ContentRange")
    if content_range and "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(resp["ContentLength"])


def _copy(body: Any, out: Any, digest: Any = None) -> None:
    """Stream a response body (or a file) into an open file and/or a hash, a chunk at a time."""
    chunks = body.iter_chunks(_CHUNK) if hasattr(body, "iter_chunks") else iter(lambda: body.read(_CHUNK), b"")
    for chunk in chunks:
        if out is not None:
            out.write(chunk)
        if digest is not None:
            digest.update(chunk)


def _known_object(size: int, etag: str) -> Any:
    """An s3transfer subscriber that hands a download the object's size and ETag (so it needs no HEAD)."""
    from s3transfer.subscribers import BaseSubscriber

    class _Known(BaseSubscriber):
        def on_queued(self, future: Any, **kwargs: Any) -> None:
            future.meta.provide_transfer_size(size)
            future.meta.provide_object_etag(etag)

    return _Known()


def _progress(tick: Callable[[int], None]) -> Any:
    """An s3transfer subscriber feeding ``tick`` with the bytes moved."""
    from s3transfer.subscribers import BaseSubscriber

    class _Tick(BaseSubscriber):
        def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
            tick(bytes_transferred)

    return _Tick()
