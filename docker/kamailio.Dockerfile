# syntax=docker/dockerfile:1
# Kamailio network functions (sip-proxy, sip-loadb) from Debian's packages plus the repo's
# configs, started by the very entrypoint local mode uses (kamailio/entrypoint.sh): it renders
# every setting from the environment and execs Kamailio in the foreground, so a crash ends the
# container and the orchestrator restarts it (the paper's image kept the container alive with
# `tail -f /dev/null` instead). Built from the repository root (docker/build.sh does this):
#   docker build -f docker/kamailio.Dockerfile --target kamailio -t ims-testbed/kamailio:0.1.0 .
#   docker build -f docker/kamailio.Dockerfile --target kamailio-debug -t ims-testbed/kamailio:0.1.0-debug .
# The role is the argument: `docker run IMAGE sip-proxy` (default) or `... sip-loadb`.
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS kamailio
ARG SERVICE_VERSION=0.1.0
LABEL org.opencontainers.image.title="kamailio" \
      org.opencontainers.image.description="ims-testbed Kamailio network functions: sip-proxy and sip-loadb (Debian packages, repo configs)" \
      org.opencontainers.image.version="${SERVICE_VERSION}" \
      org.opencontainers.image.licenses="MIT"
# Debian bookworm ships Kamailio 5.6, the version the configs are written and tested against.
# curl: the HEALTHCHECK and the proxies' lifecycle hooks; hostname: the entrypoint's address.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        kamailio kamailio-mysql-modules kamailio-sqlite-modules \
        curl ca-certificates hostname \
    && rm -rf /var/lib/apt/lists/*
# Kamailio needs no root: every port is above 1024 and the run dir is its own.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin testbed \
    && mkdir -p /run/kamailio && chown 10001:10001 /run/kamailio
COPY --chmod=0755 kamailio/entrypoint.sh /etc/kamailio/testbed/entrypoint.sh
# common.cfg: the routes both configs import (import_file, resolved next to them)
COPY kamailio/sip-proxy.cfg kamailio/sip-loadb.cfg kamailio/common.cfg /etc/kamailio/testbed/
ENV KAMAILIO_CONFIG_DIR=/etc/kamailio/testbed KAMAILIO_RUN_DIR=/run/kamailio
USER 10001:10001
EXPOSE 5060/udp 5061/udp 8080
# HTTP listens on the SIP address only (HTTP_LISTEN), so the check goes there, not to loopback
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null --max-time 3 \"http://${SIP_ADDRESS:-$(hostname -I | awk '{print $1}')}:${HTTP_PORT:-8080}/health\""]
ENTRYPOINT ["/etc/kamailio/testbed/entrypoint.sh"]
CMD ["sip-proxy"]

# The same with capture and inspection tools (paper A.3). tcpdump and sngrep get CAP_NET_RAW as
# a file capability so they work for the non-root user (kubectl exec ... tcpdump -i eth0 -p);
# /tmp/static-tcpdump is where ksniff looks for tcpdump (the paper's link).
FROM kamailio AS kamailio-debug
USER 0
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        tcpdump sngrep iproute2 procps netcat-openbsd iputils-ping dnsutils libcap2-bin \
    && setcap cap_net_raw+ep "$(command -v tcpdump)" \
    && setcap cap_net_raw+ep "$(command -v sngrep)" \
    && ln -s "$(command -v tcpdump)" /tmp/static-tcpdump \
    && rm -rf /var/lib/apt/lists/*
USER 10001:10001
