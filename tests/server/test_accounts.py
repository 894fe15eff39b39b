"""Accounts (issue 16): a password someone else chose (the first start's one-time admin
password, an admin's reset) is changed by its user before anything else; anyone changes
their own password by proving the current one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labelpilot.server.app import create_app, ensure_admin


@pytest.fixture
def first_start(make_workspace) -> Iterator[tuple[TestClient, str]]:  # type: ignore[no-untyped-def]
    ws = make_workspace()
    created = ensure_admin(ws)
    assert created is not None and created[0] == "admin"
    with TestClient(create_app(ws)) as client:
        yield client, created[1]


def _token(client: TestClient, user: str, password: str) -> Any:
    r = client.post("/api/auth/token", data={"username": user, "password": password})
    client.cookies.clear()
    return r


def test_the_one_time_admin_password_is_changed_first(first_start) -> None:  # type: ignore[no-untyped-def]
    client, one_time = first_start
    tok = _token(client, "admin", one_time).json()["access_token"]
    h = {"Authorization": f"Bearer {tok}"}
    me = client.get("/api/auth/me", headers=h).json()
    assert me["must_change_password"] is True
    r = client.get("/api/images", headers=h)
    assert r.status_code == 403 and "must change their password first" in r.json()["detail"]
    r = client.post("/api/auth/password", headers=h,
                    json={"current_password": "wrong one", "new_password": "a-new-secret"})
    assert r.status_code == 400 and r.json()["detail"] == "the current password is wrong"
    r = client.post("/api/auth/password", headers=h,
                    json={"current_password": one_time, "new_password": one_time})
    assert r.status_code == 400 and "the new password is the current one" in r.json()["detail"]
    r = client.post("/api/auth/password", headers=h,
                    json={"current_password": one_time, "new_password": "a-new-secret"})
    assert r.status_code == 200
    fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
    client.cookies.clear()
    assert client.get("/api/images", headers=h).status_code == 401  # the old token is gone
    assert client.get("/api/images", headers=fresh).status_code == 200
    assert client.get("/api/auth/me", headers=fresh).json()["must_change_password"] is False
    assert _token(client, "admin", one_time).status_code == 401
    assert _token(client, "admin", "a-new-secret").status_code == 200


def test_an_admins_reset_is_changed_by_its_user(first_start) -> None:  # type: ignore[no-untyped-def]
    client, one_time = first_start
    tok = _token(client, "admin", one_time).json()["access_token"]
    h = {"Authorization": f"Bearer {tok}"}
    r = client.post("/api/auth/password", headers=h,
                    json={"current_password": one_time, "new_password": "admin-secret"})
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    client.cookies.clear()
    r = client.post("/api/users", headers=h, json={"username": "ann", "password": "first-pass",
                                                    "role": "annotator"})
    assert r.status_code == 201 and r.json()["must_change_password"] is False
    r = client.patch("/api/users/ann", headers=h, json={"password": "reset-by-admin"})
    assert r.status_code == 200 and r.json()["must_change_password"] is True
    ann = _token(client, "ann", "reset-by-admin").json()["access_token"]
    assert client.get("/api/images", headers={"Authorization": f"Bearer {ann}"}
                      ).status_code == 403
    # an admin may say the user need not change it
    r = client.patch("/api/users/ann", headers=h, json={"must_change_password": False})
    assert r.json()["must_change_password"] is False
    ann = _token(client, "ann", "reset-by-admin").json()["access_token"]
    assert client.get("/api/images", headers={"Authorization": f"Bearer {ann}"}
                      ).status_code == 200
