# Hubbub developer entry points. On a fresh machine: `make run` or `make test`.
# Everything installs into ./.venv; a stamp file per dependency set skips reinstalling until
# pyproject.toml changes.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := PIP_DISABLE_PIP_VERSION_CHECK=1 $(BIN)/python -m pip
IMAGE ?= hubbub:dev
PYTEST_ARGS ?=
DEPLOY_YAML := $(wildcard deploy/*.yml deploy/k8s/*.yaml)

# Stamps: one per set of extras. The test set contains the runtime set.
STAMP_RUN := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test
STAMP_LOAD := $(VENV)/.stamp-load

.PHONY: help run test lint fmt migrate bench bench-feed bench-chat bench-cluster bench-scheduler \
  docker clean \
  clean-data redis fuzz

help:
	@echo "make run         serve on 127.0.0.1:8080 (embedded Postgres, data in ./var)"
	@echo "make test        ruff check, deploy YAML check, then pytest (PYTEST_ARGS=...)"
	@echo "make lint        ruff check and deploy YAML check"
	@echo "make fuzz        schemathesis over every API operation of a throwaway server: no 5xx"
	@echo "make fmt         ruff format and ruff check --fix"
	@echo "make migrate     apply database migrations (DATABASE_URL, or the embedded one)"
	@echo "make bench       load test a fresh local server (BENCH_USERS, BENCH_SECONDS)"
	@echo "make bench-feed  seed a large graph, print feed read latency and fan-out times"
	@echo "make bench-chat  Socket.IO chat, Hubbub alone: deliveries per CPU-s, peak deliveries/s, latency, RSS and CPU per connection"
	@echo "make bench-cluster  the bench-chat load on a 1-node then a 2-node cluster, side by side"
	@echo "make bench-disconnect  how long the loop stays busy when 4,000 / 20,000 sockets drop at once"
	@echo "make bench-scheduler  scheduled posts: lateness when idle, and 2,000 due in one second"
	@echo "make docker      build the container image $(IMAGE)"
	@echo "make clean       remove .venv (with its install stamps) and caches"
	@echo "make clean-data  remove ./var (embedded Postgres data, local media, JWT secret)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Hubbub needs Python >= 3.11 (PYTHON=$(PYTHON) is older)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "python3 -m venv failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	@touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[test]'
	@touch $@ $(STAMP_RUN)

$(STAMP_LOAD): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[load]'
	@touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	exec $(BIN)/hubbub serve

migrate: $(STAMP_RUN)
	$(BIN)/hubbub migrate

# The tests find Redis on 127.0.0.1:6379 or start `redis-server` themselves on a free port
# (tests/support/services.py); here we only make sure that binary exists when nothing listens.
redis:
	@if [ -z "$${TEST_REDIS_URL:-}" ] && ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null \
	    && ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "No Redis on 127.0.0.1:6379 and no redis-server binary: installing redis-server"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq </dev/null && apt-get install -y -qq redis-server </dev/null >/dev/null; \
	  else \
	    echo "warning: no Redis on 127.0.0.1:6379 and no redis-server binary;" \
	         "install Redis (Debian: apt-get install redis-server) or set TEST_REDIS_URL" >&2; \
	  fi; \
	fi

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/python -c 'import sys, yaml; [list(yaml.safe_load_all(open(p))) for p in sys.argv[1:]]' \
	  $(DEPLOY_YAML)
	@echo "deploy YAML parses: $(words $(DEPLOY_YAML)) files"

fmt: $(STAMP_TEST)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# pytest exit code 5 means "no tests collected": not a failure for us.
test: lint redis
	$(BIN)/pytest $(PYTEST_ARGS) </dev/null || { rc=$$?; [ $$rc -eq 5 ] || exit $$rc; \
	  echo "pytest collected no tests"; }

# Schemathesis against a throwaway server's /openapi.json (its own database and Redis key
# prefix, removed afterwards), with a token and without: at least 2,000 cases each way, and any
# 5xx fails. Bounded: two runs of FUZZ_SECONDS, a short third one and start-up. NDJSON reports
# of every request and response land in var/fuzz/. FUZZ_SEED=<n> replays a run.
FUZZ_EXAMPLES ?= 40
FUZZ_SECONDS ?= 150
FUZZ_SEED ?=
fuzz: $(STAMP_TEST) redis
	HUBBUB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HUBBUB_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  HUBBUB_FUZZ_MIN_CASES=2000 HUBBUB_FUZZ_SEED=$(FUZZ_SEED) \
	  HUBBUB_FUZZ_REPORTS=$(CURDIR)/var/fuzz \
	  timeout --kill-after=30 $$(( 2 * $(FUZZ_SECONDS) + 300 )) \
	  $(BIN)/pytest -p no:cacheprovider -q -s tests/e2e/test_api_fuzz.py </dev/null

bench: $(STAMP_LOAD)
	$(BIN)/python loadtest/bench.py

bench-feed: $(STAMP_LOAD)
	$(BIN)/python loadtest/bench_feed.py

bench-chat: $(STAMP_LOAD)
	$(BIN)/python loadtest/bench_chat.py

# Needs Redis on 127.0.0.1:6379 (BENCH_REDIS_URL): both runs are Redis-backed clusters.
bench-cluster: $(STAMP_LOAD)
	$(BIN)/python loadtest/bench_cluster.py

# Needs Postgres on 127.0.0.1:5432 and, for BENCH_NODES > 1 (default 3), Redis on :6379.
bench-scheduler: $(STAMP_LOAD)
	$(BIN)/python loadtest/bench_scheduler.py

# BENCH_DISCONNECT_SOCKETS (4000,20000): one fresh server per size; minutes at 20,000.
bench-disconnect: $(STAMP_LOAD)
	$(BIN)/python loadtest/bench_disconnect.py

# Documented rather than exercised here: needs a Docker engine.
docker:
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# The embedded Postgres must not be running (stop `make run` first).
clean-data:
	rm -rf var
