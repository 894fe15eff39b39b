from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm

from labelpilot import users
from labelpilot.server.deps import CurrentUser, SettingsDep, TokenDep, WorkspaceDep
from labelpilot.server.schemas import Token, UserPublic

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/token", response_model=Token)
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], ws: WorkspaceDep,
          settings: SettingsDep) -> Token:
    """OAuth2 password flow: a bearer token for username + password."""
    with ws.transaction() as conn:
        user = users.authenticate(conn, form.username, form.password)
        token, expires = users.issue_token(conn, user, timedelta(hours=settings.token_hours))
        return Token(access_token=token, expires_at=expires)


@router.post("/revoke", status_code=204, response_class=Response)
def revoke(user: CurrentUser, token: TokenDep, ws: WorkspaceDep) -> None:
    """Revoke the token this request carries (sign out)."""
    with ws.transaction() as conn:
        assert token is not None
        users.revoke_token(conn, token)


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic(username=user.username, role=user.role, active=user.active)  # type: ignore[arg-type]
