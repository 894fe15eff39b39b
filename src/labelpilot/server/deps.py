"""Dependencies: the workspace, the current user and role checks.

Routes open their transaction themselves (`with ws.transaction() as conn:` to write,
`with ws.engine.connect() as conn:` to read), in the thread that runs them, and commit
before they return: an acknowledged write is committed.
A transaction held by a dependency would be committed from another pool thread, and a
request holding SQLite's write lock would then wait for a thread while every pool thread
waits for that lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from labelpilot.assist.click_box import DetectionCache
from labelpilot.assist.sessions import SessionPool
from labelpilot.errors import AuthError, ForbiddenError
from labelpilot.settings import Settings
from labelpilot.store.tables import MAX_INT
from labelpilot.users import UserInfo, user_for_token
from labelpilot.workspace import Workspace

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_workspace(request: Request) -> Workspace:
    return request.app.state.workspace  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_sessions(request: Request) -> SessionPool:
    return request.app.state.sessions  # type: ignore[no-any-return]


def get_detections(request: Request) -> DetectionCache:
    return request.app.state.detections  # type: ignore[no-any-return]


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[SessionPool, Depends(get_sessions)]
DetectionsDep = Annotated[DetectionCache, Depends(get_detections)]


TokenDep = Annotated[str | None, Depends(oauth2)]


COOKIE = "labelpilot_token"


def current_user(ws: WorkspaceDep, token: TokenDep, request: Request) -> UserInfo:
    # The browser's <img> requests carry no header: for reads the sign-in cookie counts
    # too (HttpOnly, SameSite=Strict; writes always need the bearer header).
    if not token and request.method in ("GET", "HEAD"):
        token = request.cookies.get(COOKIE)
    if not token:
        raise AuthError("not signed in", hint="POST /api/auth/token for a bearer token")
    with ws.engine.connect() as conn:
        user = user_for_token(conn, token)
    if user.must_change_password and request.url.path not in _BEFORE_NEW_PASSWORD:
        raise ForbiddenError(f"{user.username} must change their password first: it was "
                             "chosen by someone else (the first start, or an admin's reset)",
                             hint="POST /api/auth/password with the current and a new one")
    return user


# What a user whose password someone else chose may do before changing it.
_BEFORE_NEW_PASSWORD = ("/api/auth/me", "/api/auth/password", "/api/auth/revoke")


CurrentUser = Annotated[UserInfo, Depends(current_user)]


def may(action: str) -> Callable[[UserInfo], UserInfo]:
    """A dependency: the signed-in user, if the role matrix (`users.PERMISSIONS`) lets them
    do `action`; else 403 saying what and which role."""
    def check(user: CurrentUser) -> UserInfo:
        user.require(action)
        return user
    return check


CanPrelabel = Annotated[UserInfo, Depends(may("prelabel"))]
CanSelect = Annotated[UserInfo, Depends(may("select"))]
CanImport = Annotated[UserInfo, Depends(may("import"))]
CanExport = Annotated[UserInfo, Depends(may("export"))]
CanViewAnalytics = Annotated[UserInfo, Depends(may("view_analytics"))]
CanCancelJobs = Annotated[UserInfo, Depends(may("cancel_job"))]
CanTrain = Annotated[UserInfo, Depends(may("train"))]
CanOptimize = Annotated[UserInfo, Depends(may("optimize"))]
CanEditProject = Annotated[UserInfo, Depends(may("edit_project"))]
CanManageUsers = Annotated[UserInfo, Depends(may("manage_users"))]
CanAssign = Annotated[UserInfo, Depends(may("assign"))]


# Ids and versions are Integer columns (32 bits on PostgreSQL): larger ones are refused as
# input (422), not passed down to fail in the driver.
ImageId = Annotated[int, Path(ge=1, le=MAX_INT)]
AnnotationId = Annotated[int, Path(ge=1, le=MAX_INT)]
JobId = Annotated[int, Path(ge=1, le=MAX_INT)]


