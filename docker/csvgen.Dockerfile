# syntax=docker/dockerfile:1
# csvgen: scenario CSV generation, validation and plots, as a service (`csvgen serve`) or a
# command (`docker run --rm IMAGE generate ...`). Built from the repository root:
#   docker build -f docker/csvgen.Dockerfile -t ims-testbed/csvgen:0.1.0 .
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
COPY libs/scenario-gen/pyproject.toml libs/scenario-gen/
COPY libs/api-token/pyproject.toml libs/api-token/
COPY libs/service-kit/pyproject.toml libs/service-kit/
COPY services/csvgen/pyproject.toml services/csvgen/
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-workspace --package csvgen
COPY libs/scenario-csv/src libs/scenario-csv/src
COPY libs/scenario-gen/src libs/scenario-gen/src
COPY libs/api-token/src libs/api-token/src
COPY libs/service-kit/src libs/service-kit/src
COPY services/csvgen/src services/csvgen/src
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable --package csvgen

FROM ${PYTHON_IMAGE}
ARG SERVICE_VERSION=0.1.0
LABEL org.opencontainers.image.title="csvgen" \
      org.opencontainers.image.description="ims-testbed csvgen: generates, validates and plots scenario CSVs" \
      org.opencontainers.image.version="${SERVICE_VERSION}" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/testbed --create-home \
        --shell /usr/sbin/nologin testbed
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/testbed-healthcheck
# matplotlib wants a writable config dir; the home is one
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 MPLCONFIGDIR=/var/lib/testbed/.matplotlib \
    CSVGEN_HOST=0.0.0.0 CSVGEN_PORT=8070
USER 10001:10001
WORKDIR /var/lib/testbed
EXPOSE 8070
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["testbed-healthcheck", "CSVGEN_HOST", "CSVGEN_PORT", "8070", "/health"]
ENTRYPOINT ["csvgen"]
CMD ["serve"]
