"""`pg_lock_exporter migrate` when the migration connects through PgBouncer (Debian's 1.18,
started here on a free port, never the system service): Alembic on psycopg2 with its URL
pointing at the pooler, the guard's own connection direct to PostgreSQL, the forgotten
transaction of test_migrate.py's Workload.

Through a pooler the server sees PgBouncer's address, not the child's, and in session pooling a
warm pool hands the child a server connection that started before the attempt: neither the
child's socket nor its tag names its session. The first test shows that harm; with
`--pgbouncer.dsn` the guard reads the pooler's admin console and finds the session anyway.
"""

import re
import signal
import subprocess
import threading
import time

import psycopg2
import pytest

from livestack import PgBouncer, clean_env, psql, wait_until
from test_migrate import ALEMBIC, Workload, alembic_current, database, workloads  # noqa: F401 - fixtures

MAX_WAIT = 1.5


@pytest.fixture
def bouncer(pg_server, database, workdir):
    # Under the session's work directory, which the pooler's unprivileged user can traverse.
    pooler = PgBouncer(workdir / f"pgbouncer-{database}", pg_server, database)
    yield pooler
    pooler.stop()


def warm(bouncer):
    """One client through the pooler and gone: its server connection stays in the pool, so the
    next client gets a backend that started before it."""
    conn = psycopg2.connect(bouncer.dsn(), application_name="warm-up")
    conn.autocommit = True  # a client that leaves mid-transaction takes its server connection with it
    with conn.cursor() as c:
        c.execute("SELECT pg_backend_pid()")
        pid = c.fetchone()[0]
    conn.close()
    return pid


def env_through(bouncer, **extra):
    return clean_env({"MIGRATION_DATABASE_URL": bouncer.url(), **extra})


def guard(binary, pg, datname, args):
    return [str(binary), "migrate", "--dsn", pg.dsn_for(datname), *args, "--", *ALEMBIC, "upgrade", "head"]


def test_pgbouncer_refuses_pgoptions_so_migrate_leaves_them_alone(exporter_bin, pg_server, database, bouncer):
    # PgBouncer 1.18 refuses the startup parameter libpq sends for PGOPTIONS: the client cannot connect.
    out = subprocess.run(["psql", "-X", "-c", "SELECT 1", bouncer.dsn()], capture_output=True, text=True, timeout=20,
                         env=clean_env({"PGOPTIONS": "-c lock_timeout=1s"}))
    assert out.returncode != 0
    assert "unsupported startup parameter: options" in out.stderr, out.stderr
    # So the guard's default (lock_timeout in PGOPTIONS) breaks the migration's connection outright ...
    run = subprocess.run(guard(exporter_bin, pg_server, database, ["--retries", "0"]), capture_output=True, text=True,
                         timeout=60, env=env_through(bouncer), stdin=subprocess.DEVNULL)
    assert run.returncode != 0
    assert "unsupported startup parameter: options" in run.stderr, run.stderr
    # ... and with --pgbouncer.dsn it leaves PGOPTIONS alone and says why: the migration runs.
    run = subprocess.run(
        guard(exporter_bin, pg_server, database,
              ["--pgbouncer.dsn", bouncer.admin_dsn(), "--pgbouncer.password-file", bouncer.password_file]),
        capture_output=True, text=True, timeout=60, env=env_through(bouncer), stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    assert "PGOPTIONS left alone (PgBouncer refuses the startup parameter options)" in run.stderr, run.stderr
    assert alembic_current(pg_server, database) == "0001 (head)"


def test_through_pgbouncer_the_watchdog_finds_the_childs_session_and_cuts_its_wait(
        exporter_bin, pg_server, database, bouncer, workloads):
    w = Workload(pg_server, database, commit_at=None, readers=1)
    workloads.append(w)
    warmed = warm(bouncer)

    # The harm: without the pooler's view the guard never finds the child's session (PgBouncer's
    # address, a backend older than the attempt), so nothing cuts its wait.
    harm = subprocess.Popen(guard(exporter_bin, pg_server, database, ["--no-pgoptions", "--max-lock-wait", f"{MAX_WAIT}s"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_through(bouncer),
                            stdin=subprocess.DEVNULL)
    try:
        waiting = wait_until("alembic's ALTER to wait behind the worker", lambda: psql(
            pg_server.dsn_for(database),
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND query LIKE 'ALTER TABLE features%'"), timeout=20)
        assert [[str(warmed)]] == waiting, f"the child did not get the warm server connection {warmed}: {waiting}"
        time.sleep(MAX_WAIT + 3)
        assert harm.poll() is None, "the migration ended although nothing should have cut its wait"
        still = psql(pg_server.dsn_for(database),
                     f"SELECT wait_event_type, round(extract(epoch FROM now() - state_change)) >= {MAX_WAIT + 2} "
                     f"FROM pg_stat_activity WHERE pid = {warmed}")
        assert still == [["Lock", "t"]], still
    finally:
        harm.send_signal(signal.SIGTERM)
        _, harm_err = harm.communicate(timeout=30)
    assert re.search(r"^migrate: done: interrupted by signal 15; .*; 0 migration sessions watched", harm_err, re.M), harm_err
    assert "cancelled the lock wait" not in harm_err

    # With --pgbouncer.dsn: the pooler links the child's socket to its server connection, whose
    # local address is the backend's client address; the wait is cut after --max-lock-wait and
    # the attempt retried until the worker commits (at ~3s into the run).
    warm(bouncer)
    committer = threading.Timer(MAX_WAIT + 2.5, w.commit)
    t0 = time.monotonic()
    committer.start()
    run = subprocess.run(
        guard(exporter_bin, pg_server, database,
              ["--pgbouncer.dsn", bouncer.admin_dsn(), "--pgbouncer.password-file", bouncer.password_file,
               "--max-lock-wait", f"{MAX_WAIT}s", "--retry-delay", "200ms"]),
        capture_output=True, text=True, timeout=60, env=env_through(bouncer), stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    committer.cancel()
    stderr = run.stderr
    assert run.returncode == 0, stderr
    cancelled = re.search(r"^migrate: attempt 1: cancelled the lock wait of the migration's session pid (\d+) after (\S+)s ",
                          stderr, re.M)
    assert cancelled, stderr
    waited = float(cancelled.group(2))
    assert MAX_WAIT <= waited < MAX_WAIT + 1.0, stderr
    # The session cut was the pooler's server connection: PgBouncer's address, not the child's.
    assert re.search(rf"^migrate: └─ pid {cancelled.group(1)}  waiting \S+ for AccessExclusiveLock on features  \(active\)  "
                     rf"db={database} user=postgres .*client=127\.0\.0\.1", stderr, re.M), stderr
    assert re.search(r"^migrate: done: succeeded; .* [1-9]\d* migration sessions? watched", stderr, re.M), stderr
    assert alembic_current(pg_server, database) == "0001 (head)"
    print(f"\nmigrate through pgbouncer: wait of pid {cancelled.group(1)} cut after {waited}s; run {seconds:.1f}s")
