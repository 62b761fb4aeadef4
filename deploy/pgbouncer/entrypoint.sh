#!/bin/sh
# PgBouncer in the docker-compose stack: writes its auth file from the compose secrets (the
# roles' passwords, never in the image or the repo), then runs PgBouncer in the foreground.
#
#   SECRETS_DIR     where the secrets are (default /run/secrets)
#   PGBOUNCER_RUN   a private directory for the auth file (default /run/pgbouncer, a tmpfs)
#   PGBOUNCER_INI   the configuration (default /etc/pgbouncer/pgbouncer.ini)
#
# Users: app (the application, through the pool) and lock_monitor, in stats_users: what
# pg_lock_exporter reads the admin console with (--pgbouncer.dsn). Plain passwords in the auth
# file let PgBouncer log in to PostgreSQL with SCRAM on the client's behalf.
set -eu
secrets=${SECRETS_DIR:-/run/secrets}
run=${PGBOUNCER_RUN:-/run/pgbouncer}
umask 077
mkdir -p "$run"
entry() {
    # The auth file's quoting: a double quote inside a value is written twice.
    printf '"%s" "%s"\n' "$1" "$(sed 's/"/""/g' "$secrets/$2")"
}
{
    entry app app_password
    entry lock_monitor lock_monitor_password
} > "$run/userlist.txt.new"
mv "$run/userlist.txt.new" "$run/userlist.txt"
exec pgbouncer "${PGBOUNCER_INI:-/etc/pgbouncer/pgbouncer.ini}"
