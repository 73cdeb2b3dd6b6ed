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

import concurrent.futures
import contextlib
import datetime
import functools
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    DownloadError,
    EndpointError,
    InvalidBucketNameError,
    LocalFileError,
    ObjectNotFoundError,
    S3bpError,
)
from .freshness import Answer, etag_parts, md5_of_etag, multipart_etag, parts_for
from .localfiles import DISK_ERRNOS, file_md5, file_multipart_etag
from .progress import bar, wanted
from .tree import Remote

#: Objects at least this large go through s3transfer (multipart, concurrent parts); smaller ones move in one PUT, or in
#: a load's probe and one more GET. Below it a request's own cost outweighs what concurrent parts of one object gain,
#: and a folder moves several files at once anyway (rclone's cut-off for one PUT is 200 MiB).
MULTIPART_THRESHOLD = 64 * 1024 * 1024
#: A large download shows a progress bar (where one is wanted) from this size on.
_BAR_FROM = 8 * 1024 * 1024
#: A load's first GET asks for this many bytes: small objects arrive in that one request.
PROBE_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
#: Checksums are computed by botocore itself; a caller-given one would be wrong for the snapshot.
_CHECKSUM_ARGS = frozenset(
    {"ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumMD5", "ChecksumSHA1", "ChecksumSHA256"}
    | {"ChecksumSHA512", "ChecksumXXHASH3", "ChecksumXXHASH64", "ChecksumXXHASH128", "MpuObjectSize"}
)
_MISSING_CODES = ("NoSuchKey", "404", "NotFound")
#: What a request for one version answers when there is no such version (or, 400 and 405, no readable one: a bad id, a delete marker).
_VERSION_MISSING_CODES = ("NoSuchVersion", "InvalidArgument", "400", "MethodNotAllowed", "405")
#: What a conditional PUT's refusal looks like: the condition failed, the object is gone, or the store cannot do it.
_REFUSAL_CODES = ("PreconditionFailed", "412", "NoSuchKey", "404", "NotImplemented", "501", "ConditionalRequestConflict", "409")
#: How long an upload waits for the answer to the probe of conditional writes before going on without it (seconds).
PROBE_WAIT = 10.0


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
    ranged: bool = False  # ``stream`` answers the probe's range (at most PROBE_BYTES), not the whole object
    version_id: str | None = None  #: S3's VersionId of the object (None: the bucket never had versioning)
    #: botocore checks ``stream``'s bytes, once read to the end, against a full-object checksum S3 sent (see :func:`_checksum_checked`)
    checksummed: bool = False
    answer = Answer.BODY


@dataclass(frozen=True)
class Head:
    """An object's metadata, from HEAD."""

    etag: str
    size: int
    last_modified: float
    encrypted: bool = False
    settings: tuple[tuple[str, Any], ...] = ()  #: what HEAD tells of the upload arguments (ContentType, Metadata, ...)
    version_id: str | None = None  #: S3's VersionId (None: the bucket never had versioning)


#: Upload arguments a HEAD answers with under the same name.
HEAD_SETTINGS = (
    "ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl", "Metadata",
    "StorageClass", "ServerSideEncryption", "SSEKMSKeyId", "WebsiteRedirectLocation",
)  # fmt: skip


@dataclass(frozen=True)
class Stored:
    """A PUT was accepted; S3 now holds the object with this ETag."""

    etag: str
    version_id: str | None = None  #: the VersionId S3 gave the new version (None: the bucket has no versioning)


@dataclass(frozen=True)
class Replaced:
    """An upload in parts went through, but another writer's version (this ETag) replaced it before it could be checked."""

    etag: str


@dataclass(frozen=True)
class ObjectVersion:
    """One entry of a ListObjectVersions answer: a version of an object, or a delete marker."""

    key: str
    version_id: str
    last_modified: float
    size: int
    etag: str
    is_latest: bool
    is_delete_marker: bool


