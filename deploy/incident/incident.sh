#!/usr/bin/env bash
# The seed incident, inside the compose stack:
#
#   docker compose --profile incident up incident
#
# As role `app` it
#   1. opens a transaction, reads `features`, and then does nothing: the session sits
#      "idle in transaction" holding an AccessShareLock on the table (the forgotten worker);
#   2. runs a migration, ALTER TABLE features ADD COLUMN ..., which needs an
#      AccessExclusiveLock and queues behind the worker;
#   3. starts two readers, SELECT count(*) FROM features, which queue behind the migration;
# then prints the state of those sessions every few seconds until the chain is released
# (normally by the remediator terminating the worker), and exits. However it ends (done,
# Ctrl-C, docker compose stop), the incident's sessions end with it.
#
# Environment (set by docker-compose.yml): PGHOST, PGDATABASE, PGUSER, APP_PASSWORD_FILE.
# Runs in the postgres image, which has bash and psql.
set -euo pipefail

readonly COLUMN=signature
readonly READERS=2
readonly INTERVAL=5

say() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

trap 'say "stopped; the incident'"'"'s sessions end with this script"; exit 130' INT TERM
trap 'kill "$ticker" 2>/dev/null || true' EXIT
trap '' PIPE  # a psql that died makes the write to its input fail with an error, not kill us
ticker=""

# libpq reads passwords from PGPASSFILE only when the file is mode 0600: copy the secret into
# one on /tmp (see deploy/pg_lock_exporter/with-pgpass.sh for the same thing, explained).
[ -r "${APP_PASSWORD_FILE:?}" ] || die "cannot read $APP_PASSWORD_FILE (run deploy/make-secrets.sh)"
umask 077
password=$(head -n 1 "$APP_PASSWORD_FILE" | tr -d '\r')
password=${password//\\/\\\\}
password=${password//:/\\:}
printf '*:*:*:*:%s\n' "$password" >/tmp/pgpass
unset password
export PGPASSFILE=/tmp/pgpass
# Our own monitoring queries are told apart from the incident's sessions by this name.
export PGAPPNAME=incident-monitor

sql() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }

# session NAME SQL: a psql session named NAME (its application_name) that runs SQL and then
# stays connected. Its standard input is a FIFO whose write end this script keeps open, so
# psql waits for more input; when this script ends, for whatever reason, psql reads EOF and
# quits, and its session ends with it.
# Each psql closes the write ends it inherits from earlier sessions, or a reader queued on
# the lock would keep the worker's input open and the worker would never see EOF.
session_fds=()
session() {
    local fifo fd
    fifo=$(mktemp -u "/tmp/$1.XXXXXX")
    mkfifo -m 600 "$fifo"
    (
        for inherited in "${session_fds[@]}"; do exec {inherited}>&-; done
        exec psql -X -q "application_name=$1" <"$fifo" >>"/tmp/$1.out" 2>&1
    ) &
    exec {fd}>"$fifo"
    rm -f "$fifo"
    session_fds+=("$fd")
    printf '%s\n' "$2" >&"$fd" 2>/dev/null || die "psql for $1 exited: $(tail -n 2 "/tmp/$1.out")"
}

wait_for() {  # DESCRIPTION SQL-CONDITION: poll until the condition is true (30 s at most)
    for _ in $(seq 1 150); do
        [ "$(sql "SELECT ($2)")" = t ] && return 0
        sleep 0.2
    done
    die "timed out waiting for: $1"
}

mine="usename = current_user AND application_name IN ('worker', 'alembic', 'web')"

# ------------------------------------------------------------------ set the scene
for _ in $(seq 1 30); do sql "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
sql "SELECT 1" >/dev/null || die "cannot connect as $PGUSER to $PGDATABASE on $PGHOST"

if [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE $mine")" != 0 ]; then
    die "sessions of an earlier incident are still connected; stop it first (docker compose --profile incident down)"
fi
# A rerun starts from the same table: drop the column an earlier run's migration added.
sql "SET client_min_messages = warning; SET lock_timeout = '5s'; ALTER TABLE features DROP COLUMN IF EXISTS $COLUMN" \
    || die "could not reset table features (is something still holding a lock on it?)"

say "Starting the seed incident in database $PGDATABASE on $PGHOST, as role $PGUSER."

say "1/3 worker:  BEGIN; SELECT ... FROM features;  then nothing, no COMMIT: the session stays"
say "             idle in transaction and keeps its AccessShareLock on features."
session worker "BEGIN; SELECT id, name FROM features WHERE enabled LIMIT 3;"
wait_for "the worker to be idle in transaction" \
    "EXISTS (SELECT FROM pg_stat_activity WHERE $mine AND application_name = 'worker' AND state = 'idle in transaction')"

say "2/3 alembic: ALTER TABLE features ADD COLUMN $COLUMN text;  needs an AccessExclusiveLock,"
say "             so it waits for the worker."
session alembic "ALTER TABLE features ADD COLUMN $COLUMN text;"
wait_for "the migration to wait on a lock" \
    "EXISTS (SELECT FROM pg_stat_activity WHERE $mine AND application_name = 'alembic' AND wait_event_type = 'Lock')"

say "3/3 web x$READERS: SELECT count(*) FROM features;  queue behind the migration's lock request."
for _ in $(seq 1 "$READERS"); do
    session web "SELECT count(*) FROM features;"
done
wait_for "the readers to wait on a lock" \
    "(SELECT count(*) FROM pg_stat_activity WHERE $mine AND application_name = 'web' AND wait_event_type = 'Lock') = $READERS"

worker_pid=$(sql "SELECT pid FROM pg_stat_activity WHERE $mine AND application_name = 'worker'")
say "The chain is in place: worker (pid $worker_pid) -> alembic -> $READERS x web."
say "Now watch (docs/docker-compose.md):"
say "  Grafana  http://localhost:3000   blocked sessions, root blocker pid $worker_pid"
say "  Prom.    http://localhost:9090/alerts   PostgresBlockerIdleInTransaction: pending after ~60 s"
say "           of idleness, firing ~1 min later"
say "  AM       http://localhost:9093   the alert, sent to the pg-lock-remediator webhook"
say "  docker compose logs -f remediator   the termination decision"

# ------------------------------------------------------------------ watch
status_sql="SELECT coalesce(string_agg(
        format('%s %s: %s %ss', application_name, pid,
               CASE WHEN wait_event_type = 'Lock' THEN 'waiting on a lock' ELSE state END,
               extract(epoch FROM now() - coalesce(state_change, now()))::int),
        ' | ' ORDER BY backend_start), 'no incident sessions')
    FROM pg_stat_activity WHERE $mine"
