"""Queries on the users and tokens tables (the rules live in `labelpilot.users`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from labelpilot.store.repo import now
from labelpilot.store.tables import Token, User, table

users_t = table(User)
tokens_t = table(Token)


def by_name(conn: Connection, username: str) -> Any | None:
    return conn.execute(select(users_t).where(users_t.c.username == username)).first()


def name_taken(conn: Connection, username: str) -> str | None:
    """The existing user name equal to `username` up to case, if any."""
    return conn.execute(select(users_t.c.username).where(
        func.lower(users_t.c.username) == username.lower())).scalar()


def active_admins(conn: Connection) -> list[str]:
    """The active admins' names; on PostgreSQL their rows stay locked until the caller's
    transaction ends, so two admins demoting each other at once cannot both succeed."""
    q = select(users_t.c.username).where(users_t.c.role == "admin", users_t.c.active.is_(True))
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return list(conn.execute(q).scalars())


def all_users(conn: Connection) -> list[Any]:
    return list(conn.execute(select(users_t).order_by(users_t.c.id)))


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users_t)).scalar_one())


def insert_user(conn: Connection, *, username: str, password_hash: str, role: str,
                must_change_password: bool = False) -> None:
    conn.execute(insert(users_t).values(username=username, password_hash=password_hash,
                                        role=role, active=True, created_at=now(),
                                        must_change_password=must_change_password))


def update_user(conn: Connection, user_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(users_t).where(users_t.c.id == user_id).values(**values))


def insert_token(conn: Connection, *, digest: str, user_id: int, expires: datetime) -> None:
    conn.execute(insert(tokens_t).values(token_hash=digest, user_id=user_id, created_at=now(),
                                         expires_at=expires))


def purge_tokens(conn: Connection, expired_before: datetime) -> int:
    """Delete tokens that expired before `expired_before`; returns how many."""
    return int(conn.execute(delete(tokens_t).where(tokens_t.c.expires_at < expired_before))
               .rowcount)


def token_owner(conn: Connection, digest: str) -> Any | None:
    """The user row of a token, with the token's `expires_at` and `revoked_at`."""
    return conn.execute(
        select(users_t, tokens_t.c.expires_at, tokens_t.c.revoked_at)
        .join(tokens_t, tokens_t.c.user_id == users_t.c.id)
        .where(tokens_t.c.token_hash == digest)).first()


def revoke_token(conn: Connection, digest: str) -> None:
    conn.execute(update(tokens_t).where(tokens_t.c.token_hash == digest).values(revoked_at=now()))


def revoke_user_tokens(conn: Connection, user_id: int) -> None:
    conn.execute(update(tokens_t).where(tokens_t.c.user_id == user_id,
                                        tokens_t.c.revoked_at.is_(None)).values(revoked_at=now()))
