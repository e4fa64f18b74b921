# syntax=docker/dockerfile:1
# MariaDB 10.11 from Debian's packages, for compose and the chart where no registry serves the
# upstream mariadb image. It keeps that image's interface, so either can be used: MARIADB_DATABASE,
# MARIADB_USER, MARIADB_PASSWORD, MARIADB_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD create
# the database and its user on the first start of an empty /var/lib/mysql, and
# `healthcheck.sh --connect --innodb_initialized` answers the probes.
#   docker/build.sh mariadb
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
ARG SERVICE_VERSION=10.11
LABEL org.opencontainers.image.title="mariadb" \
      org.opencontainers.image.description="ims-testbed MariaDB from Debian's packages (the upstream image's MARIADB_* interface)" \
      org.opencontainers.image.version="${SERVICE_VERSION}" \
      org.opencontainers.image.licenses="GPL-2.0"
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server \
    && rm -rf /var/lib/apt/lists/* /var/lib/mysql \
    && mkdir -p /var/lib/mysql /run/mysqld \
    && chown mysql:mysql /var/lib/mysql /run/mysqld
COPY --chmod=0755 docker/mariadb/entrypoint.sh /usr/local/bin/mariadb-entrypoint
COPY --chmod=0755 docker/mariadb/healthcheck.sh /usr/local/bin/healthcheck.sh
# the same numeric user as the other images, so runAsNonRoot can verify it
RUN usermod -u 10001 mysql && groupmod -g 10001 mysql \
    && chown -R 10001:10001 /var/lib/mysql /run/mysqld
USER 10001:10001
VOLUME /var/lib/mysql
EXPOSE 3306
HEALTHCHECK --interval=5s --timeout=5s --start-period=20s --retries=12 \
    CMD ["healthcheck.sh", "--connect", "--innodb_initialized"]
ENTRYPOINT ["mariadb-entrypoint"]
