"""Property-based API tests from the app's own OpenAPI: no 5xx, no schema violations.

Schemathesis generates requests for every operation of /openapi.json (with an admin
token) and checks each response: not a server error, a documented status code and
content type, and a body that matches the documented schema. Each operation alone, then
in sequences that feed one response's values to the next request (stateful testing, on
the links schemathesis infers from the schema: an image's id from a list or an upload to
its annotations, an annotation's id to its update, a job's id to its cancel and download).
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from labelpilot import users
from labelpilot.server.app import create_app
from labelpilot.settings import Settings
from labelpilot.transfer import import_dataset
from labelpilot.workspace import Workspace
from tests.test_transfer import coco_dir

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _app(ws: Workspace, tmp_path: Path) -> tuple[Any, str]:
    """The app on a workspace with 2 images, 2 classes and an admin; the admin's token."""
    import_dataset(ws, coco_dir(tmp_path / "c", 2), format="coco")
    with ws.engine.begin() as conn:
        admin = users.add_user(conn, username="admin", password="admin-password", role="admin")
        token, _ = users.issue_token(conn, admin)
    return create_app(ws, Settings(max_upload_bytes=1_000_000), run_jobs=False), token


def test_api_conforms_to_its_openapi(make_workspace: Callable[..., Workspace],
                                     tmp_path: Path) -> None:
    app, token = _app(make_workspace(labels=["cat", "dog"]), tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]
    tested = []
    for op in operations:
        if op.path.endswith("/events"):
            continue  # a stream that ends only with its job; covered in test_api

        @given(case=op.as_strategy())
        @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
        tested.append(f"{op.method.upper()} {op.path}")
    assert len(tested) >= 20, tested


def test_api_holds_up_under_linked_sequences(make_workspace: Callable[..., Workspace],
                                             tmp_path: Path) -> None:
    """Stateful: scenarios of up to 8 calls where later requests use the ids and names
    earlier responses returned, until 400 calls with 50 chained ones have been made, all
    with the same checks."""
    ws = make_workspace(labels=["cat", "dog"])
    app, token = _app(ws, tmp_path)
    tokens = [token]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
        path_regex=r".*/events$")  # a stream that ends only with its job
    calls: collections.Counter[int] = collections.Counter()
    linked: collections.Counter[str] = collections.Counter()
    failures: list[str] = []

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # every scenario as a working admin: an earlier one may have demoted,
            # deactivated or reset the password of the user it acts as (another admin
            # existing), after which every call is refused and nothing chains
            with ws.transaction() as conn:
                admin = users.update_user(conn, "admin", role="admin", active=True,
                                          must_change_password=False)
                tokens[0], _ = users.issue_token(conn, admin)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {tokens[0]}"}}

        def step(self, input: Any) -> Any:
            try:
                out = super().step(input)
            except Exception as e:  # kept: a replay that diverges would hide it (Flaky)
                failures.append(f"{input.case.operation.label}: {type(e).__name__}: {e}")
                raise
            calls[out.response.status_code] += 1
            if input.transition is not None:  # fed by an earlier response
                linked[input.case.operation.label] += 1
            return out

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    rounds = 0
    # 400 calls, 50 of them fed by earlier responses, on 8 operations or more. Each round
    # has a seed of its own (the round's number: the run is repeatable), so rounds explore
    # different sequences; how many a round chains depends on the environment (35 in 400
    # calls on an xdist worker with one fixed seed, 134 in 600 alone).
    while (sum(calls.values()) < 400 or sum(linked.values()) < 50 or len(linked) < 8) \
            and rounds < 60:
        rounds += 1
        # The app keeps its state between scenarios (as schemathesis's own runner does), so
        # a replayed prefix may offer other links: then another round starts.
        with contextlib.suppress(FlakyStrategyDefinition):
            seed(rounds)(Machine).run(settings=settings(
                max_examples=20, stateful_step_count=8, deadline=None, database=None,
                phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
    assert not failures, failures[:3]
    assert sum(calls.values()) >= 400 and not any(code >= 500 for code in calls)
    # the sequences really chained calls: ids from earlier responses, on many operations
    assert sum(linked.values()) >= 50 and len(linked) >= 8, linked
