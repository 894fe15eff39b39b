"""Fixtures (a plugin of the root conftest): a local Ray cluster for the tests of the Ray
executor, `ray start --head` on 127.0.0.1 (two CPUs: two model workers), started and
stopped here; this process connects to it as
a driver, as `--ray-address` makes a command do. And an S3 server on 127.0.0.1 (moto's),
for workers that read images from an object store; every process here (the cluster's
too) has the same made-up credentials in its environment, as a machine's AWS
configuration would give them."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

RAY = Path(sys.executable).parent / "ray"
S3_ENV = {"AWS_ACCESS_KEY_ID": "labelpilot-test", "AWS_SECRET_ACCESS_KEY": "labelpilot-test",
          "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The cluster's address (HOST:PORT)."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("ray") / "head.log"
    # token authentication, as a team's cluster would run it: the head, this driver and
    # the commands the tests start share the token through the environment
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", *S3_ENV)}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), **S3_ENV)
    pytest.importorskip("ray", reason="the [ray] extra is part of [dev]")  # reads them
    with log.open("wb") as out:
        head = subprocess.Popen(
            [str(RAY), "start", "--head", "--block", f"--port={port}",
             "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in log.read_bytes():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield address
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        head.send_signal(signal.SIGTERM)  # --block: the head stops what it started
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # and anything it left
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3-compatible server on 127.0.0.1 (moto's, in a thread)."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is part of [dev]")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture()
def bucket(s3_endpoint: str) -> str:
    """A new, empty bucket's name."""
    import boto3

    name = f"lp-{secrets.token_hex(6)}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name
