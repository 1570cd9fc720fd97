# syntax=docker/dockerfile:1
# Hubbub image: `make docker` (docker build -t hubbub:dev .).
# Stage 1 builds a virtualenv from wheels; stage 2 copies only that venv onto a slim base and
# runs it as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first, in their own layer, so a code change does not reinstall them.
# Every pinned dependency ships manylinux wheels for CPython 3.11 on x86_64 (glibc <= 2.27),
# so no compiler is needed; other platforms may need build-essential in this stage.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip wheel --wheel-dir /wheels -r requirements.txt \
 && pip install --no-index --find-links /wheels -r requirements.txt

# Then the project itself, as a regular (non-editable) wheel.
COPY README.md ./
COPY protocols ./protocols
COPY actors ./actors
COPY storage ./storage
COPY server ./server
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip install --no-deps --no-index --find-links /wheels hubbub


FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 hubbub \
 && useradd --system --uid 10001 --gid hubbub --home-dir /app --shell /usr/sbin/nologin hubbub \
 && mkdir -p /app/var \
 && chown hubbub:hubbub /app/var
COPY --from=builder /opt/venv /opt/venv

# HOST=0.0.0.0: inside a container the port must be reachable from outside the loopback.
# DATA_DIR only matters for the embedded defaults (no DATABASE_URL / S3_ENDPOINT_URL).
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
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)"

# `hubbub serve` drains on SIGTERM (see SHUTDOWN_TIMEOUT / DRAIN_SECONDS).
STOPSIGNAL SIGTERM
CMD ["hubbub", "serve"]
