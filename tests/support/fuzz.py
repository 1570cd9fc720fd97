"""Run schemathesis against a live server's /openapi.json and read what it sent and got.

    run = fuzz(base_url, label="with a token", token=token, budget=Budget(examples=20,
               seconds=90), report_dir=tmp)
    assert run.server_errors == []

The CLI runs in a subprocess (its own event loop, its own Hypothesis database off) with
`not_a_server_error` and the checks that a response matches the document (its status, content
type, headers and body schema: CONFORMANCE); its NDJSON report records every request,
response and check, from which `FuzzRun` counts cases, operations and statuses, keeps each
5xx with the request that caused it (method, URL, body) so it can be replayed, and each
failed conformance check.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Responses that contradict the document: a status, content type, header or body it does
# not declare for the operation.
CONFORMANCE = ("status_code_conformance", "content_type_conformance",
               "response_headers_conformance", "response_schema_conformance")


@dataclass(frozen=True)
class Budget:
    examples: int  # Hypothesis examples per operation in the fuzzing phase
    seconds: int  # the whole run stops after this (`--max-time`)
    # One: with more, Hypothesis' lambda introspection races between schemathesis' worker
    # threads ("AST constructor recursion depth mismatch") and a phase dies on 2 cores.
    workers: int = 1
    seed: int | None = None  # fixed for a reproducible run


@dataclass(frozen=True)
class ServerError:
    operation: str  # e.g. "POST /v1/media"
    status: int
    method: str
    url: str
    body: bytes | None
    response: str

    def __str__(self) -> str:
        body = f" body={self.body[:300]!r}" if self.body else ""
        return f"{self.status} {self.method} {self.url}{body} -> {self.response[:300]}"


@dataclass
class FuzzRun:
    label: str
    exit_code: int
    output: str
    cases: int = 0
    operations: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[ServerError] = field(default_factory=list)
    # (operation, check, what it found) of each failed conformance check
    contradictions: list[tuple[str, str, str]] = field(default_factory=list)

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (f"{self.label}: {self.cases} cases over {len(self.operations)} operations, "
                f"{len(self.server_errors)} responses 5xx, {len(self.contradictions)} "
                f"contradicting the document; statuses {{{statuses}}}")


def fuzz(base_url: str, *, label: str, budget: Budget, report_dir: Path,
         token: str | None = None, args: tuple[str, ...] = ()) -> FuzzRun:
    """One schemathesis run over the server's whole schema (narrowed by `args`, e.g.
    `--exclude-path-regex`). Blocks for at most budget.seconds plus a minute of slack."""
    report_dir.mkdir(parents=True, exist_ok=True)
    ndjson = report_dir / f"{_slug(label)}.ndjson"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{base_url}/openapi.json",
        "--checks", ",".join(("not_a_server_error", *CONFORMANCE)),
        "--max-examples", str(budget.examples),
        "--max-time", str(budget.seconds), "--workers", str(budget.workers),
        "--no-shrink", "--request-timeout", "30", "--report", "ndjson",
        "--report-ndjson-path", str(ndjson), "--warnings", "off", "--continue-on-failure",
        "--suppress-health-check", "all", *args,
    ]
    if budget.seed is not None:
        command += ["--seed", str(budget.seed)]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=budget.seconds + 60, cwd=report_dir)
    run = FuzzRun(label=label, exit_code=done.returncode,
                  output=(done.stdout + done.stderr)[-6000:])
    if ndjson.exists():
        _read_report(ndjson, run)
    return run


def _read_report(path: Path, run: FuzzRun) -> None:
    with path.open() as lines:
        for line in lines:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            recorder = finished.get("recorder") or {}
            operation = recorder.get("label", "?")
            for checks in (recorder.get("checks") or {}).values():
                for check in checks:
                    if check.get("name") in CONFORMANCE and \
                            str(check.get("status", "")).lower() == "failure":
                        info = check.get("failure_info") or {}
                        found = json.dumps(info.get("failure", info), default=str)[:600]
                        run.contradictions.append((operation, check["name"], found))
            for interaction in (recorder.get("interactions") or {}).values():
                response = interaction.get("response")
                if response is None:  # a network-level failure: no status to count
                    continue
                run.cases += 1
                if operation.split(" ", 1)[0] in _METHODS:  # not "Stateful tests"
                    run.operations.add(operation)
                status = int(response["status_code"])
                run.statuses[status] += 1
                if status >= 500:
                    run.server_errors.append(_server_error(operation, status, interaction))


def _server_error(operation: str, status: int, interaction: dict[str, Any]) -> ServerError:
    request, response = interaction["request"], interaction["response"]
    return ServerError(operation=operation, status=status, method=request["method"],
                       url=request["uri"], body=_bytes(request.get("body")),
                       response=(_bytes(response.get("content")) or b"").decode(errors="replace"))


def _bytes(payload: Any) -> bytes | None:
    if isinstance(payload, dict) and "$base64" in payload:
        return base64.b64decode(payload["$base64"])
    if isinstance(payload, dict) and "string" in payload:
        return str(payload["string"]).encode()
    return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
