"""Label classes of a project: rename, merge into another, colour, attribute schema. The
database is the truth; the workspace's labelpilot.toml lists the classes too and follows
every change."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from labelpilot.attributes import check_schema
from labelpilot.errors import LabelPilotError, NotFoundError, StateError
from labelpilot.store import repo
from labelpilot.users import UserInfo

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from labelpilot.workspace import Workspace

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def change_label(ws: Workspace, conn: Connection, name: str, *, user: UserInfo | None,
                 rename: str | None = None, merge_into: str | None = None,
                 color: str | None = None, attributes: list[Any] | None = None
                 ) -> dict[str, int]:
    """Rename class `name`, merge it into another (its annotations move, it is gone), give
    it a colour, or an attribute schema (`[]` takes it away; shapes keep their values).
    `user` None is the workspace's operator (the CLI)."""
    if user is not None:
        user.require("edit_project")
    ids = repo.label_ids(conn)
    if name not in ids:
        raise NotFoundError(f"no label class {name!r}")
    if rename is not None and merge_into is not None:
        raise LabelPilotError("rename or merge, not both at once")
    moved = 0
    if color is not None:
        if not _COLOR.match(color):
            raise LabelPilotError(f"a colour is #rrggbb, not {color!r}")
        repo.update_label(conn, name, {"color": color.lower()})
    if attributes is not None:
        schema = check_schema(attributes, name)
        repo.update_label(conn, name, {"attributes": orjson.dumps(schema).decode() if schema else None})
    if rename is not None:
        rename = rename.strip()
        if not rename:
            raise LabelPilotError("a label class needs a name")
        if rename in ids and rename != name:
            raise StateError(f"a class {rename!r} exists already",
                             hint=f"merge {name!r} into it instead")
        repo.update_label(conn, name, {"name": rename})
        ws.config.labels = [rename if n == name else n for n in ws.config.labels]
        ws.save_config()
    if merge_into is not None:
        if merge_into not in ids:
            raise NotFoundError(f"no label class {merge_into!r} to merge into")
        if merge_into == name:
            raise LabelPilotError("a class cannot be merged into itself")
        moved = repo.merge_label(conn, name, merge_into)
        ws.config.labels = [n for n in ws.config.labels if n != name]
        ws.save_config()
    return {"moved": moved}
