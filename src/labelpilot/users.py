"""Users, roles, passwords and bearer tokens (the service behind `users` and the API's auth).

Passwords are hashed with Argon2id. Tokens are random strings handed out once; the
database keeps only their SHA-256, an expiry and a revocation time.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from labelpilot.errors import (
    AuthError,
    ForbiddenError,
    LabelPilotError,
    NotFoundError,
    StateError,
    TooManyAttemptsError,
)
from labelpilot.store import users as rows
from labelpilot.store.repo import as_utc, now

if TYPE_CHECKING:
    from sqlalchemy import Connection

ROLES = ("annotator", "reviewer", "admin")
TOKEN_LIFETIME = timedelta(hours=12)
# starts with a letter or digit: no ".", ".." or "-x" names
_USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
MIN_PASSWORD = 8
# Argon2id with its default cost; tests and benchmarks swap in cheap parameters.
password_hasher = PasswordHasher()


# The role matrix: what each action needs at least (annotator < reviewer < admin). Every
# check on the API and in the services reads this table; the README prints it.
PERMISSIONS: dict[str, tuple[str, str]] = {
    "annotate": ("annotator", "draw, change and delete proposals and edits on images not done"),
    "edit_reviewed": ("reviewer", "change, re-open or delete an accepted or rejected annotation"),
    "edit_done_image": ("reviewer", "change the annotations of an image marked done"),
    "submit": ("annotator", "submit an image for review"),
    "review": ("reviewer", "accept or reject annotations"),
    "set_review_state": ("reviewer", "set an image's review state (mark done, send back, "
                         "re-open)"),
    "set_split": ("reviewer", "put images in the train, val or test split"),
    "import": ("reviewer", "import an archive of images and label files"),
    "add_label_class": ("reviewer", "use a label class the project does not have yet"),
    "assign": ("reviewer", "assign images to people"),
    "release_claim": ("reviewer", "release another user's claim on an image"),
    "prelabel": ("reviewer", "pre-label images with a model"),
    "select": ("reviewer", "choose what to label next (active learning: the labeling "
               "queue's order)"),
    "export": ("reviewer", "export the labels and download them"),
    "view_analytics": ("reviewer", "see the analytics: dataset health, everyone's labeling "
                                   "progress and throughput, model quality"),
    "cancel_job": ("reviewer", "cancel a job"),
    "train": ("admin", "train a model"),
    "optimize": ("admin", "make an optimized (INT8) variant of a model"),
    "edit_project": ("admin", "rename the project; add, rename, merge and colour label "
                     "classes and give them attributes"),
    "manage_users": ("admin", "add users, change their roles, deactivate them"),
}


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: str
    active: bool
    must_change_password: bool = False

    def can(self, role: str) -> bool:
        """True if this user's role is `role` or above (annotator < reviewer < admin)."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def may(self, action: str) -> bool:
        """True if the role matrix lets this user do `action`."""
        return self.can(PERMISSIONS[action][0])

    def require(self, action: str) -> None:
        """ForbiddenError, saying what and which role, unless this user may do `action`."""
        role, what = PERMISSIONS[action]
        if not self.can(role):
            raise ForbiddenError(f"{self.username} is {_article(self.role)} and may not {what}: "
                                 f"that needs the {role} role")