@dataclass(frozen=True)
class VersionListing:
    """Every version and delete marker under a prefix, and the store's clock when it answered (its Date header)."""

    versions: tuple[ObjectVersion, ...]
    server_time: float


@dataclass(frozen=True)
class Refused:
    """A conditional PUT was refused: ``412`` (changed), ``404`` (gone), ``409`` (a concurrent write) or ``501`` (the store cannot)."""

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

    @property
    def given(self) -> bool:
        """Whether a client was given (rather than made from the settings)."""
        return self._given is not None

    def fresh(self) -> Connections:
        """New, empty connections with the same given client (e.g. for a forked child)."""
        return Connections(self._given)

    def close(self) -> None:
        """Shut every wire's transfer managers down."""
        with self._lock:
            wires, self._wires = list(self._wires.values()), {}
        for wire in wires:
            wire.close()


def configured_region(profile: str | None) -> str | None:
    """The region botocore's chain gives (``AWS_REGION``, the AWS config file's profile), or None: the default.

    Raises
    ------
    CredentialsError
        When the profile does not exist.
    """
    import botocore.session

    core = botocore.session.Session()
    if profile:
        core.set_config_variable("profile", profile)
    try:
        return core.get_config_variable("region")
    except Exception as exc:  # a missing profile
        raise CredentialsError(f"Cannot read AWS profile {profile!r}: {exc}.") from exc


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
        self._probe: tuple[concurrent.futures.Future[bool], float] | None = None  # the probe in flight, and when it started
        # Registered once per client (the id makes a second Wire on the same client a no-op).
        client.meta.events.register_last("before-call.s3", _no_continue_when_empty, unique_id="s3bp-no-empty-continue")

    @property
    def endpoint(self) -> str:
        """The endpoint URL the client talks to."""
        return str(self.client.meta.endpoint_url)

    @property
    def region(self) -> str | None:
        """The client's region."""
        return self.client.meta.region_name

    def get(
        self, bucket: str, key: str, *, if_none_match: str | None = None, if_modified_since: float | None = None, version_id: str | None = None,
        whole: bool = False,
    ) -> NotModified | Missing | Body:
        """GET the first :data:`PROBE_BYTES` of an object (of one version, given ``version_id``), optionally only if it changed.

        ``if_modified_since`` is compared in whole seconds, as S3 keeps LastModified.
        A version that does not exist (or an id the store cannot read) is :class:`Missing`.
        With ``whole``, GET the whole object (for a caller that knows it is not large): :meth:`fetch` then needs no other request.
        """
        # ChecksumMode: botocore checks the object's checksum when S3 sends one (never for a range on AWS).
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if not whole:
            kwargs["Range"] = f"bytes=0-{PROBE_BYTES - 1}"
        if if_none_match is not None:
            kwargs["IfNoneMatch"] = if_none_match
        elif if_modified_since is not None:
            kwargs["IfModifiedSince"] = datetime.datetime.fromtimestamp(int(if_modified_since), tz=datetime.timezone.utc)
        if version_id is not None:
            kwargs["VersionId"] = version_id
        missing = _MISSING_CODES + (_VERSION_MISSING_CODES if version_id is not None else ())
        with _errors("download", bucket, key, expected=("304", *missing)) as seen:
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
        last_modified = resp["LastModified"].timestamp()
        return Body(
            resp["ETag"], _object_size(resp), last_modified, _encrypted(resp), resp["Body"], ranged=bool(resp.get("ContentRange")),
            version_id=resp.get("VersionId"), checksummed=_checksum_checked(resp),
        )  # fmt: skip

    def fetch(self, body: Body, bucket: str, key: str, dest: str, *, progress: bool | None = None) -> int:
        """Write the whole object whose first bytes are ``body`` to the file ``dest``, checked.

        A small object (or one asked for ``whole``) is complete in ``body``; one
        below :data:`MULTIPART_THRESHOLD` gets its rest in one more GET of the
        same version (IfMatch); a large one goes through s3transfer, told the
        size and ETag so that it sends no HEAD and every part carries IfMatch.
        A progress bar is shown for a large one where ``progress`` (default:
        on a terminal or in a notebook) says so.

        Every answer's bytes are counted against what S3 said the object holds
        (a body cut short but framed as complete is caught here); the ETag is
        checked on the bytes as they stream past: an MD5 one directly, a
        multipart one part by part when the part size follows from the size
        and the number of parts (s3transfer's, as s3bp, boto3 and the AWS CLI
        upload); else the file is checked afterwards (see :meth:`_check_parts`).
        botocore checks S3's checksum where S3 sends one (whole-object answers only);
        a whole object in one answer whose full-object checksum botocore checks
        (``body.checksummed``, as for s3bp's own uploads) is not hashed again:
        its bytes are only counted.

        Returns
        -------
        int
            The part size that reproduced a multipart ETag; 0 for any other ETag, or when the ETag was not hashed.

        Raises
        ------
        DownloadError
            When bytes are missing or do not match the ETag (``dest`` is then to be discarded).
        """
        where = f"s3://{bucket}/{key}"
        same = {"VersionId": body.version_id} if body.version_id is not None else {}  # the rest comes from the same version
        checksummed = body.checksummed and not body.ranged  # all its bytes are in this one answer, checked by botocore
        etag_of, part_size = (None, 0) if checksummed else _streamed_check(body)
        with _errors("download", bucket, key):
            if body.size >= MULTIPART_THRESHOLD and body.ranged:
                body.stream.read()  # drain it: the connection goes back to the pool
                received = _Received()
                with bar(progress, body.size, 0, os.path.basename(dest).split("-", 2)[-1]) as tick:
                    subscribers = [_known_object(body.size, body.etag), received] + ([_progress(tick)] if wanted(progress) else [])
                    self._transfer().download(bucket, key, dest, extra_args={"ChecksumMode": "ENABLED", **same}, subscribers=subscribers).result()
                _check_length(where, "received", received.total, body.size)
                _check_length(where, "written", os.path.getsize(dest), body.size)
                got = None
                if part_size == 0 and etag_of is not None:  # s3transfer wrote the parts in any order: hash the file
                    with open(dest, "rb") as done:
                        got = etag_of(iter(lambda: done.read(_CHUNK), b""))
                else:  # a multipart ETag: the parts are hashed on several threads
                    etag_of = None
            else:
                shown = progress if body.size >= _BAR_FROM else False
                # a fresh name: created here, never through a link someone put there
                with open(dest, "xb") as out, bar(shown, body.size, 0, os.path.basename(dest).split("-", 2)[-1]) as tick:

                    def chunks() -> Iterator[bytes]:
                        yield from _written(body.stream, out, tick)
                        _check_length(where, "received", out.tell(), min(body.size, PROBE_BYTES) if body.ranged else body.size)
                        if out.tell() < body.size:
                            rest = self.client.get_object(
                                Bucket=bucket, Key=key, Range=f"bytes={out.tell()}-", IfMatch=body.etag, ChecksumMode="ENABLED", **same
                            )
                            yield from _written(rest["Body"], out, tick)
                            _check_length(where, "received", out.tell(), body.size)

                    got = None
                    if etag_of is not None:
                        got = etag_of(chunks())
                    else:
                        for _ in chunks():  # botocore checks the checksum when the body is read to its end
                            pass
            if checksummed:
                return 0
            if etag_of is None:
                return self._check_parts(body, bucket, key, dest)
            if got is not None and got.strip('"') != body.etag.strip('"').lower():
                if part_size:  # parts of another size than s3transfer's, or corrupted: S3 tells the parts' sizes
                    return self._check_parts(body, bucket, key, dest, guessed=True)
                raise DownloadError(
                    f"Download of s3://{bucket}/{key} was corrupted in transit (MD5 {got} does not "
                    f"match ETag {body.etag}); the local file was left as it was. Try again; if it persists, check proxies on the way."
                )
        return part_size

    def _check_parts(self, body: Body, bucket: str, key: str, dest: str, *, guessed: bool = False) -> int:
        """Check the file ``dest`` against a multipart ETag; return the part size that reproduced it (0: no such ETag).

        The part size is first taken to be s3transfer's for this size (what
        s3bp, boto3 and the AWS CLI upload with), which costs no request; else
        S3 tells part 1's size (a HEAD), and if the parts differ in size, every
        part's. Parts whose sizes cannot be learnt leave the check to the byte
        counts, with a warning. ``guessed``: s3transfer's part size was tried already.
        """
        count = etag_parts(body.etag, body.encrypted)
        if count is None:
            return 0
        want = body.etag.strip('"').lower()

        def reproduces(part_size: int | list[int]) -> bool:
            if isinstance(part_size, int):
                return file_multipart_etag(dest, part_size).strip('"') == want
            with open(dest, "rb") as done:
                return multipart_etag(iter(lambda: done.read(_CHUNK), b""), part_size).strip('"') == want

        if count == 1:
            if not guessed and reproduces(max(body.size, 1)):
                return body.size
        else:
            guess = _upload_part_size(body.size)
            if not guessed and parts_for(body.size, guess) == count and reproduces(guess):
                return guess
            first = self._part_length(bucket, key, 1, body.version_id)
            uniform = parts_for(body.size, first) == count  # then the parts are first, first, ..., the rest
            if uniform and first != guess and reproduces(first):
                return first
            lengths = [first]
            if first > 0:
                with concurrent.futures.ThreadPoolExecutor(max_workers=min(count - 1, 10)) as pool:
                    lengths += pool.map(lambda n: self._part_length(bucket, key, n, body.version_id), range(2, count + 1))
            if min(lengths) <= 0 or sum(lengths) != body.size:
                logging.getLogger("s3bp").warning(
                    "s3bp: cannot check s3://%s/%s against its multipart ETag (the store gave no part sizes); its length was checked",
                    bucket, key,
                )  # fmt: skip
                return 0
            if not (uniform and lengths[:-1] == [first] * (count - 1)) and reproduces(lengths):
                return 0  # parts of different sizes: no one part size describes them
        raise DownloadError(
            f"Download of s3://{bucket}/{key} was corrupted in transit (the MD5s of its parts do not give its ETag "
            f"{body.etag}); the local file was left as it was. Try again; if it persists, check proxies on the way."
        )

    def _part_length(self, bucket: str, key: str, number: int, version_id: str | None = None) -> int:
        """The size of part ``number`` of the object (a HEAD with PartNumber); 0 when the store refuses to tell.

        No IfMatch: moto compares it with the part's own ETag and answers 412. A
        version replaced since the download can only make the check fail, not pass.
        """
        from botocore.exceptions import ClientError

        try:
            same = {"VersionId": version_id} if version_id is not None else {}
            return int(self.client.head_object(Bucket=bucket, Key=key, PartNumber=number, **same)["ContentLength"])
        except ClientError:  # a store without PartNumber (400, 416, 501, ...)
            return 0

    def put(
        self, bucket: str, key: str, source: str, size: int, extra: dict[str, Any], *, if_match: str | None = None
    ) -> Stored | Refused | Replaced:
        """Upload the file ``source`` (in parts if large); with ``if_match``, only over that version.

        Objects sent in parts cannot carry the condition (s3transfer does not
        send it): the caller checks with :meth:`head` first.
        """
        with _errors("upload", bucket, key, expected=_REFUSAL_CODES if if_match else ()) as seen:
            if size < MULTIPART_THRESHOLD:
                condition = {"IfMatch": if_match} if if_match is not None else {}
                with open(source, "rb") as body:
                    resp = self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra, **condition)
                    return Stored(resp["ETag"], resp.get("VersionId"))
            try:
                self._transfer().upload(source, bucket, key, extra_args=extra).result()
            except RuntimeError:
                # The interpreter began exiting mid-upload: its thread pools now refuse
                # work ("cannot schedule new futures"), so send the parts from this thread.
                self._transfer(threaded=False).upload(source, bucket, key, extra_args=extra).result()
            head = self.head(bucket, key)
            if not isinstance(head, Head):
                return Replaced("")  # deleted right after our parts landed
            # This ETag came from a HEAD after the upload: another writer's version may have replaced ours meanwhile.
            return Replaced(head.etag) if holds(head, source, size) is False else Stored(head.etag, head.version_id)
        return Refused(seen.code)

    def honours_conditions(self, bucket: str, beside: str, *, wait: float | None = None) -> bool | None:
        """Whether the store refuses a PUT whose ``IfMatch`` does not hold (some S3-compatible stores ignore it).

        Sends one conditional PUT of an empty probe object that does not exist,
        beside the key ``beside`` (where the caller may write): a store that
        honours the condition refuses it (404 or 412); one that answers 501
        cannot do conditions; one that stores it ignores them (the probe is
        then deleted). The probe runs in a background thread, and the answer
        is awaited at most ``wait`` seconds (:data:`PROBE_WAIT` by default):
        ``None`` means the store has not answered yet (callers that ask while
        that probe is still out wait for the same deadline; the next call after
        a late answer gets it at once).
        """
        with self._lock:
            if self._probe is None:
                probe: concurrent.futures.Future[bool] = concurrent.futures.Future()
                self._probe = (probe, time.monotonic())
                threading.Thread(target=self._run_probe, args=(probe, bucket, beside), name="s3bp-probe", daemon=True).start()
            probe, started = self._probe
        try:
            return probe.result(timeout=max(0.0, started + (PROBE_WAIT if wait is None else wait) - time.monotonic()))
        except concurrent.futures.TimeoutError:
            return None
        finally:
            with self._lock:
                if probe.done() and self._probe is not None and self._probe[0] is probe:
                    self._probe = None  # answered (or failed): a later call asks again

    def _run_probe(self, probe: concurrent.futures.Future[bool], bucket: str, beside: str) -> None:
        """Send the probe and settle ``probe`` with its answer (or its error)."""
        try:
            key = f"{beside}.s3bp-probe-{uuid.uuid4().hex}"
            if len(key.encode("utf-8", "surrogatepass")) > 1024:
                key = f".s3bp-probe-{uuid.uuid4().hex}"
            answer = self.put(bucket, key, os.devnull, 0, {}, if_match='"' + "0" * 32 + '"')
            if not isinstance(answer, Refused):
                self.delete(bucket, key)
                probe.set_result(False)
            else:
                probe.set_result(answer.code != "501")
        except BaseException as exc:  # handed to the caller, which treats the answer as unknown
            probe.set_exception(exc)

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> Head | Missing:
        """The object's (or one version's) ETag, size and LastModified, or :class:`Missing`."""
        same = {"VersionId": version_id} if version_id is not None else {}
        missing = _MISSING_CODES + (_VERSION_MISSING_CODES if version_id is not None else ())
        with _errors("check", bucket, key, expected=missing) as seen:
            resp = self.client.head_object(Bucket=bucket, Key=key, **same)
            settings = tuple((k, resp[k]) for k in HEAD_SETTINGS if k in resp)
            return Head(
                resp["ETag"], int(resp["ContentLength"]), resp["LastModified"].timestamp(), _encrypted(resp), settings,
                version_id=resp.get("VersionId"),
            )  # fmt: skip
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

    # -- versions ----------------------------------------------------------------

    def list_versions(self, bucket: str, prefix: str) -> VersionListing:
        """Every version and delete marker of the keys under ``prefix`` (one ListObjectVersions per 1000), newest first per key."""
        found: list[ObjectVersion] = []
        server_time = 0.0
        with _errors("list the versions of", bucket, prefix):
            for page in self.client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
                if not server_time:
                    server_time = _server_time(page)
                for v in page.get("Versions", ()):
                    found.append(
                        ObjectVersion(v["Key"], str(v.get("VersionId") or "null"), v["LastModified"].timestamp(), int(v.get("Size", 0)),
                                      v.get("ETag", ""), bool(v.get("IsLatest")), False)
                    )  # fmt: skip
                for m in page.get("DeleteMarkers", ()):
                    found.append(
                        ObjectVersion(m["Key"], str(m.get("VersionId") or "null"), m["LastModified"].timestamp(), 0, "",
                                      bool(m.get("IsLatest")), True)
                    )  # fmt: skip
        # botocore parses versions and markers into two lists: put them back in S3's order (newest first per key).
        found.sort(key=lambda v: (v.key, not v.is_latest, -int(v.last_modified)))
        return VersionListing(tuple(found), server_time)

    def copy_version(
        self, bucket: str, key: str, version_id: str, *, if_match: str | None = None, if_none_match: bool = False
    ) -> Stored | Refused | Missing:
        """Make a copy of version ``version_id`` the object's latest version, server-side; only over ``if_match`` when given.

        ``if_none_match``: only if the object has no current version. A store
        that cannot do the condition (501) gets the copy without it: the caller
        checks with :meth:`head` first. Objects over 5 GiB are copied in parts.
        """
        source = {"Bucket": bucket, "Key": key, "VersionId": version_id}
        condition: dict[str, str] = {"IfMatch": if_match} if if_match is not None else {"IfNoneMatch": "*"} if if_none_match else {}
        expected = _REFUSAL_CODES + _VERSION_MISSING_CODES + ("NoSuchKey", "InvalidRequest")
        for attempt in (condition, {}):
            with _errors("restore", bucket, key, expected=expected) as seen:
                resp = self.client.copy_object(Bucket=bucket, Key=key, CopySource=source, **attempt)
                return Stored(resp["CopyObjectResult"]["ETag"], resp.get("VersionId"))
            if seen.code == "501" and attempt:
                continue
            if seen.code == "InvalidRequest":  # larger than CopyObject takes (5 GiB): in parts, through s3transfer
                with _errors("restore", bucket, key):
                    self._transfer().copy(source, bucket, key).result()
                head = self.head(bucket, key)
                return Stored(head.etag, head.version_id) if isinstance(head, Head) else Missing()
            if seen.code in ("412", "409") or (seen.code == "404" and attempt):
                return Refused(seen.code)
            return Missing()  # no such version
        return Refused("501")

    def delete_versions(self, bucket: str, versions: Sequence[tuple[str, str]]) -> None:
        """Delete these (key, version id) pairs for good, up to 1000 per request."""
        for start in range(0, len(versions), 1000):
            batch = [{"Key": k, "VersionId": v} for k, v in versions[start : start + 1000]]
            with _errors("delete versions of", bucket, batch[0]["Key"]):
                resp = self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise _client_error(
                    str(first.get("Code", "")), None, f"delete version {first.get('VersionId')} of", bucket, f"s3://{bucket}/{first.get('Key')}"
                )

    def versioning(self, bucket: str) -> str:
        """The bucket's versioning status: ``"Enabled"``, ``"Suspended"``, or ``""`` when it was never turned on."""
        with _errors("read the versioning of", bucket, ""):
            return str(self.client.get_bucket_versioning(Bucket=bucket).get("Status") or "")

    def set_versioning(self, bucket: str, enabled: bool) -> None:
        """Turn the bucket's versioning on (or suspend it)."""
        status = "Enabled" if enabled else "Suspended"
        with _errors("set the versioning of", bucket, ""):
            self.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})

    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str] | Missing:
        """A small object's bytes and ETag (one GET), or :class:`Missing`."""
        with _errors("read", bucket, key, expected=_MISSING_CODES) as seen:
            resp = self.client.get_object(Bucket=bucket, Key=key)
            return resp["Body"].read(), resp["ETag"]
        assert seen.code
        return Missing()

    def put_bytes(self, bucket: str, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> Stored | Refused:
        """Write a small object, only over the version ``if_match`` names, or (``if_none_match``) only if there is none."""
        condition = {"IfMatch": if_match} if if_match is not None else {"IfNoneMatch": "*"} if if_none_match else {}
        with _errors("write", bucket, key, expected=_REFUSAL_CODES if condition else ()) as seen:
            resp = self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json", **condition)
            return Stored(resp["ETag"], resp.get("VersionId"))
        return Refused(seen.code)

    def check_bucket(self, bucket: str) -> None:
        """One HEAD request: return if ``bucket`` exists and may be used, else raise what is wrong.

        Raises
        ------
        BucketNotFoundError, AccessDeniedError, CredentialsError, EndpointError
        """
        with _errors("check", bucket, "", expected=_MISSING_CODES + ("NoSuchBucket",)):
            self.client.head_bucket(Bucket=bucket)
            return
        raise BucketNotFoundError(f"Bucket {bucket!r} does not exist on {self.endpoint}.").with_remedy(
            "Create it, or check its name and the endpoint_url and region settings.",
            f"Create it (e.g. `aws s3 mb s3://{bucket}`), or check its name and the endpoint and region in `s3bp config`.",
        )

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
    if isinstance(exc, (bex.FlexibleChecksumError, bex.IncompleteReadError, bex.ResponseStreamingError)):
        return DownloadError(
            f"Cannot {action} {where}: the data was corrupted in transit ({exc}); the local file was left as it was. "
            f"Try again; if it persists, check proxies on the way."
        )
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectionClosedError, bex.ReadTimeoutError, bex.ConnectTimeoutError)):
        return EndpointError(
            f"Cannot {action} {where}: the S3 endpoint could not be reached ({type(exc).__name__}). "
            f"Check the network and the endpoint_url setting."
        )
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return LocalFileError(
            exc.errno,
            f"Cannot {action} {where}: the local disk refused the bytes ({exc.strerror}); the old local file was kept. "
            f"Free space on {os.path.dirname(exc.filename) if exc.filename else 'the disk'} and try again.",
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


def _server_time(resp: dict[str, Any]) -> float:
    """The store's clock when it answered (its Date header), else this machine's."""
    import email.utils
    import time

    date = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return email.utils.parsedate_to_datetime(date).timestamp() if date else time.time()
    except (TypeError, ValueError):
        return time.time()


def _no_continue_when_empty(params: dict[str, Any], **kwargs: Any) -> None:
    """Send an empty PUT body without ``Expect: 100-continue``: there is nothing to hold back, and some servers
    (waitress, which serves moto in many set-ups) then wait for a body forever instead of answering."""
    from botocore.utils import determine_content_length

    headers = params.get("headers", {})
    if "Expect" in headers and determine_content_length(params.get("body")) == 0:
        del headers["Expect"]


def _object_size(resp: dict[str, Any]) -> int:
    """The whole object's size, from a ranged GET's Content-Range or else its Content-Length."""
    content_range = resp.get("ContentRange")
    if content_range and "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(resp["ContentLength"])


def _written(body: Any, out: Any, tick: Callable[[int], None]) -> Iterator[bytes]:
    """Each chunk of a response body, once it is written to the open file ``out`` and counted by ``tick``."""
    for chunk in body.iter_chunks(_CHUNK):
        out.write(chunk)
        tick(len(chunk))
        yield chunk


def _streamed_check(body: Body) -> tuple[Callable[[Iterable[bytes]], str] | None, int]:
    """How to compute the ETag of ``body``'s object from its bytes in order, and the part size that assumes (0: one MD5).

    (None, 0) when its bytes cannot tell: an encrypted object's ETag, another
    form, or parts whose size does not follow from the object's size (S3 is asked).
    """
    if md5_of_etag(body.etag, body.encrypted) is not None:
        return _md5_hex, 0
    count = etag_parts(body.etag, body.encrypted)
    if count is None:
        return None, 0
    part_size = max(body.size, 1) if count == 1 else _upload_part_size(body.size)
    if parts_for(body.size, part_size) != count:
        return None, 0
    return functools.partial(multipart_etag, part_size=part_size), part_size


def _checksum_checked(resp: dict[str, Any]) -> bool:
    """Whether botocore checks the body of this GetObject answer against a full-object checksum when it is read to its end.

    botocore wraps the body in a ``StreamingChecksumBody`` only when the
    answer has an ``x-amz-checksum-<algorithm>`` header it can compute and
    whose value is no composite one (``...-N``, a checksum of the parts'
    checksums); a ``ChecksumType`` other than FULL_OBJECT (a store that says
    COMPOSITE without the suffix) is not taken for one either.
    """
    from botocore.httpchecksum import StreamingChecksumBody

    return isinstance(resp.get("Body"), StreamingChecksumBody) and str(resp.get("ChecksumType") or "FULL_OBJECT") == "FULL_OBJECT"


def _md5_hex(chunks: Iterable[bytes]) -> str:
    """The MD5 hex digest of the bytes, in pieces."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def holds(head: Head, source: str, size: int) -> bool | None:
    """Whether the object ``head`` describes holds exactly the bytes of the file ``source`` (``size`` bytes).

    True or False where its size or its ETag tells: an MD5 (one part) or AWS's
    MD5 of part MD5s (in s3transfer's part size, as s3bp, boto3 and the AWS
    CLI upload); None where it cannot (an encrypted object's ETag, or one in
    another form).
    """
    if head.size != size:
        return False
    if head.encrypted:
        return None
    etag = head.etag.strip('"').lower()
    if md5_of_etag(head.etag) is not None:
        return file_md5(source) == etag
    if etag_parts(head.etag) is not None:
        return file_multipart_etag(source, _upload_part_size(size)).strip('"') == etag
    return None


def _encrypted(resp: dict[str, Any]) -> bool:
    """Whether an answer describes an object encrypted with SSE-KMS or SSE-C (its ETag is then no MD5)."""
    return str(resp.get("ServerSideEncryption", "")).startswith("aws:kms") or bool(resp.get("SSECustomerAlgorithm"))


def _check_length(where: str, what: str, got: int, want: int) -> None:
    """Raise :class:`DownloadError` unless ``got`` bytes are the ``want`` that S3's answers promised."""
    if got != want:
        how = "was cut short" if got < want else "brought more bytes than the object has"
        raise DownloadError(
            f"Download of {where} {how} ({what} {got} bytes where {want} were due); the local file was left as it was. "
            f"Try again; if it persists, check proxies on the way."
        )


def upload_part_size(size: int) -> int:
    """The part size s3transfer uploads a ``size``-byte object in (see :func:`_upload_part_size`)."""
    return _upload_part_size(size)


def _upload_part_size(size: int) -> int:
    """The part size s3transfer (so s3bp, boto3 and the AWS CLI, by default) uploads a ``size``-byte object in."""
    from boto3.s3.transfer import TransferConfig
    from s3transfer.utils import ChunksizeAdjuster

    return int(ChunksizeAdjuster().adjust_chunksize(TransferConfig().multipart_chunksize, size))


class _Received:
    """An s3transfer subscriber counting the bytes a download received (less those of retried parts)."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        with self._lock:
            self.total += bytes_transferred


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
