"""The artifact store in an S3-compatible bucket, so machines that share no disk share one store.

Objects live at `s3://BUCKET/PREFIX/sha256/ab/cdef...`, named by their SHA-256 like the local
store's files. Readers still get local paths: `path_for` fetches an object into a cache folder
(keyed by digest, the local store's layout), hashes it on the way and refuses bytes that do not
match their name. Writers hash while writing a temp file, upload it with its SHA-256 as the S3
checksum (a server that supports checksums refuses mismatching bytes), then confirm with a HEAD
that the object is there with the right size before anything is cached or returned: an artifact
that is not confirmed in the bucket is never handed to the ledger as stored.

Every network failure, refusal or missing credential becomes one `StoreUnavailable` naming the
bucket and endpoint; it is not an `ArtifactError`, so no caller can take it for "missing".

Credentials and region come from boto3's usual sources ($AWS_ACCESS_KEY_ID and
$AWS_SECRET_ACCESS_KEY, $AWS_PROFILE, ~/.aws, an instance role); custody never stores them. The
endpoint of a non-AWS server comes from the home's config (`artifacts_endpoint`) or
$AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from custody.store import CHUNK, ArtifactError, ArtifactStore, StoreUnavailable

# One PUT carries at most 5 GiB; larger artifacts go up in parts (checksummed part by part).
SINGLE_PUT_LIMIT = 4 << 30
PART_SIZE = 256 << 20
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REFUSED = {"AccessDenied", "Forbidden", "403", "AllAccessDisabled", "AccountProblem"}
_BAD_KEYS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired"}
_NO_BUCKET = {"NoSuchBucket"}
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket[/prefix]`; ValueError saying what is wrong otherwise."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not an s3:// URL")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(f"{url!r}: {bucket!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)")
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(f"{url!r}: the prefix may not have empty, '.' or '..' parts")
    return bucket, prefix


class S3ArtifactStore(ArtifactStore):
    """Artifacts in `url` (s3://bucket/prefix) on `endpoint`, read through the folder `cache`."""

    single_put_limit = SINGLE_PUT_LIMIT
    part_size = PART_SIZE

    def __init__(self, url: str, cache: Path, endpoint: str | None = None) -> None:
        super().__init__(cache)
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self._client: Any = None

    @property
    def location(self) -> str:
        return f"{self.url} at {self.endpoint}" if self.endpoint else self.url

    def key(self, digest: str) -> str:
        path = self.local_path(digest)
        name = f"sha256/{path.parent.name}/{path.name}"
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session()
            self._client = session.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=session.region_name or "us-east-1",
                config=Config(
                    connect_timeout=5,
                    read_timeout=60,
                    retries={"mode": "standard", "max_attempts": 3},
                    # a self-hosted server (SeaweedFS, MinIO, Ceph) rarely has per-bucket host names
                    s3={"addressing_style": "path"} if self.endpoint else {},
                ),
            )
        return self._client

    # -- errors ----------------------------------------------------------------------------
    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn what boto3 raises into one StoreUnavailable line that says what to check."""
        from boto3.exceptions import S3UploadFailedError
        from botocore import exceptions as bx

        where = self.location
        try:
            yield
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError) as exc:
            raise StoreUnavailable(
                f"artifact store {where} is unreachable ({doing}: {type(exc).__name__}); check the endpoint "
                "(artifacts_endpoint in the home's config.toml, or $AWS_ENDPOINT_URL) and the network"
            ) from None
        except bx.ReadTimeoutError:
            raise StoreUnavailable(f"artifact store {where} did not answer in time ({doing}); try again") from None
        except (bx.NoCredentialsError, bx.PartialCredentialsError):
            raise StoreUnavailable(
                f"artifact store {where}: no S3 credentials ({doing}); set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            ) from None
        except bx.ClientError as exc:
            raise self._refusal(exc, doing) from None
        except S3UploadFailedError as exc:
            cause = exc.__context__
            if isinstance(cause, bx.ClientError):
                raise self._refusal(cause, doing) from None
            raise StoreUnavailable(f"artifact store {where}: {doing} failed ({exc})") from None
        except bx.BotoCoreError as exc:
            raise StoreUnavailable(f"artifact store {where}: {doing} failed ({exc})") from None

    def _refusal(self, exc: Any, doing: str) -> StoreUnavailable:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        where = self.location
        if code in _REFUSED and doing.startswith(("writing", "erasing")):
            return StoreUnavailable(
                f"artifact store {where} refused {doing} ({code}): the bucket is read-only to these credentials "
                "or a policy forbids it; use credentials that may write (AWS_ACCESS_KEY_ID / AWS_PROFILE)"
            )
        if code in _REFUSED:  # a HEAD's bare 403 cannot tell wrong keys from missing permission
            return StoreUnavailable(
                f"artifact store {where} refused {doing} ({code}): these credentials may not read the bucket; "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's policy"
            )
        if code in _BAD_KEYS:
            return StoreUnavailable(
                f"artifact store {where} rejected the credentials ({code}); check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        if code in _NO_BUCKET:
            return StoreUnavailable(f"artifact store {where}: bucket {self.bucket!r} does not exist; create it first")
        message = str(error.get("Message", "")).strip()
        return StoreUnavailable(f"artifact store {where}: {doing} failed ({code}{': ' + message if message else ''})")

    # -- the bucket ------------------------------------------------------------------------
    def check_bucket(self) -> None:
        """Raise StoreUnavailable unless the bucket can be reached with these credentials."""
        with self._errors("reaching the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except Exception as exc:
                # HEAD has no body, so a missing bucket is a bare 404
                if getattr(exc, "response", {}).get("Error", {}).get("Code") in _NOT_FOUND:
                    raise StoreUnavailable(
                        f"artifact store {self.location}: bucket {self.bucket!r} does not exist; create it first"
                    ) from None
                raise

    def _head(self, digest: str) -> dict | None:
        """The object's metadata, or None if there is no such object."""
        from botocore.exceptions import ClientError

        with self._errors(f"looking up sha256:{digest[:12]}"):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                    return None
                raise

    def _fetch(self, digest: str, target: Path) -> bool:
        """Download into the cache, hashing on the way; False if the object is not there."""
        from botocore.exceptions import ClientError

        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        tmp = Path(tmp_name)
        try:
            hasher = hashlib.sha256()
            with self._errors(f"reading sha256:{digest[:12]}"), os.fdopen(fd, "wb") as out:
                try:
                    body = self.client.get_object(Bucket=self.bucket, Key=self.key(digest))["Body"]
                except ClientError as exc:
                    if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                        return False
                    raise
                for chunk in body.iter_chunks(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if hasher.hexdigest() != digest:
                raise ArtifactError(
                    f"artifact {digest} in {self.location} is corrupted: its bytes no longer match its digest"
                )
            ArtifactStore._publish(self, tmp, digest)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    # -- the store's interface -----------------------------------------------------------
    def path_for(self, digest: str) -> Path:
        """The cached copy, fetched and verified if needed; a path that does not exist if the
        bucket has no such object (an erasure elsewhere also drops this machine's copy)."""
        path = self.local_path(digest)
        digest = path.parent.name + path.name
        head = self._head(digest)
        if head is None:
            self._drop(path)
        elif not path.exists() or path.stat().st_size != head.get("ContentLength"):
            self._drop(path)
            self._fetch(digest, path)
        return path

    def exists(self, digest: str) -> bool:
        path = self.local_path(digest)
        return self._head(path.parent.name + path.name) is not None

    def verify(self, digest: str) -> bool:
        """Whether the bucket holds the artifact with bytes that hash to its name (reads it all)."""
        from botocore.exceptions import ClientError

        path = self.local_path(digest)
        digest = path.parent.name + path.name
        hasher = hashlib.sha256()
        with self._errors(f"reading sha256:{digest[:12]}"):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self.key(digest))["Body"]
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                    return False
                raise
            for chunk in body.iter_chunks(CHUNK):
                hasher.update(chunk)
        return hasher.hexdigest() == digest

    def erase(self, digest: str) -> bool:
        path = self.local_path(digest)
        digest = path.parent.name + path.name
        if self._head(digest) is None:
            self._drop(path)
            return False
        with self._errors(f"erasing sha256:{digest[:12]}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))
        self._drop(path)
        return True

    def _publish(self, tmp: Path, digest: str) -> None:
        """Upload (unless the bucket already has it), confirm, then keep the file as the cached copy."""
        size = tmp.stat().st_size
        head = self._head(digest)
        if head is None or head.get("ContentLength") != size:
            self._upload(tmp, digest, size)
            head = self._head(digest)
            if head is None or head.get("ContentLength") != size:
                raise StoreUnavailable(
                    f"artifact store {self.location}: the upload of sha256:{digest[:12]} was not confirmed "
                    f"(the bucket reports {'no object' if head is None else head.get('ContentLength')} "
                    f"instead of {size} bytes); nothing was recorded, try again"
                )
        ArtifactStore._publish(self, tmp, digest)

    def _upload(self, tmp: Path, digest: str, size: int) -> None:
        with self._errors(f"writing sha256:{digest[:12]}"):
            if size <= self.single_put_limit:
                with open(tmp, "rb") as body:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=self.key(digest),
                        Body=body,
                        ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
                        Metadata={"sha256": digest},
                    )
            else:
                from boto3.s3.transfer import TransferConfig

                self.client.upload_file(
                    str(tmp),
                    self.bucket,
                    self.key(digest),
                    ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": digest}},
                    Config=TransferConfig(
                        multipart_threshold=self.single_put_limit + 1, multipart_chunksize=self.part_size
                    ),
                )

    @staticmethod
    def _drop(path: Path) -> None:
        path.unlink(missing_ok=True)