column_sql="EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'features'::regclass
                    AND attname = '$COLUMN' AND NOT attisdropped)"
waiting_sql="SELECT count(*) FROM pg_stat_activity WHERE $mine AND wait_event_type = 'Lock'"

started=$SECONDS
worker_gone=""
hinted=""
while :; do
    say "$(sql "$status_sql")"
    if [ -z "$worker_gone" ] && [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE pid = $worker_pid")" = 0 ]; then
        worker_gone=1
        say ">>> The worker's session (pid $worker_pid) is gone: terminated after $((SECONDS - started)) s."
        say "    (docker compose logs remediator shows the decision.)"
    fi
    if [ "$(sql "SELECT $column_sql")" = t ] && [ "$(sql "$waiting_sql")" = 0 ]; then
        say ">>> The chain is released: the ALTER TABLE added column $COLUMN and the readers got their rows."
        say "    PostgresBlockerIdleInTransaction keeps firing for its keep_firing_for (3m), then resolves;"
        say "    PostgresRemediationExecuted (info) reports the termination. Incident over."
        exit 0
    fi
    if [ -n "$worker_gone" ] && [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE $mine AND application_name = 'alembic'")" = 0 ]; then
        die "the migration's session ended without adding the column: $(tail -n 3 /tmp/alembic.out)"
    fi
    if [ -z "$hinted" ] && [ $((SECONDS - started)) -ge 300 ]; then
        hinted=1
        say "Still blocked after 5 minutes. Is the remediator up and run with --execute?"
        say "  docker compose logs remediator; http://localhost:9093 (was the webhook sent?)"
    fi
    sleep "$INTERVAL" & ticker=$!
    wait "$ticker"
done
