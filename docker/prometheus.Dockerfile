# syntax=docker/dockerfile:1
# Prometheus 2.42 from Debian's packages, for compose and the chart where no registry serves the
# upstream prom/prometheus image. Same command-line interface as that image; its configuration
# is mounted at /etc/prometheus/prometheus.yml.
#   docker/build.sh prometheus
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
ARG SERVICE_VERSION=2.42
LABEL org.opencontainers.image.title="prometheus" \
      org.opencontainers.image.description="ims-testbed Prometheus from Debian's packages" \
      org.opencontainers.image.version="${SERVICE_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# the server only: no exporters, no web console libraries (the HTTP API and UI are built in)
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin testbed \
    && mkdir -p /prometheus && chown 10001:10001 /prometheus
USER 10001:10001
WORKDIR /prometheus
VOLUME /prometheus
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /-/ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", \
     "--web.listen-address=0.0.0.0:9090"]
