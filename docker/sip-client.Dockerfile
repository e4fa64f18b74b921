# syntax=docker/dockerfile:1
# sip-client: one pod of up to 100 softphones on one UDP socket, driven by the scenario
# controller. Built from the repository root (docker/build.sh does this):
#   docker build -f docker/sip-client.Dockerfile -t ims-testbed/sip-client:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
# uv in a venv of its own: Debian's python3 refuses system-wide pip installs (PEP 668) and
# the python:*-slim images accept either; the system trust store holds any local CA.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1 UV_PYTHON=python3
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
# a C compiler and Python's headers for sip-core's mypyc build, in this stage only (the image
# copies /opt/venv): python:*-slim has the headers, the local Debian base needs python3-dev
RUN dev=python3-dev; \
    python3 -c 'import os, sysconfig; os.stat(sysconfig.get_paths()["include"] + "/Python.h")' \
      2>/dev/null && dev=; \
    apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       gcc libc6-dev $dev \
    && rm -rf /var/lib/apt/lists/*
# SIP_CORE_MYPYC=1: sip-core's modules compiled by mypyc (libs/sip-core/setup.py); without a
# compiler the build fails instead of installing the pure-Python sources
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv SIP_CORE_MYPYC=1
WORKDIR /src
# third-party dependencies first (rebuilt only when uv.lock or these pyproject files change)
COPY pyproject.toml uv.lock ./
COPY libs/sip-core/pyproject.toml libs/sip-core/
COPY libs/testbed-messages/pyproject.toml libs/testbed-messages/
COPY libs/api-token/pyproject.toml libs/api-token/
COPY libs/service-kit/pyproject.toml libs/service-kit/
COPY services/sip-client/pyproject.toml services/sip-client/
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-workspace --package sip-client
COPY libs/sip-core/setup.py libs/sip-core/
COPY libs/sip-core/src libs/sip-core/src
COPY libs/testbed-messages/src libs/testbed-messages/src
COPY libs/api-token/src libs/api-token/src
COPY libs/service-kit/src libs/service-kit/src
COPY services/sip-client/src services/sip-client/src
# the members rebuilt from these sources every time: uv's cache (the mount) would otherwise
# hand back a wheel built from older sources, since their pyproject files did not change
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable --package sip-client \
    --reinstall-package sip-core --reinstall-package testbed-messages \
    --reinstall-package api-token --reinstall-package service-kit \
    --reinstall-package sip-client
RUN /opt/venv/bin/python -c "import sip_core.build_info as b, sip_core.message as m; \
assert b.compiled(), m.__file__"

FROM ${PYTHON_IMAGE}
ARG SERVICE_VERSION=0.1.0
LABEL org.opencontainers.image.title="sip-client" \
      org.opencontainers.image.description="ims-testbed sip-client: a pod of softphones (REGISTER, INVITE with digest auth, BYE)" \
      org.opencontainers.image.version="${SERVICE_VERSION}" \
      org.opencontainers.image.licenses="MIT"
# hostname -I gives the entrypoint the pod's address (no longer Essential after bookworm)
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends hostname \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin testbed
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/testbed-healthcheck
COPY --chmod=0755 docker/sip-client-entrypoint.sh /usr/local/bin/sip-client-entrypoint
# the pod's SIP socket takes a fixed port so a NetworkPolicy or a capture can name it
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    SIP_CLIENT_HTTP_HOST=0.0.0.0 SIP_CLIENT_HTTP_PORT=8090 SIP_CLIENT_PORT=5060
USER 10001:10001
EXPOSE 5060/udp 8090
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["testbed-healthcheck", "SIP_CLIENT_HTTP_HOST", "SIP_CLIENT_HTTP_PORT", "8090", "/health"]
ENTRYPOINT ["sip-client-entrypoint"]
CMD ["sip-client"]
