from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from labelpilot import users
from labelpilot.server.app import create_app
from labelpilot.settings import Settings
from labelpilot.transfer import import_dataset
from labelpilot.workspace import Workspace
from tests.test_transfer import coco_dir

PASSWORD = "correct horse battery"
ROLES = ("annotator", "reviewer", "admin")


@dataclass
class Api:
    client: TestClient
    ws: Workspace
    tokens: dict[str, str]

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, role: str, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.get(url, headers=self.h(role), **kw)

    def post(self, role: str, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.post(url, headers=self.h(role), **kw)

    def patch(self, role: str, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.patch(url, headers=self.h(role), **kw)

    def delete(self, role: str, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.delete(url, headers=self.h(role), **kw)


def add_users(ws: Workspace) -> None:
    with ws.engine.begin() as conn:
        for role in ROLES:
            users.add_user(conn, username=role, password=PASSWORD, role=role)


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Argon2's production cost (~0.1 s a hash) adds nothing to what these tests check;
    # the hashes stay real Argon2id, with the cheapest parameters.
    from argon2 import PasswordHasher

    monkeypatch.setattr(users, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def api(make_workspace: Callable[..., Workspace], tmp_path: Path) -> Iterator[Api]:
    ws = make_workspace(labels=["cat", "dog"])
    import_dataset(ws, coco_dir(tmp_path / "c", 3), format="coco", split="train")
    add_users(ws)
    app = create_app(ws, Settings(max_upload_bytes=2_000_000, job_workers=1))
    with TestClient(app) as client:
        tokens = {}
        for role in ROLES:
            r = client.post("/api/auth/token", data={"username": role, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[role] = r.json()["access_token"]
        client.cookies.clear()  # these tests send the bearer header; the cookie has its own
        yield Api(client, ws, tokens)
