#!/bin/sh
# with-pgpass.sh PROGRAM [ARG...]: give libpq the password from a secret file, then exec PROGRAM.
#
# libpq has no "password file" variable of its own except PGPASSFILE, a .pgpass file that it
# ignores unless it is a plain file with mode 0600 or stricter. A compose secret is a bind
# mount that keeps the host file's owner and mode, so it cannot be made 0600 *and* owned by
# the container's user (65532) portably. This wrapper therefore copies the password from
#   DATA_SOURCE_PASS_FILE   (the name postgres_exporter uses for the same thing)
# into a fresh .pgpass at $PGPASSFILE (default /tmp/pgpass: a tmpfs in the compose stack,
# so the copy never touches a disk), mode 0600, owned by the user running this script.
# The password never appears in the environment, a command line or a connection string.
#
# Without DATA_SOURCE_PASS_FILE it only execs PROGRAM (libpq's own defaults then apply).
set -eu

if [ -n "${DATA_SOURCE_PASS_FILE:-}" ]; then
    if [ ! -r "$DATA_SOURCE_PASS_FILE" ]; then
        echo "with-pgpass: cannot read DATA_SOURCE_PASS_FILE=$DATA_SOURCE_PASS_FILE (run deploy/make-secrets.sh?)" >&2
        exit 2
    fi
    PGPASSFILE=${PGPASSFILE:-/tmp/pgpass}
    export PGPASSFILE
    # First line only, without a trailing CR; in .pgpass, backslash and colon are escaped.
    password=$(head -n 1 "$DATA_SOURCE_PASS_FILE" | tr -d '\r')
    if [ -z "$password" ]; then
        echo "with-pgpass: $DATA_SOURCE_PASS_FILE is empty" >&2
        exit 2
    fi
    escaped=$(printf '%s' "$password" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g')
    umask 077
    rm -f "$PGPASSFILE"
    # host:port:database:user:password; one secret per container, so every field is *.
    printf '*:*:*:*:%s\n' "$escaped" >"$PGPASSFILE"
    unset password escaped
fi

exec "$@"
