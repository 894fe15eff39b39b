from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm

from labelpilot import users
from labelpilot.server.deps import COOKIE, CurrentUser, SettingsDep, TokenDep, WorkspaceDep
from labelpilot.server.schemas import Token, UserPublic

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/token", response_model=Token)
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], ws: WorkspaceDep,
          settings: SettingsDep, response: Response) -> Token:
    """OAuth2 password flow: a bearer token for username + password (also set as an
    HttpOnly cookie that lets the browser load images)."""
    with ws.transaction() as conn:
        user = users.authenticate(conn, form.username, form.password)
        token, expires = users.issue_token(conn, user, timedelta(hours=settings.token_hours))
    response.set_cookie(COOKIE, token, max_age=int(settings.token_hours * 3600), httponly=True,
                        samesite="strict", path="/api/")
    return Token(access_token=token, expires_at=expires)


@router.post("/revoke", status_code=204, response_class=Response)
def revoke(user: CurrentUser, token: TokenDep, ws: WorkspaceDep, response: Response) -> None:
    """Revoke the token this request carries (sign out)."""
    with ws.transaction() as conn:
        assert token is not None
        users.revoke_token(conn, token)
    response.delete_cookie(COOKIE, path="/api/")


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic(username=user.username, role=user.role, active=user.active)  # type: ignore[arg-type]
