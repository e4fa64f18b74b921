# syntax=docker/dockerfile:1
# analyzer: captures a proxy's SIP traffic (AF_PACKET) beside it and exports response times.
# Built from the repository root (docker/build.sh does this):
#   docker build -f docker/analyzer.Dockerfile -t ims-testbed/analyzer:0.1.0 .
#
# Live capture needs CAP_NET_RAW. The image runs as a non-root user, so the capability is put
# on a copy of the interpreter that only the service is started with (python-netraw, a file
# capability, effective on exec); every other process in the container runs without it. The
# runtime must leave NET_RAW in the container's bounding set (Docker does by default; the chart
# adds it after dropping ALL) and must not set no-new-privileges, which ignores file
# capabilities. Without CAP_NET_ADMIN the 32 MB socket buffer is capped by net.core.rmem_max.
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
# SIP_CORE_MYPYC=1: sip-core's modules (the scan the offline and live paths read every packet
# with) compiled by mypyc (libs/sip-core/setup.py); without a compiler the build fails instead
# of installing the pure-Python sources
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv SIP_CORE_MYPYC=1
WORKDIR /src
# third-party dependencies first (rebuilt only when uv.lock or these pyproject files change)
COPY pyproject.toml uv.lock ./
COPY libs/sip-core/pyproject.toml libs/sip-core/
COPY libs/service-kit/pyproject.toml libs/service-kit/
COPY libs/testbed-messages/pyproject.toml libs/testbed-messages/
COPY services/analyzer/pyproject.toml services/analyzer/
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-workspace --package analyzer
COPY libs/sip-core/setup.py libs/sip-core/
COPY libs/sip-core/src libs/sip-core/src
COPY libs/service-kit/src libs/service-kit/src
COPY libs/testbed-messages/src libs/testbed-messages/src
COPY services/analyzer/src services/analyzer/src
# no extras: the pyshark backend (analyzer[pyshark]) needs tshark, which the image leaves out.
# The members rebuilt from these sources every time: uv's cache (the mount) would otherwise
# hand back a wheel built from older sources, since their pyproject files did not change
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable --package analyzer \
    --reinstall-package sip-core --reinstall-package service-kit \
    --reinstall-package testbed-messages --reinstall-package analyzer
RUN /opt/venv/bin/python -c "import sip_core.build_info as b, sip_core.scan as s; \
assert b.compiled() and s.__file__.endswith('.so'), s.__file__"

FROM ${PYTHON_IMAGE}
ARG SERVICE_VERSION=0.1.0
LABEL org.opencontainers.image.title="analyzer" \
      org.opencontainers.image.description="ims-testbed analyzer: SIP response times captured beside a proxy (needs CAP_NET_RAW)" \
      org.opencontainers.image.version="${SERVICE_VERSION}" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin testbed
COPY --from=build /opt/venv /opt/venv
# The copy finds the venv through /opt/venv/pyvenv.cfg beside its directory, as the venv's own
# python does. libcap2-bin is only needed for setcap and goes again.
RUN cp "$(readlink -f /opt/venv/bin/python)" /opt/venv/bin/python-netraw \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends hostname libcap2-bin \
    && setcap cap_net_raw+ep /opt/venv/bin/python-netraw \
    && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/testbed-healthcheck
COPY --chmod=0755 docker/analyzer-entrypoint.sh /usr/local/bin/analyzer-entrypoint
# a sidecar captures on the pod's interface and serves on every address of the pod
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    ANALYZER_INTERFACE=eth0 ANALYZER_HTTP_HOST=0.0.0.0 ANALYZER_HTTP_PORT=9101
USER 10001:10001
EXPOSE 9101
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["testbed-healthcheck", "ANALYZER_HTTP_HOST", "ANALYZER_HTTP_PORT", "9101", "/health"]
ENTRYPOINT ["analyzer-entrypoint"]
CMD ["python-netraw", "-m", "analyzer"]
