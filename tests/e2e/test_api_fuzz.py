"""API fuzzing: schemathesis against a server's /openapi.json, with a token and without, over
every operation; no request, however malformed, may get a 5xx, and no response may contradict
the document (a status, content type, header or body schema it does not declare).

The suite runs a small budget (well under a minute); `make fuzz` runs the same test with a
large one through these variables:
- HUBBUB_FUZZ_EXAMPLES  Hypothesis examples per operation (fuzzing phase), default 2
- HUBBUB_FUZZ_SECONDS   time budget of each of the two runs, default 12
- HUBBUB_FUZZ_MIN_CASES cases each run must at least make, default 50
- HUBBUB_FUZZ_SEED      a fixed seed (default: a fresh one, printed)
- HUBBUB_FUZZ_REPORTS   where the NDJSON reports go (default: pytest's tmp_path)

The server is this module's own: its own database and Redis key prefix (both removed
afterwards), rate limits lifted and a long token lifetime, so the fuzzer reaches the
handlers instead of 429s and 401s. Every 5xx fails the test, listed with its request.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest_asyncio
import redis.asyncio as redis

from tests.e2e.conftest import e2e_env
from tests.support.accounts import signup
from tests.support.databases import create_database, drop_database
from tests.support.fuzz import Budget, FuzzRun, fuzz
from tests.support.server import HubbubProcess

EXAMPLES = int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "2"))
SECONDS = int(os.environ.get("HUBBUB_FUZZ_SECONDS", "12"))
MIN_CASES = int(os.environ.get("HUBBUB_FUZZ_MIN_CASES", "50"))
SEED = int(os.environ["HUBBUB_FUZZ_SEED"]) if os.environ.get("HUBBUB_FUZZ_SEED") else None
# Signs the fuzzer's own token out: fuzzed on its own, last.
REVOKES_TOKENS = "/v1/auth/logout_all"
# Schemathesis reads this document; it does not fuzz it.
SCHEMA = "GET /openapi.json"


@pytest_asyncio.fixture(scope="module")
async def fuzz_server(admin_pg_dsn: str, redis_url: str) -> AsyncIterator[HubbubProcess]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_fuzz")
    env = {**e2e_env(dsn, redis_url), "ACCESS_TOKEN_TTL": "7200", "POSTS_PER_DAY": "1000000"}
    server = HubbubProcess(env).start()
    try:
        yield server
    finally:
        assert server.stop() == 0, "hubbub did not shut down cleanly on SIGTERM"
        await drop_database(admin_pg_dsn, dsn)
        client = redis.Redis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{env['REDIS_KEY_PREFIX']}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest_asyncio.fixture(scope="module")
async def fuzz_token(fuzz_server: HubbubProcess) -> str:
    async with aiohttp.ClientSession(base_url=fuzz_server.base_url) as http:
        return (await signup(http, "fuzz")).token


def _operations(base_url: str) -> set[str]:
    with urllib.request.urlopen(f"{base_url}/openapi.json", timeout=10) as response:
        paths = json.load(response)["paths"]
    return {f"{method.upper()} {path}" for path, item in paths.items()
            for method in item} - {SCHEMA}


def _report_dir(tmp_path: Path) -> Path:
    configured = os.environ.get("HUBBUB_FUZZ_REPORTS")
    return Path(configured) if configured else tmp_path


def _check(run: FuzzRun) -> None:
    print(run.summary())
    assert run.cases > 0, f"schemathesis made no request (exit {run.exit_code}):\n{run.output}"
    assert not run.server_errors, (
        f"{len(run.server_errors)} responses 5xx ({run.label}):\n"
        + "\n".join(str(error) for error in run.server_errors[:25]))
    assert not run.contradictions, (
        f"{len(run.contradictions)} responses contradict the document ({run.label}):\n"
        + "\n".join(f"{op} {check}: {found}" for op, check, found in run.contradictions[:25]))


def test_no_request_gets_a_5xx_or_a_response_the_document_does_not_declare(
        fuzz_server: HubbubProcess, fuzz_token: str, tmp_path: Path) -> None:
    operations = _operations(fuzz_server.base_url)
    reports = _report_dir(tmp_path)
    seed = SEED if SEED is not None else uuid.uuid4().int % 2**63
    print(f"\nfuzzing {len(operations)} operations, seed {seed}, reports in {reports}")
    budget = Budget(examples=EXAMPLES, seconds=SECONDS, seed=seed)
    anonymous = fuzz(fuzz_server.base_url, label="without a token", budget=budget,
                     report_dir=reports)
    authed = fuzz(fuzz_server.base_url, label="with a token", budget=budget, report_dir=reports,
                  token=fuzz_token, args=("--exclude-path-regex", REVOKES_TOKENS))
    runs = [anonymous, authed]
    if any(REVOKES_TOKENS in operation for operation in operations):
        runs.append(fuzz(fuzz_server.base_url, label="with a token, signing out",
                         budget=Budget(examples=2, seconds=4, seed=seed), report_dir=reports,
                         token=fuzz_token, args=("--include-path-regex", REVOKES_TOKENS)))
    for run in runs:
        _check(run)
    total = sum(run.cases for run in runs)
    covered = set().union(*(run.operations for run in runs))
    print(f"total: {total} cases, {len(covered)}/{len(operations)} operations, "
          f"{sum(len(run.server_errors) for run in runs)} responses 5xx")
    assert covered == operations, f"never fuzzed: {sorted(operations - covered)}"
    # A crash answered with a 4xx (an actor restarted, say) is a bug too: Hubbub logs it.
    # (aiohttp.server logs requests its HTTP parser refused, with a 400 of its own.)
    crashes = [line for line in fuzz_server.logs() if line.get("level") in ("error", "critical")
               and str(line.get("logger", "")).startswith("hubbub")]
    assert crashes == [], "\n".join(json.dumps(line)[:600] for line in crashes[:10])
    for run in (anonymous, authed):
        assert run.cases >= MIN_CASES, f"{run.label}: only {run.cases} cases"
