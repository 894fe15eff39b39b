"""Where workers read images: the workspace's blob folder (on a file system every worker
mounts, at the workspace's path or another), or an S3-compatible object store
(`s3://bucket/prefix`: AWS S3, MinIO, Ceph...), which the job's driver fills with the
images it sends before it sends them. Objects are content-addressed as the blob folder
is, `<prefix>/<first two hex>/<sha256><suffix>`: an image already there is not sent
again, and a worker checks what it reads against the SHA-256 in its name.

Credentials are each machine's own (the AWS configuration chain: environment, shared
files, instance role); the endpoint of a store that is not AWS is named with the job
(`--s3-endpoint`) or by `AWS_ENDPOINT_URL` on each machine."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from labelpilot.errors import LabelPilotError
from labelpilot.extras import require_boto3
from labelpilot.store.blobs import BlobStore

S3 = "s3://"
THREADS = 8  # requests in flight when checking and sending images
HEX = frozenset("0123456789abcdef")
SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


class BlobLocationError(LabelPilotError):
    """The location cannot be used at all (unreachable, no such bucket, credentials
    refused): the job fails with it, rather than every image one by one."""


class BlobReader(Protocol):
    def load_image(self, row: Any) -> np.ndarray:
        """The image (BGR) of an image row or reference: `sha256`, `suffix`, `id` and
        `file_name`; LabelPilotError when it is missing or does not decode."""


def open_location(url: str, endpoint: str | None = None) -> BlobReader:
    """The reader of `url`: `s3://bucket/prefix`, else a blob folder's path."""
    if url.startswith(S3):
        return S3Blobs(url, endpoint)
    return BlobStore(Path(url))


def check_url(url: str) -> None:
    """A usable location: `s3://bucket[/prefix]` or an absolute folder path."""
    if url.startswith(S3):
        bucket = url[len(S3):].split("/", 1)[0]
        if not bucket:
            raise LabelPilotError(f"{url!r} names no bucket",
                                  hint="write it as s3://BUCKET or s3://BUCKET/PREFIX")
    elif "://" in url:
        raise LabelPilotError(f"{url!r} is not a location workers read images from",
                              hint="use s3://BUCKET/PREFIX or the path of the blob folder "
                                   "as the workers mount it")
    elif not Path(url).is_absolute():
        raise LabelPilotError(f"the blob folder {url!r} is not an absolute path",
                              hint="name it as the workers mount it, e.g. /mnt/ws/blobs")


class S3Blobs:
    def __init__(self, url: str, endpoint: str | None = None) -> None:
        check_url(url)
        boto3 = require_boto3()  # the [s3] extra
        from botocore.config import Config

        self.url = url.rstrip("/")
        self.bucket, _, prefix = url[len(S3):].partition("/")
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.client = boto3.client(
            "s3", endpoint_url=endpoint,
            config=Config(retries={"max_attempts": 5, "mode": "standard"},
                          max_pool_connections=THREADS * 2, connect_timeout=10,
                          read_timeout=60))

    def key(self, sha256: str, suffix: str) -> str:
        if len(sha256) != 64 or set(sha256) - HEX or not SUFFIX.match(suffix):
            raise LabelPilotError(f"{sha256!r}{suffix!r} is not a blob's name")
        name = f"{sha256[:2]}/{sha256}{suffix}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _failed(self, e: Exception, doing: str) -> BlobLocationError:
        where = f"{self.url}{f' at {self.endpoint}' if self.endpoint else ''}"
        code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
        if code == "NoSuchBucket" or (code == "404" and doing == "find the bucket"):
            return BlobLocationError(f"there is no bucket {self.bucket!r} ({where})",
                                     hint=f"create it (aws s3 mb s3://{self.bucket}) or "
                                          "check the blob location")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return BlobLocationError(f"the object store refused to {doing} in {where} "
                                     f"({code})", hint="check this machine's S3 credentials "
                                     "(AWS_ACCESS_KEY_ID, AWS_PROFILE or its role)")
        return BlobLocationError(f"could not {doing} in {where}: {e}",
                                 hint="check the endpoint (--s3-endpoint or "
                                      "AWS_ENDPOINT_URL) and that the store is up")

    def load_image(self, row: Any) -> np.ndarray:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(row.sha256, row.suffix)
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise LabelPilotError(f"image {row.id} ({row.file_name}) is not in {self.url}",
                                      hint="run the job again: its driver sends the "
                                           "images the store lacks") from None
            raise self._failed(e, "read an image") from None
        except BotoCoreError as e:
            raise self._failed(e, "read an image") from None
        if hashlib.sha256(data).hexdigest() != row.sha256:
            raise LabelPilotError(f"image {row.id} ({row.file_name}) in {self.url} is not "
                                  f"the image stored ({key} holds other content)",
                                  hint="delete the object; the next job sends it again")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise LabelPilotError(f"image {row.id} ({row.file_name}) does not decode",
                                  hint="re-import the file, then run the job again")
        return image

    def _has(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._failed(e, "look for an image") from None
        except BotoCoreError as e:
            raise self._failed(e, "look for an image") from None

    def push(self, source: BlobStore, refs: Sequence[Any]) -> int:
        """Send the images of `refs` the store lacks from the blob folder `source`; how
        many were sent. A blob missing from the folder is left for its worker to report."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as e:
            raise self._failed(e, "find the bucket") from None
        wanted = {self.key(r.sha256, r.suffix): r for r in refs}

        def send(key: str) -> int:
            if self._has(key):
                return 0
            r = wanted[key]
            path = source.path(r.sha256, r.suffix)
            if not path.is_file():
                return 0
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
            except (ClientError, BotoCoreError) as e:
                raise self._failed(e, "send an image") from None
            return 1

        with ThreadPoolExecutor(THREADS) as pool:
            return sum(pool.map(send, wanted))
