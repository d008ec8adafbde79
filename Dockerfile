# syntax=docker/dockerfile:1
# usm-dispatch container image: `usm api`, `usm worker --team T` or `usm serve` (with REDIS_URL).
#
#   docker build -t usm-dispatch .
#   docker run --rm -p 8000:8000 -e REDIS_URL=redis://redis:6379/0 usm-dispatch        # usm api
#   docker run --rm -e REDIS_URL=... usm-dispatch worker --team service_desk --metrics-port 9100
#
# Tables are baked in at /app/tables; mount a directory (or a Kubernetes ConfigMap) over it, or
# point USM_TABLES elsewhere, to run with other tables. No secrets are baked in: API keys and the
# Redis password arrive as environment variables or mounted files at run time.
# See docs/deploy.md. Pin the base by digest in production (`python:3.11.14-slim-bookworm@sha256:...`).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: install the locked dependencies and the project into a venv ----------------------
FROM ${PYTHON_IMAGE} AS builder

# uv installs exactly what uv.lock says (scripts/dev does the same for .venv); it is pinned too.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

WORKDIR /src
RUN pip install uv==0.13.9

# Sources only (see .dockerignore): the package metadata and the lock, then the code.
COPY pyproject.toml uv.lock README.md LICENSE ./
COPY service/ service/
COPY worker/ worker/

# --locked: the build fails if uv.lock does not match pyproject.toml. --no-editable installs the
# project as an ordinary wheel, so the venv does not point back into /src. No extras, no tests.
RUN uv sync --locked --no-dev --no-editable --compile-bytecode \
    && /opt/venv/bin/usm --version

# --- final: slim runtime, no build tools, non-root -----------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="usm-dispatch" \
      org.opencontainers.image.description="USM unified prioritization and dispatch service" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    USM_HOST=0.0.0.0 \
    USM_PORT=8000 \
    USM_TABLES=/app/tables \
    USM_DATA_DIR=/app/var

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it and volumes can be chowned.
RUN groupadd --system --gid 10001 usm \
    && useradd --system --uid 10001 --gid usm --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin usm

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Root-owned and read-only for the service user: tables change by image, volume or ConfigMap,
# never by the running process.
COPY tables/ /app/tables/
# The only writable path (embedded Redis data for `usm serve`); mount a volume here if used.
RUN mkdir -p /app/var && chown usm:usm /app/var

USER 10001:10001

# 8000: the API (/healthz, /readyz, /metrics, /v1/...); 9100: a worker's metrics endpoint.
EXPOSE 8000 9100

# Liveness of the API without curl: the stdlib is enough. Worker containers override this
# (compose.yaml checks their metrics port instead).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('USM_PORT', '8000'), timeout=2)"]

# Exec form: `usm` is PID 1 and receives SIGTERM itself (the API and the workers handle it:
# the API drains; a worker finishes its current item, a second signal puts it back).
STOPSIGNAL SIGTERM
ENTRYPOINT ["usm"]
CMD ["api"]
