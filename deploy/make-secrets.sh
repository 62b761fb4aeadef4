#!/bin/sh
# deploy/make-secrets.sh [--force]: create the docker-compose stack's secrets.
#
# For every deploy/secrets/NAME.example it writes deploy/secrets/NAME: 32 random bytes as 64
# hex characters, no newline. Existing secrets are kept (the database roles get their
# passwords only when the postgres volume is first initialised); --force replaces them, and
# then the volumes must go too: docker compose down -v.
#
# Why generated and not committed demo passwords: the stack publishes Prometheus, Alertmanager,
# Grafana and the exporter on 127.0.0.1, and its roles can read every session's query text
# (lock_monitor) and terminate sessions (lock_remediator). A password known to everyone
# who has read this repo would be one on every machine the demo ever ran on. The secrets are
# gitignored (deploy/secrets/* except *.example).
#
# Permissions: the directory is made 0700 (only you can reach the files on the host); the
# files are 0644 because compose bind-mounts them unchanged, and the containers read them as
# their own unprivileged users (postgres 999, pg_lock_exporter 65532, nobody, grafana 472).
set -eu

dir=$(cd "$(dirname "$0")/secrets" && pwd)
force=""
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

chmod 700 "$dir"
umask 022
made=0
kept=0
for example in "$dir"/*.example; do
    [ -f "$example" ] || continue
    secret=${example%.example}
    if [ -s "$secret" ] && [ -z "$force" ]; then
        kept=$((kept + 1))
        continue
    fi
    value=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    if [ ${#value} -ne 64 ]; then
        echo "make-secrets: could not read 32 bytes from /dev/urandom" >&2
        exit 1
    fi
    tmp="$secret.tmp.$$"
    printf '%s' "$value" >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$secret"
    made=$((made + 1))
    echo "make-secrets: wrote ${secret#"$dir"/}"
done
echo "make-secrets: $made written, $kept kept, in $dir"
if [ -n "$force" ] && [ "$made" -gt 0 ]; then
    echo "make-secrets: the database keeps its old passwords until you run: docker compose down -v" >&2
fi
