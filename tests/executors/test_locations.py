"""Workers reading images from an S3-compatible object store (moto's server on 127.0.0.1):
the driver sends what the store lacks, once; a worker reads by content and checks it;
a missing or altered object fails its image, an unusable store fails the job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from labelpilot.errors import LabelPilotError
from labelpilot.executors import ExecutorSpec, ImageRef, plan_work
from labelpilot.executors.locations import BlobLocationError, S3Blobs
from labelpilot.executors.work import Failure, Worker
from labelpilot.models.catalogue import install
from labelpilot.store import repo
from labelpilot.transfer import import_dataset
from labelpilot.workspace import Workspace


def detect_workspace(path: Path, shared: Path, count: int) -> tuple[Workspace, list[ImageRef]]:
    images = path.parent / f"{path.name}-images"
    images.mkdir(parents=True)
    for f in sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))[:count]:
        (images / f.name).write_bytes(f.read_bytes())
    ws = Workspace.create(path, task="detect", labels=[])
    import_dataset(ws, images, format="images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    with ws.engine.connect() as conn:
        refs = [ImageRef.of(r) for r in repo.list_images(conn)]
    return ws, refs


def s3_worker(ws: Workspace, url: str, endpoint: str) -> Worker:
    work = plan_work(ws, "yolox-nano", "prelabel")
    return Worker(type(work)(**{**work.__dict__, "blobs": url, "blob_endpoint": endpoint}))


def test_workers_read_what_the_driver_sent_by_content(tmp_path: Path, shared: Path,
                                                      s3_endpoint: str, bucket: str) -> None:
    ws, refs = detect_workspace(tmp_path / "ws", shared, 5)
    local = Worker(plan_work(ws, "yolox-nano", "prelabel"))
    want = [local.run(r) for r in refs]
    url = f"s3://{bucket}/teams/a"
    store = S3Blobs(url, s3_endpoint)
    assert store.push(ws.blobs, refs) == 5
    assert store.push(ws.blobs, refs) == 0  # content-addressed: nothing is sent twice
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"teams/a/{r.sha256[:2]}/{r.sha256}{r.suffix}" for r in refs)
    # the workers read the store, not the folder: the folder is gone
    ws.blobs.root.rename(tmp_path / "moved")
    worker = s3_worker(ws, url, s3_endpoint)
    assert [worker.run(r) for r in refs] == want
    assert all(want)
    # an object that is not the image its name says, and one that is missing, fail
    # their images and say why
    client.put_object(Bucket=bucket, Key=keys[0], Body=b"not the image")
    client.delete_object(Bucket=bucket, Key=keys[1])
    by_key = {f"teams/a/{r.sha256[:2]}/{r.sha256}{r.suffix}": r for r in refs}
    altered, missing = worker.run(by_key[keys[0]]), worker.run(by_key[keys[1]])
    assert isinstance(altered, Failure) and "holds other content" in altered.message
    assert isinstance(missing, Failure) and f"is not in {url}" in missing.message
    assert worker.run(by_key[keys[2]]) == want[refs.index(by_key[keys[2]])]
    ws.close()


def test_an_unusable_store_fails_the_job_not_each_image(tmp_path: Path, shared: Path,
                                                        s3_endpoint: str) -> None:
    ws, refs = detect_workspace(tmp_path / "ws", shared, 1)
    with pytest.raises(BlobLocationError, match="no bucket 'nowhere'") as e:
        S3Blobs("s3://nowhere/x", s3_endpoint).push(ws.blobs, refs)
    assert "aws s3 mb s3://nowhere" in (e.value.hint or "")
    with pytest.raises(BlobLocationError, match="no bucket 'nowhere'"):
        s3_worker(ws, "s3://nowhere/x", s3_endpoint).run(refs[0])
    ws.close()


@pytest.mark.parametrize(("spec", "message"), [
    ({"blobs": "s3:///prefix"}, "names no bucket"),
    ({"blobs": "gs://bucket"}, "not a location workers read images from"),
    ({"blobs": "relative/blobs"}, "not an absolute path"),
    ({"blobs": "/mnt/blobs", "s3_endpoint": "http://127.0.0.1:9000"}, "for a blob location in"),
    ({"blobs": "s3://b", "s3_endpoint": "127.0.0.1:9000"}, "must be an http"),
])
def test_what_a_blob_location_refuses(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(LabelPilotError, match=message):
        ExecutorSpec("ray", **spec)


def test_a_location_is_for_the_ray_executor_and_needs_boto3(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LabelPilotError, match="for the ray executor"):
        ExecutorSpec("local", blobs="s3://bucket")
    spec = ExecutorSpec("ray", blobs="s3://bucket/p", s3_endpoint="http://127.0.0.1:9000")
    assert ExecutorSpec.from_params(spec.params()) == spec
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if the extra were not installed
    with pytest.raises(LabelPilotError) as e:
        S3Blobs("s3://bucket")
    assert "labelpilot[s3]" in (e.value.hint or "")
