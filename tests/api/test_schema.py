"""Schemathesis over the OpenAPI schema, in process against the ASGI app: no 5xx, no schema violation.

Every operation is called with generated schema-valid and schema-invalid inputs (bounded example
counts so the run stays quick) by an authenticated user, over a real SQLite database and the anvil
chains. Checks: no server error, every status code and content type documented, every response
body and header conforming to the schema, and schema-invalid input refused with a 4xx.

(Schemathesis' own pytest integration, ``from_fixture``, does not run under pytest 9: the
operations are driven with their Hypothesis strategies instead.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.generation.modes import GenerationMode

from app.api_settings import ApiSettings
from recovery.db import Database
from recovery.services import CaseService
from tests.api.conftest import SECRET, bearer, gateway_for, import_deposit_addresses, make_client
from tests.fixtures_anvil import EvmTestbed

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]
EXAMPLES = 40


@pytest.fixture
def api_schema(sqlite_db: Database, evm_testbed: EvmTestbed, tmp_path: Path) -> Any:
    import_deposit_addresses(sqlite_db, evm_testbed.config, tmp_path)
    service = CaseService(sqlite_db, evm_testbed.config)
    client = make_client(service, ApiSettings(jwt_secret=SECRET, rate_limit=10_000, check_timeout_seconds=1),
                         gateway_for(evm_testbed))
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


def exercise(operation: Any, mode: GenerationMode, calls: dict[str, int]) -> None:
    label = operation.label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    def run(case: Any) -> None:
        calls[label] = calls.get(label, 0) + 1
        # the token goes into the case itself, so that schemathesis re-validates it: a "negative"
        # case whose only fault was a missing Authorization header is a valid request once it is set
        case.headers = {**(case.headers or {}), **bearer("alice")}
        if case.query:
            # a generated query parameter whose value is None or empty never reaches the wire (the
            # client drops it): keep only what is sent, so the case is judged on the real request
            case.query = {k: v for k, v in case.query.items() if v is not None and v != []}
        case.call_and_validate(checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms_to_its_schema(api_schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"GET /healthz", "GET /v1/networks", "POST /v1/appeals", "GET /v1/appeals",
            "GET /v1/appeals/{reference}"} <= labels
    calls: dict[str, int] = {}
    for operation in operations:
        try:
            exercise(operation, mode, calls)
        except Exception as exc:
            if "Failed to generate" in str(exc) or type(exc).__name__ == "Unsatisfiable":
                continue  # an operation without inputs has no negative form
            raise
    assert calls.get("POST /v1/appeals", 0) >= 10
