# syntax=docker/dockerfile:1
# The forwarder image. One image for every role:
#   forwarder run --config /etc/forwarder/forwarder.yaml    (the default command)
#   forwarder emulator --host 0.0.0.0 --port 8080           (the local PutEvents emulator)
#   forwarder sample --bootstrap-servers kafka:9092 ...     (create topics, produce sample events)
#
# Build:  docker build -t forwarder:local .
# Every Python dependency is pinned by constraints.txt; pin the base image by digest in production
# (docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:...).
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: install the package and its pinned dependencies into a virtualenv ----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (a layer that changes only with constraints.txt / pyproject.toml), then the code.
COPY pyproject.toml README.md constraints.txt ./
COPY forwarder ./forwarder
# Every dependency (confluent-kafka with its bundled librdkafka, orjson, pydantic-core, aiohttp) ships
# manylinux wheels for amd64 and arm64: no compiler is needed.
RUN pip install -c constraints.txt . \
    && python -m compileall -q /opt/venv/lib \
    && forwarder --help >/dev/null

# ---- runtime: the virtualenv, a non-root user, nothing else ------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# The package's version (forwarder/__init__.py) and the commit built; `make image` passes both.
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="personalize-kafka-forwarder" \
      org.opencontainers.image.description="Kafka → Amazon Personalize PutEvents forwarder" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
# /data is where `forwarder emulator --record` writes in docker-compose.yml (a named volume mounted there
# inherits this ownership); the forwarder itself writes nothing to disk and runs with a read-only root.
RUN groupadd --system --gid 10001 forwarder \
    && useradd --system --uid 10001 --gid forwarder --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin forwarder \
    && mkdir -p /etc/forwarder /data \
    && chown forwarder:forwarder /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
# /metrics, /healthz and /readyz (observability.port).
EXPOSE 9102
# Liveness: /healthz answers from its own thread and fails (503) on a stalled loop, a consumer no longer polled
# or a replica stopping after a failure. slim has no curl; python's urllib raises on connection errors and on
# any non-2xx status, which exits non-zero.
# The port follows FORWARDER__OBSERVABILITY__PORT when that is how it was changed. Other roles of the
# image (emulator, sample) override or disable this check (see docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FORWARDER__OBSERVABILITY__PORT', '9102'), timeout=4)"]
# SIGTERM (docker stop, Kubernetes) stops the forwarder gracefully within shutdown.timeout_s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["forwarder"]
CMD ["run", "--config", "/etc/forwarder/forwarder.yaml"]
