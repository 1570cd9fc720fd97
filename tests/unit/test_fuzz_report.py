"""tests/support/fuzz.py reads schemathesis's NDJSON report: a failed conformance check is a
contradiction of the document, a passed one is not."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.fuzz import FuzzRun, _read_report


def _scenario(status: str) -> dict[str, object]:
    response = {"status_code": 200, "content": {"string": "{}"}}
    return {"ScenarioFinished": {"recorder": {
        "label": "GET /v1/posts/{id}",
        "interactions": {"c1": {"request": {"method": "GET", "uri": "/v1/posts/x"},
                                "response": response}},
        "checks": {"c1": [
            {"name": "not_a_server_error", "status": "success", "failure_info": None},
            {"name": "response_schema_conformance", "status": status,
             "failure_info": {"failure": {"title": "Response violates schema"}}},
        ]},
    }}}


def test_a_failed_conformance_check_is_a_contradiction(tmp_path: Path) -> None:
    report = tmp_path / "r.ndjson"
    report.write_text("\n".join(json.dumps(_scenario(s)) for s in ("success", "failure")))
    run = FuzzRun(label="t", exit_code=1, output="")
    _read_report(report, run)
    assert run.cases == 2 and run.server_errors == []
    assert [(op, check) for op, check, _ in run.contradictions] == [
        ("GET /v1/posts/{id}", "response_schema_conformance")]
    assert "violates schema" in run.contradictions[0][2]
