"""`users add|set|list`: the workspace's users and roles."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from labelpilot.cli.common import JsonOpt, RoleOpt, open_workspace, out, print_json, user_errors

app = typer.Typer(help="Manage the workspace's users.", no_args_is_help=True)


@app.command("add")
def users_add(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    username: Annotated[str, typer.Option(help="The new user's name.")],
    role: Annotated[RoleOpt, typer.Option(help="annotator, reviewer or admin.")],
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard "
                                                 "input instead of a prompt.")] = False,
) -> None:
    """Add a user (the password is asked for, or read from stdin)."""
    from labelpilot import users

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with user_errors():
        ws = open_workspace(directory)
        with ws.engine.begin() as conn:
            user = users.add_user(conn, username=username, password=password, role=role.value)
        ws.close()
    out.print(f"Added {user.username} ({user.role})")


@app.command("set")
def users_set(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    username: Annotated[str, typer.Argument(help="The user to change.")],
    role: Annotated[RoleOpt | None, typer.Option(help="A new role.")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive",
                                                help="Reactivate or deactivate.")] = None,
    password: Annotated[bool, typer.Option("--password", help="Set a new password (asked "
                                           "for, or read from stdin with --password-stdin).")]
    = False,
    password_stdin: Annotated[bool, typer.Option(help="Read the new password from standard "
                                                 "input.")] = False,
) -> None:
    """Change a user's role, reactivate or deactivate them, or set a new password (which
    they change at their next sign-in). The last active admin cannot be demoted or
    deactivated."""
    from labelpilot import users

    secret = None
    if password_stdin:
        secret = sys.stdin.readline().rstrip("\n")
    elif password:
        secret = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with user_errors():
        ws = open_workspace(directory)
        with ws.transaction() as conn:
            user = users.update_user(conn, username, role=role.value if role else None,
                                     active=active, password=secret)
        ws.close()
    out.print(f"{user.username}: {user.role}, {'active' if user.active else 'inactive'}")


@app.command("list")
def users_list(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    as_json: JsonOpt = False,
) -> None:
    """List the users and their roles."""
    from labelpilot import users

    with user_errors():
        ws = open_workspace(directory)
        with ws.engine.connect() as conn:
            rows = users.list_users(conn)
        ws.close()
    if as_json:
        print_json([{"username": u.username, "role": u.role, "active": u.active} for u in rows])
        return
    table = Table("user", "role", "active")
    for u in rows:
        table.add_row(u.username, u.role, "yes" if u.active else "no")
    out.print(table)


@app.command("add-key")
def users_add_key(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    username: Annotated[str, typer.Argument(help="The user the key acts as.")],
    days: Annotated[float, typer.Option(min=0.01, max=3650, help="How long the key is valid.")]
    = 365,
    as_json: JsonOpt = False,
) -> None:
    """Make an API key for a program acting as USERNAME (a model server's clients, a
    Label Studio or CVAT connection): a bearer token valid for --days, shown only now,
    revocable like any token (POST /api/auth/revoke), ended when the user is deactivated."""
    from datetime import timedelta

    from labelpilot import users

    with user_errors():
        ws = open_workspace(directory)
        with ws.transaction() as conn:
            user = users.get_user(conn, username)
            if not user.active:
                from labelpilot.errors import StateError

                raise StateError(f"{username} is deactivated; a key would not work",
                                 hint=f"labelpilot users set {directory} {username} --active")
            token, expires = users.issue_token(conn, user, timedelta(days=days))
        ws.close()
    if as_json:
        print_json({"username": user.username, "role": user.role, "key": token,
                    "expires": expires.isoformat()})
        return
    out.print(f"API key for {user.username} ({user.role}), valid until "
              f"{expires:%Y-%m-%d %H:%M} UTC (shown only now):")
    print(token)
