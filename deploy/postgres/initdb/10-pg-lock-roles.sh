#!/usr/bin/env bash
# Runs once, when the official postgres image initialises an empty data directory
# (docker-compose.yml mounts this directory at /docker-entrypoint-initdb.d). It creates:
#
#   lock_monitor     LOGIN, IN ROLE pg_monitor: the exporter's read-only role. pg_monitor
#                    includes pg_read_all_stats, so every session's state and query is visible.
#   lock_remediator  LOGIN, IN ROLE pg_signal_backend, pg_monitor: the remediator. It may
#                    terminate sessions of any role except superusers, and sees them all.
#   app              LOGIN, an ordinary role (not a superuser, so pg_signal_backend can end
#                    its sessions): the application, and the role the incident runs as.
#   features         a table in database app (POSTGRES_DB), owned by app so app's
#                    migration may ALTER it.
#
# The names have no pg_ prefix: PostgreSQL reserves role names starting with pg_
# (CREATE ROLE pg_lock_monitor fails with 'role name "pg_lock_monitor" is reserved').
#
# Passwords come from the compose secrets in /run/secrets (deploy/make-secrets.sh makes them);
# psql reads each file itself (\set with backquotes), so no password is ever on a command line.
# The roles' passwords are set here only: after changing a secret, recreate the volume
# (docker compose down -v).
#
# The postgres entrypoint executes this file when it is executable and sources it otherwise;
# it is written to work both ways (no `set -u`, no `exit` except on error).
set -eo pipefail

for secret in lock_monitor_password lock_remediator_password app_password; do
    if [ ! -s "/run/secrets/$secret" ]; then
        echo "10-pg-lock-roles: /run/secrets/$secret is missing or empty (run deploy/make-secrets.sh)" >&2
        exit 1
    fi
done

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\set monitor_password `head -n 1 /run/secrets/lock_monitor_password`
\set remediator_password `head -n 1 /run/secrets/lock_remediator_password`
\set app_password `head -n 1 /run/secrets/app_password`

CREATE ROLE lock_monitor LOGIN PASSWORD :'monitor_password' IN ROLE pg_monitor;
COMMENT ON ROLE lock_monitor IS 'pg_lock_exporter serve: read-only (pg_monitor)';

CREATE ROLE lock_remediator LOGIN PASSWORD :'remediator_password' IN ROLE pg_signal_backend, pg_monitor;
COMMENT ON ROLE lock_remediator IS 'pg_lock_exporter remediate: may terminate non-superuser sessions';

CREATE ROLE app LOGIN PASSWORD :'app_password';
COMMENT ON ROLE app IS 'the demo application; the incident runs as this role';

\unset monitor_password
\unset remediator_password
\unset app_password

CREATE TABLE features (
    id      integer PRIMARY KEY,
    name    text    NOT NULL,
    enabled boolean NOT NULL DEFAULT false
);
INSERT INTO features (id, name, enabled)
SELECT g, 'feature ' || g, g % 2 = 0 FROM generate_series(1, 20) AS g;
ALTER TABLE features OWNER TO app;
SQL