def _article(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def _info(row: object) -> UserInfo:
    return UserInfo(row.id, row.username, row.role, row.active,  # type: ignore[attr-defined]
                    bool(row.must_change_password))  # type: ignore[attr-defined]


def add_user(conn: Connection, *, username: str, password: str, role: str,
             must_change_password: bool = False) -> UserInfo:
    if not _USERNAME_RE.match(username):
        raise LabelPilotError(f"username {username!r} is not allowed",
                              hint="use 1-100 letters, digits and . _ @ -, starting with a "
                                   "letter or digit")
    if role not in ROLES:
        raise LabelPilotError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    check_password(password)
    taken = rows.name_taken(conn, username)
    if taken is not None:
        raise StateError(f"user {taken!r} already exists" + (
            f" (names differing only in case are one name: {username!r})"
            if taken != username else ""))
    rows.insert_user(conn, username=username, password_hash=password_hasher.hash(password),
                     role=role, must_change_password=must_change_password)
    return get_user(conn, username)


def get_user(conn: Connection, username: str) -> UserInfo:
    row = rows.by_name(conn, username)
    if row is None:
        raise NotFoundError(f"no user {username!r}")
    return _info(row)


def list_users(conn: Connection) -> list[UserInfo]:
    return [_info(r) for r in rows.all_users(conn)]


def count_users(conn: Connection) -> int:
    return rows.count(conn)


def update_user(conn: Connection, username: str, *, role: str | None = None,
                active: bool | None = None, password: str | None = None,
                must_change_password: bool | None = None) -> UserInfo:
    """Change a user (an admin's act). A password set here was chosen by someone else:
    its user must change it at the next sign-in unless `must_change_password` is False."""
    user = get_user(conn, username)
    values: dict[str, object] = {}
    if role is not None:
        if role not in ROLES:
            raise LabelPilotError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        values["role"] = role
    if active is not None:
        values["active"] = active
    if password is not None:
        check_password(password)
        values["password_hash"] = password_hasher.hash(password)
        values["must_change_password"] = True
    if must_change_password is not None:
        values["must_change_password"] = must_change_password
    stays_admin = values.get("role", user.role) == "admin" and values.get("active", user.active)
    if user.role == "admin" and user.active and not stays_admin \
            and rows.active_admins(conn) == [user.username]:
        raise StateError(f"{username} is the last active admin: the workspace would have "
                         "no one to manage it", hint="make another user admin first")
    if values:
        rows.update_user(conn, user.id, values)
        _cache.clear()
    if active is False or password is not None:
        revoke_all(conn, user.id)
    return get_user(conn, username)


def change_own_password(conn: Connection, username: str, *, current: str, new: str
                        ) -> UserInfo:
    """A user changes their own password, proving the current one; every token they had
    is revoked (the caller issues a fresh one)."""
    try:
        user = authenticate(conn, username, current)
    except AuthError:
        # not 401: the request itself is signed in; only the proof is wrong
        raise LabelPilotError("the current password is wrong",
                              hint="type the password you signed in with") from None
    check_password(new)
    if new == current:
        raise LabelPilotError("the new password is the current one", hint="choose another")
    rows.update_user(conn, user.id, {"password_hash": password_hasher.hash(new),
                                     "must_change_password": False})
    _cache.clear()
    revoke_all(conn, user.id)
    return get_user(conn, username)


def check_password(password: str) -> None:
    if len(password.strip()) < MIN_PASSWORD:
        raise LabelPilotError(f"the password must have at least {MIN_PASSWORD} characters "
                              "besides leading and trailing spaces")


def authenticate(conn: Connection, username: str, password: str) -> UserInfo:
    row = rows.by_name(conn, username)
    if row is None or not row.active:
        # Spend the same time as a real check, so timing does not tell who exists.
        password_hasher.hash(password)
        raise AuthError("wrong username or password")
    try:
        password_hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise AuthError("wrong username or password") from None
    return _info(row)


class LoginThrottle:
    """Failed sign-ins per user name and per client address: after `free` failures in a
    row, each further attempt waits (`base_s`, doubling, at most `max_s`), and attempts
    during the wait are refused without checking the password (no hashing spent on a
    flood). A success clears the name's count and the address's. Kept per process."""

    def __init__(self, *, free: int = 5, base_s: float = 1.0, max_s: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.base_s, self.max_s, self.clock = free, base_s, max_s, clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, blocked until)
        self._lock = threading.Lock()

    def check(self, *keys: str) -> None:
        with self._lock:
            until = max((self._failures.get(k, (0, 0.0))[1] for k in keys), default=0.0)
        wait = until - self.clock()
        if wait > 0:
            raise TooManyAttemptsError("too many failed sign-ins", retry_after=math.ceil(wait))

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > 100_000:
                self._failures.clear()
            for k in keys:
                n = self._failures.get(k, (0, 0.0))[0] + 1
                delay = 0.0 if n < self.free else min(self.max_s,
                                                      self.base_s * 2 ** (n - self.free))
                self._failures[k] = (n, now + delay)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._failures.pop(k, None)


def token_digest(token: str) -> str:
    """What the database keeps of a token: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(conn: Connection, user: UserInfo, lifetime: timedelta = TOKEN_LIFETIME
                ) -> tuple[str, datetime]:
    token = "lp_" + secrets.token_urlsafe(32)
    expires = now() + lifetime
    rows.insert_token(conn, digest=token_digest(token), user_id=user.id, expires=expires)
    # tokens expired a day ago serve no one: gone, so the table does not grow for ever
    rows.purge_tokens(conn, now() - timedelta(days=1))
    return token, expires


# token digest -> (user, when to look again). Every request carries a token; looking it up
# in the database each time was a fifth of a request's cost under load. A revocation in
# this process clears the cache at once; other server processes see it within the TTL.
_CACHE_TTL_S = 2.0
_cache: dict[str, tuple[UserInfo, float, datetime]] = {}


def user_for_token(conn: Connection, token: str) -> UserInfo:
    digest = token_digest(token)
    hit = _cache.get(digest)
    if hit is not None and hit[1] > time.monotonic() and hit[2] > now():
        return hit[0]
    user, expires = _lookup(conn, digest)
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[digest] = (user, time.monotonic() + _CACHE_TTL_S, expires)
    return user


def _lookup(conn: Connection, digest: str) -> tuple[UserInfo, datetime]:
    row = rows.token_owner(conn, digest)
    if row is None:
        raise AuthError("unknown token")
    expires = as_utc(row.expires_at)
    assert expires is not None
    if row.revoked_at is not None:
        raise AuthError("the token was revoked")
    if expires <= now():
        raise AuthError("the token has expired")
    if not row.active:
        raise AuthError("the user is deactivated")
    return _info(row), expires


def revoke_token(conn: Connection, token: str) -> None:
    _cache.clear()
    rows.revoke_token(conn, token_digest(token))


def revoke_all(conn: Connection, user_id: int) -> None:
    _cache.clear()
    rows.revoke_user_tokens(conn, user_id)


def active_admins(conn: Connection) -> list[str]:
    return rows.active_admins(conn)


def new_password() -> str:
    return secrets.token_urlsafe(12)
