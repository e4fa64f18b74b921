# syntax=docker/dockerfile:1
# policy-controller: the testbed's predictive scaling policy as an in-cluster controller (the
# chart's global.sipProxy.autoscaler predictive). Built from the repository root:
#   docker build -f docker/policy-controller.Dockerfile -t ims-testbed/policy-controller:0.1.0 .
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
COPY libs/prom-answer/pyproject.toml libs/prom-answer/
COPY libs/scaling-policy/pyproject.toml libs/scaling-policy/
COPY libs/service-kit/pyproject.toml libs/service-kit/
COPY services/policy-controller/pyproject.toml services/policy-controller/
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-workspace --package policy-controller
COPY libs/prom-answer/src libs/prom-answer/src
COPY libs/scaling-policy/src libs/scaling-policy/src
COPY libs/service-kit/src libs/service-kit/src
COPY services/policy-controller/src services/policy-controller/src
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable --package policy-controller

FROM ${PYTHON_IMAGE}
ARG SERVICE_VERSION=0.1.0
LABEL org.opencontainers.image.title="policy-controller" \
      org.opencontainers.image.description="ims-testbed policy-controller: the predictive scaling policy, setting the SIP proxies' replicas through their scale subresource" \
      org.opencontainers.image.version="${SERVICE_VERSION}" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/testbed --create-home \
        --shell /usr/sbin/nologin testbed
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/testbed-healthcheck
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    POLICY_CONTROLLER_HOST=0.0.0.0 POLICY_CONTROLLER_PORT=8095
USER 10001:10001
WORKDIR /var/lib/testbed
EXPOSE 8095
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["testbed-healthcheck", "POLICY_CONTROLLER_HOST", "POLICY_CONTROLLER_PORT", "8095", "/health"]
ENTRYPOINT ["policy-controller"]
CMD ["serve"]
