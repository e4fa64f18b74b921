# syntax=docker/dockerfile:1
# scenario-controller: client hub, scenario store, replayer and web panel. Built from the
# repository root (docker/build.sh does this):
#   docker build -f docker/scenario-controller.Dockerfile -t ims-testbed/scenario-controller:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
# uv in a venv of its own: Debian's python3 refuses system-wide pip installs (PEP 668) and
# the python:*-slim images accept either; the system trust store holds any local CA.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1 UV_PYTHON=python3
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# third-party dependencies first (rebuilt only when uv.lock or these pyproject files change)
COPY pyproject.toml uv.lock ./
COPY libs/scenario-csv/pyproject.toml libs/scenario-csv/
COPY libs/sip-core/pyproject.toml libs/sip-core/
COPY libs/testbed-messages/pyproject.toml libs/testbed-messages/
COPY libs/api-token/pyproject.toml libs/api-token/
COPY libs/service-kit/pyproject.toml libs/service-kit/
COPY services/scenario-controller/pyproject.toml services/scenario-controller/
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-workspace --package scenario-controller
COPY libs/scenario-csv/src libs/scenario-csv/src
COPY libs/sip-core/src libs/sip-core/src
COPY libs/testbed-messages/src libs/testbed-messages/src
COPY libs/api-token/src libs/api-token/src
COPY libs/service-kit/src libs/service-kit/src
COPY services/scenario-controller/src services/scenario-controller/src
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable --package scenario-controller

FROM ${PYTHON_IMAGE}
ARG SERVICE_VERSION=0.1.0
LABEL org.opencontainers.image.title="scenario-controller" \
      org.opencontainers.image.description="ims-testbed scenario-controller: replays scenario CSVs to the client pods; web panel" \
      org.opencontainers.image.version="${SERVICE_VERSION}" \
      org.opencontainers.image.licenses="MIT"
# scenarios and run logs live under /var/lib/testbed (a volume in compose and in the chart)
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/testbed --create-home \
        --shell /usr/sbin/nologin testbed
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/testbed-healthcheck
COPY --chmod=0755 docker/upload_scenarios.py /usr/local/bin/testbed-upload-scenarios
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    SCENARIO_CONTROLLER_HOST=0.0.0.0 SCENARIO_CONTROLLER_PORT=8001 \
    SCENARIO_DIR=/var/lib/testbed/scenarios RUNS_DIR=/var/lib/testbed/runs
USER 10001:10001
WORKDIR /var/lib/testbed
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["testbed-healthcheck", "SCENARIO_CONTROLLER_HOST", "SCENARIO_CONTROLLER_PORT", "8001", "/health"]
ENTRYPOINT ["scenario-controller"]
