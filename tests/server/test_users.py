"""Users: the last active admin stays, names and passwords that cannot be told apart are
refused, and the CLI can change roles and reactivate users (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from typing import Literal

import pytest
from typer.testing import CliRunner

from labelpilot import users
from labelpilot.cli import app as cli
from labelpilot.errors import LabelPilotError, NotFoundError, StateError, TooManyAttemptsError, WorkspaceError
from labelpilot.server.app import ensure_admin
from tests.server.conftest import Api


def test_the_last_admin_cannot_demote_or_deactivate_itself(api: Api) -> None:
    for change in ({"role": "reviewer"}, {"active": False}):
        r = api.patch("admin", "/api/users/admin", json=change)
        assert r.status_code == 409 and "last active admin" in r.json()["detail"], r.text
    assert api.get("admin", "/api/users").json()[-1]["role"] == "admin"
    # with a second admin, the first may step down
    assert api.patch("admin", "/api/users/reviewer", json={"role": "admin"}).status_code == 200
    r = api.patch("admin", "/api/users/admin", json={"role": "reviewer"})
    assert r.status_code == 200 and r.json()["role"] == "reviewer"


@pytest.mark.parametrize(("username", "password", "status"), [
    (".", "long-password", 400), ("..", "long-password", 400), ("-x", "long-password", 400),
    ("ADMIN", "long-password", 409), ("Admin", "long-password", 409),
    ("newbie", " " * 12, 400), ("newbie", "  short  ", 400),
])
def test_names_and_passwords_that_cannot_be_told_apart(api: Api, username: str, password: str,
                                                       status: int) -> None:
    r = api.post("admin", "/api/users", json={"username": username, "password": password,
                                              "role": "annotator"})
    assert r.status_code == status, r.text
    assert username not in {u["username"] for u in api.get("admin", "/api/users").json()}


def test_two_admins_demoting_each_other_at_once_leave_one(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws = make_workspace()
    with ws.transaction() as conn:
        for name in ("a1", "a2"):
            users.add_user(conn, username=name, password="long-password", role="admin")
    for _ in range(5):
        start = threading.Barrier(2)
        refused: list[str] = []

        def demote(name: str, start: threading.Barrier = start, refused: list[str] = refused
                   ) -> None:
            start.wait()
            try:
                with ws.transaction() as conn:
                    users.update_user(conn, name, role="reviewer")
            except StateError:
                refused.append(name)

        threads = [threading.Thread(target=demote, args=(n,)) for n in ("a1", "a2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with ws.engine.connect() as conn:
            admins = users.active_admins(conn)
        assert len(admins) == 1 and len(refused) == 1
        with ws.transaction() as conn:  # both admins again for the next round
            demoted = "a2" if refused[0] == "a1" else "a1"
            users.update_user(conn, demoted, role="admin")


def test_the_cli_changes_roles_and_reactivates(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws = make_workspace()
    with ws.transaction() as conn:
        users.add_user(conn, username="boss", password="long-password", role="admin")
        users.add_user(conn, username="ann", password="long-password", role="annotator")
        users.update_user(conn, "ann", active=False)
    root = ws.root
    run = CliRunner().invoke
    r = run(cli, ["users", "set", str(root), "ann", "--active", "--role", "reviewer"])
    assert r.exit_code == 0 and "ann: reviewer, active" in r.stdout
    r = run(cli, ["users", "set", str(root), "boss", "--inactive"])
    assert r.exit_code != 0 and "last active admin" in r.stderr
    r = run(cli, ["users", "set", str(root), "ann", "--password-stdin"], input="new-password\n")
    assert r.exit_code == 0
    with ws.engine.connect() as conn:
        assert users.authenticate(conn, "ann", "new-password").role == "reviewer"
    with pytest.raises(NotFoundError), ws.engine.connect() as conn:
        users.get_user(conn, "nobody")


def test_serve_refuses_a_workspace_with_no_active_admin(make_workspace) -> None:  # type: ignore[no-untyped-def]
    from labelpilot.store import users as rows

    ws = make_workspace()
    assert ensure_admin(ws) is not None  # a fresh workspace gets its admin
    with ws.transaction() as conn:  # as an older version could leave it
        rows.update_user(conn, users.get_user(conn, "admin").id, {"active": False})
    with pytest.raises(WorkspaceError, match="no active admin") as e:
        ensure_admin(ws)
    assert isinstance(e.value, LabelPilotError) and "users set" in (e.value.hint or "")


def test_the_throttle_makes_repeated_failures_wait() -> None:
    now = [0.0]
    t = users.LoginThrottle(free=3, base_s=2.0, max_s=5.0, clock=lambda: now[0])
    for _ in range(2):
        t.failed("user:x")
        t.check("user:x")  # the first failures cost nothing
    t.failed("user:x")
    with pytest.raises(TooManyAttemptsError) as e:
        t.check("user:x", "address:a")
    assert e.value.retry_after == 2 and e.value.http_status == 429
    t.check("user:y")  # another name is not held back
    now[0] = 2.5
    t.check("user:x")
    t.failed("user:x")  # the fourth: 4 s
    now[0] = 6.0
    with pytest.raises(TooManyAttemptsError):
        t.check("user:x")
    t.failed("user:x")
    t.failed("user:x")
    now[0] = 30.0  # capped at max_s after the last failure at 6.0
    t.check("user:x")
    t.succeeded("user:x")
    t.failed("user:x")
    t.check("user:x")  # counting starts again after a success


def test_a_sign_in_flood_gets_429_without_hashing(api: Api, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    now = [0.0]
    api.client.app.state.login_throttle = users.LoginThrottle(clock=lambda: now[0])  # type: ignore[attr-defined]
    from argon2 import PasswordHasher

    hashed = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            hashed.append(1)
            return super().verify(hash, password)

    monkeypatch.setattr(users, "password_hasher",
                        Counting(time_cost=1, memory_cost=8, parallelism=1))
    wrong = {"username": "reviewer", "password": "not the password"}
    codes = [api.client.post("/api/auth/token", data=wrong).status_code for _ in range(8)]
    assert codes == [401] * 5 + [429] * 3 and len(hashed) == 5
    r = api.client.post("/api/auth/token", data={"username": "reviewer",
                                                 "password": "correct horse battery"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "wait" in r.json()["hint"]
    now[0] = 3600.0  # after the wait the right password works, and clears the count
    r = api.client.post("/api/auth/token", data={"username": "reviewer",
                                                 "password": "correct horse battery"})
    assert r.status_code == 200
    assert api.client.post("/api/auth/token", data=wrong).status_code == 401
