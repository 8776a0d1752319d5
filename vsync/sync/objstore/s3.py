"""An object store in a bucket of S3-compatible storage (``s3://BUCKET/PREFIX``).

The third backend of :mod:`vsync.sync.objstore`, through ``obstore`` (Rust's
object_store; docs/dependencies.md says why). Object ``name`` is the key
``PREFIX/name``. The storage runs nothing of ours and is trusted with nothing:
what it stores is sealed above (:mod:`vsync.sync.crypt`), and what it answers
is bounded here (a read never returns more than was asked, a listing holds at
most :data:`MAX_NAMES` valid names).

- write if absent: ``PUT`` with ``If-None-Match: *``; the storage refuses it
  (412) when the key exists, whoever wrote it.
- compare-and-swap: ``GET`` the object and its ETag, compare its bytes with
  ``old``, then ``PUT`` with ``If-Match: <that ETag>``; a writer that came in
  between changed the ETag, so the storage refuses the PUT (412) and the swap
  reports False (fault point ``objstore-before-swap`` lies between the two).
  Creating (``old`` None) is a write if absent.
- read a range: ``GET`` with ``Range: bytes=a-b``; a range past the end is
  ``b""``.
- delete: ``HEAD`` (was it there?), then ``DELETE``.

Errors become one line each: credentials refused (:class:`S3Refused`), a
missing bucket (:class:`S3BucketMissing`), the storage unreachable or failing
(:class:`S3Failed`), all exit 1. Requests that fail on the network are retried
a few times with backoff (obstore's retry), never for minutes.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, NoReturn

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store as _Client

from vsync.errors import StoppedError
from vsync.store import faults
from vsync.sync.objstore import ObjectMissing, check_name
from vsync.sync.objstore.s3config import S3Settings
from vsync.sync.url import RemoteURL

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

MAX_NAMES = 1 << 20
MAX_OBJECT = (1 << 30) + (1 << 20)  # a sealed git pack of 1 GiB, with its padding
MAX_SWAPPED = 64 * 1024 * 1024  # a ref read back for compare-and-swap
# obstore raises Python's FileNotFoundError for a missing object (and may raise other
# OSErrors), its own errors for the rest.
_MISSING = (NotFoundError, FileNotFoundError)
_FAILED = (BaseError, OSError)
_CODE = re.compile(r"<Code>([A-Za-z]{1,64})</Code>")


class S3Refused(StoppedError):
    pass


class S3BucketMissing(StoppedError):
    pass


class S3Failed(StoppedError):
    pass


_ENVIRONMENT = threading.Lock()


@contextlib.contextmanager
def _no_aws_environment() -> Iterator[None]:
    """The process environment without its ``AWS_*`` variables, while an obstore client
    is built: obstore reads them itself (an empty ``AWS_ENDPOINT_URL`` panics in Rust),
    and the settings must be exactly those :mod:`.s3config` chose."""
    with _ENVIRONMENT:
        saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        for key in saved:
            del os.environ[key]
        try:
            yield
        finally:
            os.environ.update(saved)


def _code(exc: BaseException) -> str | None:
    found = _CODE.search(str(exc))
    return found.group(1) if found else None


class S3Store:
    parallel_writes = 4  # packs a push uploads at once (one client serves every thread)

    def __init__(self, url: RemoteURL, settings: S3Settings) -> None:
        if url.kind != "s3":
            raise ValueError(f"not an s3:// URL: {url}")
        self.url = url
        self.settings = settings
        self.prefix = f"{url.path}/" if url.path else ""
        client_options: ClientConfig = {
            "allow_http": settings.endpoint is not None and settings.endpoint.startswith("http:"),
            "connect_timeout": timedelta(seconds=10),
            "timeout": timedelta(minutes=10),
        }
        retry: RetryConfig = {
            "max_retries": 3,
            "retry_timeout": timedelta(seconds=30),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=5),
                "base": 2,
            },
        }
        config: S3Config = {
            "region": settings.region,
            "access_key_id": settings.access_key_id,
            "secret_access_key": settings.secret_access_key,
            "virtual_hosted_style_request": False,
            "conditional_put": "etag",
        }
        if settings.endpoint is not None:
            config["endpoint"] = settings.endpoint
        if settings.session_token is not None:
            config["session_token"] = settings.session_token
        with _no_aws_environment():
            self.client = _Client(
                url.host, config=config, client_options=client_options, retry_config=retry
            )

    def close(self) -> None:
        pass

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _fail(self, exc: BaseException, doing: str) -> NoReturn:
        code = _code(exc)
        where = f"{self.url} at {self.settings.where}"
        if code == "NoSuchBucket":
            raise S3BucketMissing(
                f"the bucket '{self.url.host}' does not exist at {self.settings.where}; "
                "create it first (or check the endpoint)"
            ) from None
        if isinstance(
            exc, PermissionDeniedError | UnauthenticatedError | PermissionError
        ) or code in (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
        ):
            raise S3Refused(
                f"{where} refused the credentials ({code or 'access denied'}) while {doing}; "
                "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
            ) from None
        detail = code or str(exc).splitlines()[0][:200]
        raise S3Failed(f"{where} failed while {doing}: {detail}") from None

    def list(self, prefix: str) -> list[str]:
        parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if parent:
            check_name(parent)
        names: list[str] = []
        try:
            pages = obstore.list(self.client, prefix=(self.prefix + parent) or None)
            for page in pages:
                for meta in page:
                    path = meta["path"]
                    if not path.startswith(self.prefix):
                        continue
                    name = path[len(self.prefix) :]
                    if name.startswith(prefix):
                        names.append(check_name(name))
                if len(names) > MAX_NAMES:
                    raise S3Failed(f"{self.url} lists more than {MAX_NAMES} objects")
        except _FAILED as exc:
            self._fail(exc, f"listing {prefix or 'the objects'}")
        return sorted(names)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        key = self._key(name)
        want = MAX_OBJECT if length is None else length
        if want == 0:
            return b""
        try:
            data = bytes(obstore.get_range(self.client, key, start=offset, length=want))
        except _MISSING as exc:
            if _code(exc) == "NoSuchBucket":
                self._fail(exc, f"reading {name}")
            raise ObjectMissing(name) from None
        except _FAILED as exc:
            if _code(exc) != "InvalidRange":
                self._fail(exc, f"reading {name}")
            data = self._past_the_end(name, key, offset)
        if len(data) > want:
            raise S3Failed(f"{self.url} sent more of {name} than was asked")
        return data

    def _past_the_end(self, name: str, key: str, offset: int) -> bytes:
        """``b""`` when ``offset`` is at or past the end of ``name`` (S3 answers 416)."""
        try:
            size = obstore.head(self.client, key)["size"]
        except _MISSING:
            raise ObjectMissing(name) from None
        except _FAILED as exc:
            self._fail(exc, f"reading {name}")
        if offset < size:
            raise S3Failed(f"{self.url} refused a range of {name} that it holds")
        return b""

    def write_if_absent(self, name: str, data: bytes | bytearray) -> bool:
        key = self._key(name)
        try:
            obstore.put(self.client, key, data, mode="create", use_multipart=False)
        except (AlreadyExistsError, PreconditionError):
            return False
        except _FAILED as exc:
            self._fail(exc, f"writing {name}")
        return True

    def compare_and_swap(self, name: str, old: bytes | None, new: bytes) -> bool:
        if old is None:
            return self.write_if_absent(name, new)
        key = self._key(name)
        try:
            got = obstore.get(self.client, key, options={"range": (0, MAX_SWAPPED + 1)})
            etag = got.meta["e_tag"]
            current = bytes(got.bytes())
            if len(current) > MAX_SWAPPED or etag is None:
                return False
        except _MISSING as exc:
            if _code(exc) == "NoSuchBucket":
                self._fail(exc, f"reading {name}")
            return False
        except _FAILED as exc:
            self._fail(exc, f"reading {name}")
        if current != old:
            return False
        faults.point("objstore-before-swap")
        try:
            obstore.put(self.client, key, new, mode={"e_tag": etag}, use_multipart=False)
        except (PreconditionError, AlreadyExistsError, *_MISSING):
            return False
        except _FAILED as exc:
            self._fail(exc, f"replacing {name}")
        return True

    def delete(self, name: str) -> bool:
        key = self._key(name)
        try:
            obstore.head(self.client, key)
        except _MISSING:
            return False
        except _FAILED as exc:
            self._fail(exc, f"reading {name}")
        try:
            obstore.delete(self.client, key)
        except _FAILED as exc:
            self._fail(exc, f"deleting {name}")
        return True
