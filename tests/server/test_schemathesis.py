"""Property-based API tests from the app's own OpenAPI: no 5xx, no schema violations.

Schemathesis generates requests for every operation of /openapi.json (with an admin
token) and checks each response: not a server error, a documented status code and
content type, and a body that matches the documented schema.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
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


def test_api_conforms_to_its_openapi(make_workspace: Callable[..., Workspace],
                                     tmp_path: Path) -> None:
    ws = make_workspace(labels=["cat", "dog"])
    import_dataset(ws, coco_dir(tmp_path / "c", 2), format="coco")
    with ws.engine.begin() as conn:
        admin = users.add_user(conn, username="admin", password="admin-password", role="admin")
        token, _ = users.issue_token(conn, admin)
    app = create_app(ws, Settings(max_upload_bytes=1_000_000), run_jobs=False)
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
