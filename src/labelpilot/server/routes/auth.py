from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from labelpilot import users
from labelpilot.errors import AuthError
from labelpilot.server.deps import COOKIE, CurrentUser, SettingsDep, TokenDep, WorkspaceDep
from labelpilot.server.schemas import PasswordChange, Token, UserPublic

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/token", response_model=Token,
             responses={429: {"description": "too many failed sign-ins: wait Retry-After s"}})
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], ws: WorkspaceDep,
                settings: SettingsDep, request: Request, response: Response) -> Token:
    """OAuth2 password flow: a bearer token for username + password (also set as an
    HttpOnly cookie that lets the browser load images). Repeated failures for a name or
    from an address make the next attempts wait (429 with Retry-After)."""
    throttle: users.LoginThrottle = request.app.state.login_throttle
    keys = (f"user:{form.username.lower()}",
            f"address:{request.client.host if request.client else '-'}")
    throttle.check(*keys)

    def check_password() -> users.UserInfo:
        with ws.engine.connect() as conn:
            return users.authenticate(conn, form.username, form.password)

    # Argon2 runs in a pool of its own: a flood of sign-ins cannot take the threads
    # every other request needs.
    try:
        user = await asyncio.get_running_loop().run_in_executor(request.app.state.hash_pool,
                                                                check_password)
    except AuthError:
        throttle.failed(*keys)
        raise
    throttle.succeeded(*keys)

    def issue() -> tuple[str, object]:
        with ws.transaction() as conn:
            return users.issue_token(conn, user, timedelta(hours=settings.token_hours))

    token, expires = await run_in_threadpool(issue)
    response.set_cookie(COOKIE, token, max_age=int(settings.token_hours * 3600), httponly=True,
                        samesite="strict", path="/api/")
    return Token(access_token=token, expires_at=expires)  # type: ignore[arg-type]


@router.post("/revoke", status_code=204, response_class=Response)
def revoke(user: CurrentUser, token: TokenDep, ws: WorkspaceDep, response: Response) -> None:
    """Revoke the token this request carries (sign out)."""
    with ws.transaction() as conn:
        assert token is not None
        users.revoke_token(conn, token)
    response.delete_cookie(COOKIE, path="/api/")


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic(username=user.username, role=user.role,  # type: ignore[arg-type]
                      active=user.active, must_change_password=user.must_change_password)


@router.post("/password", response_model=Token,
             responses={400: {"description": "the current password is wrong, or the new "
                                   "one too short or the same"}})
def change_password(body: PasswordChange, user: CurrentUser, ws: WorkspaceDep,
                    settings: SettingsDep, response: Response) -> Token:
    """Change one's own password (the current one proves it is you). Every token of the
    user is revoked, this one too; the answer is a fresh token (and cookie)."""
    with ws.transaction() as conn:
        changed = users.change_own_password(conn, user.username, current=body.current_password,
                                            new=body.new_password)
        token, expires = users.issue_token(conn, changed, timedelta(hours=settings.token_hours))
    response.set_cookie(COOKIE, token, max_age=int(settings.token_hours * 3600), httponly=True,
                        samesite="strict", path="/api/")
    return Token(access_token=token, expires_at=expires)  # type: ignore[arg-type]
