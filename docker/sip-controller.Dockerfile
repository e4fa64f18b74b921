# syntax=docker/dockerfile:1
# sip-controller: owns the testbed DB (schema, subscribers), drives the load balancers through
# the proxies' lifecycle hooks. Built from the repository root (docker/build.sh does this):
#   docker build -f docker/sip-controller.Dockerfile -t ims-testbed/sip-controller:0.1.0 .
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
# Third-party dependencies from uv.lock first: this layer is rebuilt only when the lock or one
# of these pyproject files changes, not when the code does.
COPY pyproject.toml uv.lock ./
COPY libs/testbed-db/pyproject.toml libs/testbed-db/
COPY libs/kamailio-rpc/pyproject.toml libs/kamailio-rpc/
COPY libs/api-token/pyproject.toml libs/api-token/
COPY libs/service-kit/pyproject.toml libs/service-kit/
COPY services/sip-controller/pyproject.toml services/sip-controller/
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-workspace --package sip-controller
# Then the workspace packages it uses, installed into the venv (not editable: /src stays here).
COPY libs/testbed-db/src libs/testbed-db/src
COPY libs/kamailio-rpc/src libs/kamailio-rpc/src
COPY libs/api-token/src libs/api-token/src
COPY libs/service-kit/src libs/service-kit/src
COPY services/sip-controller/src services/sip-controller/src
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable --package sip-controller

FROM ${PYTHON_IMAGE}
ARG SERVICE_VERSION=0.1.0
LABEL org.opencontainers.image.title="sip-controller" \
      org.opencontainers.image.description="ims-testbed sip-controller: DB owner, lifecycle hooks, load-balancer conductor" \
      org.opencontainers.image.version="${SERVICE_VERSION}" \
      org.opencontainers.image.licenses="MIT"
# a fixed numeric UID so Kubernetes' runAsNonRoot can verify it; its home holds the default
# SQLite file (DATABASE_URL) when no MariaDB is given
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/testbed --create-home \
        --shell /usr/sbin/nologin testbed
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/testbed-healthcheck
COPY --chmod=0755 docker/db_init.py /usr/local/bin/testbed-db-init
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    SIP_CONTROLLER_HOST=0.0.0.0 SIP_CONTROLLER_PORT=8000
USER 10001:10001
WORKDIR /var/lib/testbed
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["testbed-healthcheck", "SIP_CONTROLLER_HOST", "SIP_CONTROLLER_PORT", "8000", "/health"]
ENTRYPOINT ["sip-controller"]
