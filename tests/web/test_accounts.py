"""Accounts in Chromium (issue 16): the first start's one-time admin password is replaced
at the first sign-in; an admin manages users on the Users page; a reset password is
replaced by its user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelpilot.server.app import ensure_admin
from labelpilot.transfer import import_dataset
from tests.test_transfer import coco_dir
from tests.web.conftest import Live, serve

pytestmark = pytest.mark.slow


@pytest.fixture
def first_start(make_workspace, tmp_path: Path) -> Iterator[tuple[Live, str]]:  # type: ignore[no-untyped-def]
    ws = make_workspace(labels=["cat", "dog"])
    import_dataset(ws, coco_dir(tmp_path / "c", 2), format="coco")
    created = ensure_admin(ws)
    assert created is not None
    root = ws.root
    ws.close()
    for live in serve(root):
        yield live, created[1]


def _sign_in(page: Any, live: Live, user: str, password: str) -> None:
    page.goto(live.base + "/#/login")
    page.wait_for_selector("#username")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")


def _choose(page: Any, current: str, new: str) -> None:
    page.wait_for_selector("#password-form >> text=Choose your password")
    page.fill("#current-password", current)
    page.fill("#new-password", new)
    page.fill("#new-password-again", new)
    page.click("#password-form button[type=submit]")


def test_first_admin_then_users_page(browser: Any, first_start: tuple[Live, str]) -> None:
    live, one_time = first_start
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    _sign_in(page, live, "admin", one_time)
    _choose(page, one_time, "admin-own-secret")
    page.wait_for_selector("#jobs", state="attached")  # the overview, once changed
    assert live.token("admin", "admin-own-secret")

    # the Users page: add an annotator, make them a reviewer, reset their password
    page.click("header a[href='#/users']")
    page.wait_for_selector("#users tr[data-user=admin]")
    page.fill("#new-username", "maria")
    page.fill("#new-user-password", "maria-first")
    page.select_option("#new-user-role", "annotator")
    page.click("#add-user")
    row = "#users tr[data-user=maria]"
    page.wait_for_selector(row)
    page.select_option(f"{row} select", "reviewer")
    page.wait_for_selector(".toast >> text=maria is now reviewer.")
    page.click(f"{row} .reset-password")
    page.fill(f"{row} .reset-value", "reset-by-admin")
    page.click(f"{row} .reset-ok")
    page.wait_for_selector(f"{row} >> text=(must change password)")
    # the last admin cannot take away their own role: said, not done
    page.select_option("#users tr[data-user=admin] select", "annotator")
    page.wait_for_selector(".toast.error >> text=admin is the last active admin")
    page.wait_for_function(  # the table is read again: the role shown is the stored one
        "document.querySelector('#users tr[data-user=admin] select').value === 'admin'")
    page.click("#logout")

    # maria signs in with the reset password and must choose her own first
    _sign_in(page, live, "maria", "reset-by-admin")
    _choose(page, "a wrong guess", "maria-own")  # the current one proves it is her
    page.wait_for_selector("#password-error >> text=the current password is wrong")
    _choose(page, "reset-by-admin", "maria-own")
    page.wait_for_selector("#jobs", state="attached")
    assert "maria · reviewer" in page.text_content("header .who")
    page.close()
