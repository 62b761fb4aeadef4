# syntax=docker/dockerfile:1
#
# pg_lock_exporter container image: one static-stdlib Swift binary on Debian 12 slim.
#
#   docker build -t pg_lock_exporter .
#   docker run --rm -e DATA_SOURCE_NAME='host=db dbname=app user=lock_monitor' -p 9817:9817 pg_lock_exporter
#
# The same image runs every subcommand: `serve` (the default CMD), `check` and `remediate`.
# Give it a password through a mounted secret file named by DATA_SOURCE_PASS_FILE (or
# --pg.password-file), never in DATA_SOURCE_NAME; docker-compose.yml shows how.
#
# No HEALTHCHECK: the runtime has no HTTP client, and adding one for a probe would grow the
# image; orchestrators should probe GET /metrics (pg_up tells "exporter up, database down").

# ---------------------------------------------------------------- build
# Swift 6.1 (Package.swift's tools version) on Debian 12, the same release as the runtime
# stage, so the libpq and libmicrohttpd the binary was linked against are the ones it loads.
FROM swift:6.1.2-bookworm AS build

# The system libraries Sources/C*/module.modulemap link: libpq, libmicrohttpd (with the GnuTLS
# it is built on, for client-certificate checks), libcrypt (bcrypt for basic auth) and libyaml
# (the config files), libpg_query (PostgreSQL's parser, to normalize statements) and SQLite (the
# blocking-episode store).
# Unpinned on purpose (hadolint DL3008): the versions are Debian 12's, fixed by the image tag;
# exact pins break the build whenever the security archive moves on.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpq-dev libmicrohttpd-dev libgnutls28-dev libcrypt-dev libyaml-dev libpg-query-dev libsqlite3-dev libcurl4-openssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Package.resolved is optional (not committed); the glob copies it when it is there.
COPY Package.* ./
COPY Sources ./Sources
# SwiftPM checks every declared target's directory, the test target's included.
COPY Tests ./Tests

# The cache mount keeps fetched dependencies and incremental build products between builds;
# the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/src/.build \
    swift build -c release --static-swift-stdlib -Xlinker -z -Xlinker pack-relative-relocs \
        --product pg_lock_exporter \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/pg_lock_exporter" /out/pg_lock_exporter \
 && strip /out/pg_lock_exporter

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim

# The shared libraries the binary links (the Swift runtime and stdlib are static): libpq5,
# libmicrohttpd12, libyaml-0-2, libpg-query1504.0, libsqlite3-0, libcurl4, and libgnutls30 and libcrypt1
# (both already in the base or pulled in by libmicrohttpd12; named so that stays true).
# ca-certificates for sslmode=verify-full. Unpinned for the reason given in the build stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpq5 libmicrohttpd12 libyaml-0-2 libpg-query1504.0 libsqlite3-0 libcurl4 libgnutls30 libcrypt1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid (65532, "nonroot" by convention) so volume ownership and
# Kubernetes runAsNonRoot checks are predictable. /var/lib/pg_lock_exporter is where the files
# the binary writes go (serve's --episodes.path, the remediator's --audit-log) with the root
# filesystem read-only; a named volume mounted there inherits this ownership.
RUN groupadd --system --gid 65532 pg_lock_exporter \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin pg_lock_exporter \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/pg_lock_exporter

COPY --from=build /out/pg_lock_exporter /usr/local/bin/pg_lock_exporter

USER 65532:65532

# Fails the build if a shared library the binary needs is missing from this stage.
RUN ["/usr/local/bin/pg_lock_exporter", "--version"]

LABEL org.opencontainers.image.title="pg_lock_exporter" \
      org.opencontainers.image.description="Prometheus exporter that names the session blocking your PostgreSQL database"

# 9817: `serve` (--web.listen-address). The remediator's webhook listener (remediate
# --listen) uses whatever address it is given; the compose stack uses 9818.
EXPOSE 9817
ENTRYPOINT ["/usr/local/bin/pg_lock_exporter"]
CMD ["serve"]
