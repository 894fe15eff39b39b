from __future__ import annotations

from fastapi import APIRouter

from labelpilot import users
from labelpilot.server.deps import CanAssign, CanManageUsers, WorkspaceDep
from labelpilot.server.schemas import UserCreate, UserPublic, UserUpdate

router = APIRouter(prefix="/api/users", tags=["users"])


def _public(u: users.UserInfo) -> UserPublic:
    return UserPublic(username=u.username, role=u.role,  # type: ignore[arg-type]
                      active=u.active, must_change_password=u.must_change_password)


@router.get("", response_model=list[UserPublic])
def list_users(admin: CanManageUsers, ws: WorkspaceDep) -> list[UserPublic]:
    with ws.engine.connect() as conn:
        return [_public(u) for u in users.list_users(conn)]


@router.get("/assignable", response_model=list[UserPublic])
def assignable_users(user: CanAssign, ws: WorkspaceDep) -> list[UserPublic]:
    """The active users images can be assigned to (reviewers and admins assign)."""
    with ws.engine.connect() as conn:
        return [_public(u) for u in users.list_users(conn) if u.active]


@router.post("", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, admin: CanManageUsers, ws: WorkspaceDep) -> UserPublic:
    with ws.transaction() as conn:
        return _public(users.add_user(conn, username=body.username, password=body.password,
                                      role=body.role))


@router.patch("/{username}", response_model=UserPublic)
def update_user(username: str, body: UserUpdate, admin: CanManageUsers, ws: WorkspaceDep) -> UserPublic:
    with ws.transaction() as conn:
        return _public(users.update_user(conn, username, role=body.role, active=body.active,
                                         password=body.password,
                                         must_change_password=body.must_change_password))
