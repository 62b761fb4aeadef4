"""`pg_lock_exporter migrate` against the incident, with real tools: Alembic (SQLAlchemy on
psycopg2, and on asyncpg, which ignores PGOPTIONS and PGAPPNAME) and psql, on the sandbox
PostgreSQL (conftest.py's pg_server).

The incident, in a database of its own per test: a worker that ran `SELECT * FROM features` and
sits idle in transaction (committing at ~4s, or never), and readers querying `features` in a
loop, each query's latency recorded. The first test shows the harm without the guard, so the
others can fail.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time

import psycopg2
import pytest

from livestack import REPO, clean_env, free_port, psql

PROJECT = REPO / "tests" / "migration_project"
ALEMBIC = [sys.executable, "-m", "alembic", "-c", str(PROJECT / "alembic.ini")]
WORKER_COMMITS_AT = 4.0   # seconds after the workload starts
LOCK_TIMEOUT = "500ms"
READER_BOUND = 1.5        # no reader query may take longer while the guard runs (seconds)
LATENCIES = {}            # scenario -> readers' worst latency, printed at the end


# --------------------------------------------------------------------- the incident's sessions

class Workload:
    """The worker idle in transaction after `SELECT * FROM features` (committing at
    `commit_at` seconds, or never when None) and `readers` sessions querying features in a
    loop. Every connection is psycopg2 over TCP, each with its application_name."""

    def __init__(self, pg, datname, commit_at=WORKER_COMMITS_AT, readers=2):
        self.dsn = f"host=127.0.0.1 port={pg.port} user=postgres dbname={datname}"
        self.started = time.monotonic()
        self.stop_event = threading.Event()
        self.latencies = []  # (start offset, seconds)
        self.errors = []
        self.worker = psycopg2.connect(self.dsn, application_name="worker")
        with self.worker.cursor() as c:
            c.execute("SELECT pg_backend_pid()")
            self.worker_pid = c.fetchone()[0]
            c.execute("SELECT * FROM features")
            c.fetchall()
        self.committed_at = None
        self.threads = [threading.Thread(target=self._read, daemon=True) for _ in range(readers)]
        if commit_at is not None:
            self.threads.append(threading.Thread(target=self._commit, args=(commit_at,), daemon=True))
        for t in self.threads:
            t.start()

    def _commit(self, at):
        if not self.stop_event.wait(max(0, at - (time.monotonic() - self.started))):
            self.commit()

    def commit(self):
        self.worker.commit()
        self.committed_at = time.monotonic() - self.started

    def _read(self):
        try:
            conn = psycopg2.connect(self.dsn, application_name="web", options="-c statement_timeout=60s")
            conn.autocommit = True
            with conn.cursor() as c:
                while not self.stop_event.is_set():
                    t0 = time.monotonic()
                    c.execute("SELECT count(*) FROM features")
                    c.fetchall()
                    self.latencies.append((t0 - self.started, time.monotonic() - t0))
                    time.sleep(0.02)
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported by worst() / the test
            self.errors.append(repr(e))

    def worst(self):
        assert not self.errors, self.errors
        assert len(self.latencies) > 10, f"the readers barely ran: {self.latencies}"
        return max(s for _, s in self.latencies)

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=70)
        try:
            self.worker.close()
        except Exception:  # noqa: BLE001 - it may have been terminated
            pass


@pytest.fixture
def database(pg_server, request):
    """A new database with the incident's `features` table; returns its name."""
    name = "migrate_" + re.sub(r"\W", "_", request.node.name)[:40].lower()
    psql(pg_server.dsn, f'DROP DATABASE IF EXISTS "{name}"')
    psql(pg_server.dsn, f'CREATE DATABASE "{name}"')
    psql(pg_server.dsn_for(name), "CREATE TABLE features (id int PRIMARY KEY, name text); "
                                  "INSERT INTO features SELECT g, 'feature ' || g FROM generate_series(1, 10) g")
    return name


@pytest.fixture
def workloads():
    started = []
    yield started
    for w in started:
        w.stop()


@pytest.fixture(scope="module", autouse=True)
def report_latencies(request):
    yield
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        for scenario, worst in LATENCIES.items():
            print(f"\nmigrate: readers' worst latency {scenario}: {worst:.2f}s")


# --------------------------------------------------------------------- running things

def alembic_env(pg, datname, driver="psycopg2", **extra):
    return clean_env({"MIGRATION_DATABASE_URL": f"postgresql+{driver}://postgres@127.0.0.1:{pg.port}/{datname}",
                      **extra})


def migrate(binary, pg, datname, args, command, env, timeout=60):
    """Run the guard in the foreground; returns (exit status, stdout, stderr, seconds)."""
    argv = [binary, "migrate", "--dsn", pg.dsn_for(datname), *args, "--", *command]
    t0 = time.monotonic()
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env,
                         stdin=subprocess.DEVNULL)
    return out.returncode, out.stdout, out.stderr, time.monotonic() - t0


def attempts(stderr):
    return [int(n) for n in re.findall(r"^migrate: attempt (\d+) of at most", stderr, re.M)]


def column_exists(pg, datname):
    return psql(pg.dsn_for(datname), "SELECT count(*) FROM information_schema.columns "
                                     "WHERE table_name = 'features' AND column_name = 'signature'") == [["1"]]


def alembic_current(pg, datname):
    out = subprocess.run([*ALEMBIC, "current"], capture_output=True, text=True, timeout=30,
                         env=alembic_env(pg, datname))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def json_events(stderr):
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


# --------------------------------------------------------------------- 1. the harm, without the guard

def test_baseline_without_guard_stalls_readers(pg_server, database, workloads):
    # The worker commits 3s after alembic's ALTER TABLE starts waiting (however long Python takes
    # to start): for those 3s every reader queues behind the ALTER.
    w = Workload(pg_server, database, commit_at=None)
    workloads.append(w)
    alembic = subprocess.Popen([*ALEMBIC, "upgrade", "head"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=alembic_env(pg_server, database))
    try:
        deadline = time.monotonic() + 30
        while psql(pg_server.dsn_for(database), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                                "AND query LIKE 'ALTER TABLE features%' AND wait_event_type = 'Lock'") != [["1"]]:
            assert time.monotonic() < deadline and alembic.poll() is None, "alembic never waited for its lock"
            time.sleep(0.05)
        time.sleep(3)
        w.commit()
        _, stderr = alembic.communicate(timeout=30)
    finally:
        if alembic.poll() is None:
            alembic.kill()
    time.sleep(0.3)
    w.stop()
    assert alembic.returncode == 0, stderr
    worst = w.worst()
    LATENCIES["without the guard (plain alembic upgrade head, the worker committing 3s into its wait)"] = worst
    assert worst >= 2.5, f"readers were not stalled: worst {worst:.2f}s"
    assert alembic_current(pg_server, database) == "0001 (head)"


# --------------------------------------------------------------------- 2. the guard, lock_timeout reaching the driver

def guarded_migration_keeps_readers_answering(exporter_bin, pg_server, database, workloads, args, command, env, scenario,
                                              tool):
    """Runs `command` under the guard against the incident (the worker commits at ~4s) and checks
    the bounds every driver that honours PGOPTIONS is held to: readers never wait past
    READER_BOUND, the worker is named in the tree, the tool's own lock-timeout error passes
    through, and the attempts, at least two, end after the worker committed. Returns stderr and
    the workload."""
    w = Workload(pg_server, database)
    workloads.append(w)
    rc, _, stderr, _ = migrate(exporter_bin, pg_server, database, args, command, env)
    done_at = time.monotonic() - w.started
    time.sleep(0.3)
    w.stop()
    assert rc == 0, stderr
    worst = w.worst()
    LATENCIES[scenario] = worst
    assert worst < READER_BOUND, f"a reader waited {worst:.2f}s under the guard:\n{stderr}"
    # The worker, named with pid, state and application in the tree the migration waited in.
    assert re.search(rf"^migrate: pid {w.worker_pid}  idle in transaction \S+  db={database} user=postgres app=worker "
                     r"client=127\.0\.0\.1$", stderr, re.M), stderr
    assert "canceling statement due to lock timeout" in stderr, f"{tool}'s own error, passed through:\n{stderr}"
    assert w.committed_at is not None and done_at > w.committed_at, (w.committed_at, done_at)
    n = attempts(stderr)
    assert len(n) >= 2 and n == list(range(1, len(n) + 1)), stderr
    assert re.search(rf"^migrate: done: succeeded; exit status 0; {len(n)} attempts in ", stderr, re.M), stderr
    return stderr, w


def test_guard_keeps_readers_answering_and_retries_until_the_worker_commits(exporter_bin, pg_server, database,
                                                                            workloads):
    stderr, w = guarded_migration_keeps_readers_answering(
        exporter_bin, pg_server, database, workloads, ["--lock-timeout", LOCK_TIMEOUT], [*ALEMBIC, "upgrade", "head"],
        alembic_env(pg_server, database), "with the guard (migrate --lock-timeout 500ms -- alembic upgrade head)", "alembic")
    assert re.search(rf"blockers seen: pid {w.worker_pid} \(idle in transaction", stderr), stderr
    assert alembic_current(pg_server, database) == "0001 (head)"


def django_env(pg, datname):
    return clean_env({"DJANGO_DB_NAME": datname, "DJANGO_DB_HOST": "127.0.0.1", "DJANGO_DB_PORT": str(pg.port)})


DJANGO = [sys.executable, str(REPO / "tests" / "django_project" / "manage.py")]


def test_django_migrate_under_the_guard_with_the_alembic_tests_bounds(exporter_bin, pg_server, database, workloads):
    """The README's Django line, proven: a real Django project (PyPI's Django on psycopg2) under
    the guard against the forgotten transaction, held to the same bounds as the Alembic test."""
    guarded_migration_keeps_readers_answering(
        exporter_bin, pg_server, database, workloads, ["--lock-timeout", LOCK_TIMEOUT, "--statement-timeout", "15m"],
        [*DJANGO, "migrate", "--noinput"], django_env(pg_server, database),
        "with the guard (migrate --lock-timeout 500ms -- python manage.py migrate --noinput)", "Django")
    assert column_exists(pg_server, database)
    shown = subprocess.run([*DJANGO, "showmigrations", "features"], capture_output=True, text=True, timeout=60,
                           env=django_env(pg_server, database))
    assert shown.returncode == 0 and "[X] 0001_signature" in shown.stdout, shown.stdout + shown.stderr


# --------------------------------------------------------------------- 3. ending the forgotten transaction

def test_terminate_idle_after_ends_exactly_the_worker(exporter_bin, pg_server, database, workloads, tmp_path):
    other = database + "_other"
    psql(pg_server.dsn, f'DROP DATABASE IF EXISTS "{other}"')
    psql(pg_server.dsn, f'CREATE DATABASE "{other}"')
    bystander = psycopg2.connect(f"host=127.0.0.1 port={pg_server.port} user=postgres dbname={other}",
                                 application_name="bystander")
    try:
        with bystander.cursor() as c:
            c.execute("SELECT pg_backend_pid()")
            bystander_pid = c.fetchone()[0]
            c.execute("SELECT count(*) FROM pg_class")
        w = Workload(pg_server, database, commit_at=None)
        workloads.append(w)
        audit = tmp_path / "audit.jsonl"
        rc, _, stderr, _ = migrate(exporter_bin, pg_server, database,
                                   ["--lock-timeout", LOCK_TIMEOUT, "--terminate-idle-after", "2s",
                                    "--audit-log", audit], [*ALEMBIC, "upgrade", "head"],
                                   alembic_env(pg_server, database))
        time.sleep(0.3)
        w.stop()
        assert rc == 0, stderr
        assert w.worst() < READER_BOUND, stderr
        lines = [json.loads(line) for line in audit.read_text().splitlines()]
        assert [(d["pid"], d["application_name"], d["action"], d["result"], d["code"]) for d in lines] == \
            [(w.worker_pid, "worker", "terminate", "terminated", "root_blocker")], lines
        assert re.search(rf"^migrate: attempt \d+: TERMINATED pid {w.worker_pid} \(db {database}, user postgres, "
                         r"app worker, client 127\.0\.0\.1\): root blocker idle in transaction", stderr, re.M), stderr
        # The migration's own sessions were never terminated: no attempt died of it.
        assert "terminating connection due to administrator command" not in stderr, stderr
        assert "--max-terminations" not in stderr and "not terminating" not in stderr, stderr
        states = dict(psql(pg_server.dsn, "SELECT pid, state FROM pg_stat_activity WHERE pid IN "
                                          f"({w.worker_pid}, {bystander_pid})"))
        assert states == {str(bystander_pid): "idle in transaction"}, states
        assert alembic_current(pg_server, database) == "0001 (head)"
    finally:
        bystander.close()


# --------------------------------------------------------------------- 4. a driver that ignores PGOPTIONS

def test_asyncpg_wait_is_found_by_port_and_cancelled(exporter_bin, pg_server, database, workloads):
    # Later than 4s: the first attempt's wait must outlive --max-lock-wait however slowly Python starts.
    w = Workload(pg_server, database, commit_at=5.5)
    workloads.append(w)
    max_wait = 1.5
    rc, _, stderr, _ = migrate(exporter_bin, pg_server, database,
                               ["--lock-timeout", LOCK_TIMEOUT, "--max-lock-wait", f"{max_wait}s"],
                               [*ALEMBIC, "upgrade", "head"], alembic_env(pg_server, database, driver="asyncpg"))
    time.sleep(0.3)
    w.stop()
    assert rc == 0, stderr
    worst = w.worst()
    LATENCIES["with the guard, asyncpg (watchdog cancels after --max-lock-wait 1.5s)"] = worst
    assert worst < max_wait + READER_BOUND, stderr
    # asyncpg sent neither the tag nor the lock_timeout: the session was known by its client port
    # (its application_name is empty), and its wait outlived the timeout until the watchdog cancelled it.
    waiting = re.findall(r"^migrate: └─ pid (\d+)  waiting \S+ for AccessExclusiveLock on features  \(active\)  "
                         rf"db={database} user=postgres client=127\.0\.0\.1$", stderr, re.M)
    assert waiting, stderr
    assert re.search(r"^migrate: attempt 1: cancelled the lock wait of the migration's session pid "
                     rf"{waiting[0]} after \S+ \(--max-lock-wait \S+\): its lock_timeout 500ms did not reach the server",
                     stderr, re.M), stderr
    assert "canceling statement due to user request" in stderr  # asyncpg's error, passed through
    assert len(attempts(stderr)) >= 2, stderr
    assert re.search(r"^migrate: done: succeeded; .* [1-9]\d* migration sessions? watched", stderr, re.M), stderr
    assert alembic_current(pg_server, database) == "0001 (head)"


# --------------------------------------------------------------------- 5. a failure that is not about locks

def test_sql_error_is_not_retried(exporter_bin, pg_server, database):
    rc, _, stderr, _ = migrate(exporter_bin, pg_server, database, ["--lock-timeout", LOCK_TIMEOUT],
                               [*ALEMBIC, "upgrade", "head"], alembic_env(pg_server, database, MIGRATION_FAIL="1"))
    plain = subprocess.run([*ALEMBIC, "upgrade", "head"], capture_output=True, text=True, timeout=60,
                           env=alembic_env(pg_server, database, MIGRATION_FAIL="1"))
    assert rc == plain.returncode == 1, stderr
    assert attempts(stderr) == [1], stderr
    assert 'column "no_such_column" does not exist' in stderr
    assert re.search(r"^migrate: done: failed with exit status 1 \(not a lock failure: not retried\); exit status 1; "
                     r"1 attempt in ", stderr, re.M), stderr
    assert not column_exists(pg_server, database)


# --------------------------------------------------------------------- 6. retries running out

def test_retries_run_out_with_exit_75_and_the_blocker_named(exporter_bin, pg_server, database, workloads):
    w = Workload(pg_server, database, commit_at=None, readers=1)
    workloads.append(w)
    max_duration = 3.0
    env = clean_env({"PGHOST": "127.0.0.1", "PGPORT": str(pg_server.port), "PGUSER": "postgres",
                     "PGDATABASE": database})
    rc, _, stderr, seconds = migrate(exporter_bin, pg_server, database,
                                     ["--lock-timeout", LOCK_TIMEOUT, "--retries", "100", "--retry-delay", "400ms",
                                      "--max-duration", f"{max_duration:g}s", "--format", "json"],
                                     ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", PROJECT / "migration.sql"], env)
    w.stop()
    assert rc == 75, stderr
    events = json_events(stderr)
    done = [e for e in events if e["event"] == "done"]
    assert len(done) == 1, events
    summary = done[0]["summary"]
    assert summary["exit_status"] == 75 and summary["outcome"].startswith("gave up: attempt"), summary
    assert "--max-duration 3s has passed" in summary["outcome"], summary
    assert summary["attempts"] >= 2 and summary["attempts"] == len([e for e in events if e["event"] == "attempt"])
    assert [(b["pid"], b["state"], b["application_name"]) for b in summary["blockers"]] == \
        [(w.worker_pid, "idle in transaction", "worker")], summary
    blockers = [e for e in events if e["event"] == "blocker"]
    assert blockers and all(e["tree"]["pid"] == w.worker_pid for e in blockers), blockers
    # No attempt starts after --max-duration; the last one is bounded by its lock_timeout.
    assert seconds < max_duration + 1.5, seconds
    assert not column_exists(pg_server, database)


# --------------------------------------------------------------------- 7. one migration at a time

def test_two_guards_with_one_lock_key_never_overlap(exporter_bin, pg_server, database, tmp_path):
    log = tmp_path / "runs.log"
    script = f'echo "start $$ $(date +%s.%N)" >> {log}; sleep 1.5; echo "end $$ $(date +%s.%N)" >> {log}'

    def argv(*extra):
        return [str(exporter_bin), "migrate", "--dsn", pg_server.dsn_for(database), "--lock-key", "4242", *extra,
                "--", "sh", "-c", script]

    first = subprocess.Popen(argv(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=clean_env())
    try:
        def holder():
            rows = psql(pg_server.dsn, "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objid = 4242")
            return rows[0][0] if rows else None
        deadline = time.monotonic() + 10
        while holder() is None:
            assert time.monotonic() < deadline and first.poll() is None, "the first guard never took its lock"
            time.sleep(0.05)
        holder_pid = holder()
        second = subprocess.Popen(argv("--wait-lock", "20s"), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  text=True, env=clean_env())
        third = subprocess.run(argv("--wait-lock", "0s"), capture_output=True, text=True, timeout=30, env=clean_env())
        second_err = second.communicate(timeout=30)[1]
        first_err = first.communicate(timeout=30)[1]
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert f'another migration holds the advisory lock 4242 (pid {holder_pid}, application "pg_lock_exporter migrate"); ' \
           "waiting up to 20s" in second_err
    assert third.returncode == 75, third.stderr
    assert f'another migration holds the advisory lock 4242 (pid {holder_pid}, application "pg_lock_exporter migrate"); ' \
           "not had within --wait-lock 0ms" in third.stderr
    runs = [line.split() for line in log.read_text().splitlines()]
    assert [r[0] for r in runs] == ["start", "end", "start", "end"], runs
    assert runs[0][1] == runs[1][1] and runs[2][1] == runs[3][1] and float(runs[2][2]) >= float(runs[1][2]), runs


# --------------------------------------------------------------------- 8. psql as the child

def test_psql_file_as_the_child(exporter_bin, pg_server, database, workloads):
    w = Workload(pg_server, database, commit_at=2.5, readers=1)
    workloads.append(w)
    env = clean_env({"PGHOST": "127.0.0.1", "PGPORT": str(pg_server.port), "PGUSER": "postgres",
                     "PGDATABASE": database, "PGOPTIONS": "-c search_path=public"})
    # A password on the command line (trust authentication ignores it) is never shown by the guard.
    rc, stdout, stderr, _ = migrate(exporter_bin, pg_server, database, ["--lock-timeout", LOCK_TIMEOUT],
                                    ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", PROJECT / "migration.sql",
                                     f"dbname={database} password=hunter2-child"], env)
    w.stop()
    assert rc == 0, stderr
    assert "hunter2-child" not in stderr and f"'dbname={database} password=…'" in stderr, stderr
    assert stdout.splitlines()[-3:] == ["BEGIN", "ALTER TABLE", "COMMIT"], stdout  # psql's stdout, unchanged
    assert "ERROR:  canceling statement due to lock timeout" in stderr
    assert len(attempts(stderr)) >= 2, stderr
    assert re.search(rf"^migrate: pid {w.worker_pid}  idle in transaction ", stderr, re.M), stderr
    assert w.worst() < READER_BOUND
    assert column_exists(pg_server, database)


# --------------------------------------------------------------------- 9. bad input

def test_bad_input_one_line_and_nothing_started(exporter_bin, pg_server, database, tmp_path):
    marker = tmp_path / "started"
    touch = ["sh", "-c", f"touch {marker}"]
    dead = f"host=127.0.0.1 port={free_port()} user=postgres password=hunter2 dbname=x connect_timeout=2"
    cases = {
        "nothing after --": (["--dsn", pg_server.dsn_for(database), "--"],
                             "pg_lock_exporter migrate: no migration command: give it after --, e.g. "
                             "pg_lock_exporter migrate -- alembic upgrade head"),
        "a bad duration": (["--dsn", pg_server.dsn_for(database), "--lock-timeout", "5 parsecs", "--", *touch],
                           'pg_lock_exporter migrate: --lock-timeout: invalid duration "5 parsecs": use a number '
                           "with a unit, e.g. 500ms, 30s, 5m, 1h"),
        "an unreachable --dsn": (["--dsn", dead, "--", *touch],
                                 re.compile(r"^migrate: cannot reach PostgreSQL \(user=postgres connect_timeout=2 dbname=x "
                                            r"host=127\.0\.0\.1 port=\d+\): .*Connection refused.*; not running a "
                                            r"migration it cannot watch \(--unwatched runs it anyway\)$")),
        "a command that does not exist": (["--dsn", pg_server.dsn_for(database), "--", "no-such-migrate-tool", "up"],
                                          "pg_lock_exporter migrate: command not found: no-such-migrate-tool"),
    }
    for what, (args, expected) in cases.items():
        out = subprocess.run([str(exporter_bin), "migrate", *map(str, args)], capture_output=True, text=True,
                             timeout=30, env=clean_env())
        lines = out.stderr.splitlines()
        assert out.returncode == 2, (what, out.returncode, out.stderr)
        assert len(lines) == 1, (what, out.stderr)
        assert (expected.match(lines[0]) if isinstance(expected, re.Pattern) else lines[0] == expected), (what, lines)
        assert "hunter2" not in out.stderr + out.stdout
        assert not marker.exists(), f"{what}: the migration was started"


# --------------------------------------------------------------------- the child's environment, signals, preflight

def test_unwatched_child_environment_carries_the_timeouts(exporter_bin, tmp_path):
    dead = f"host=127.0.0.1 port={free_port()} user=postgres dbname=x connect_timeout=2"
    script = 'echo "PGOPTIONS=$PGOPTIONS"; echo "PGAPPNAME=$PGAPPNAME"; echo "on stderr" >&2; exit 3'
    out = subprocess.run([str(exporter_bin), "migrate", "--dsn", dead, "--unwatched", "--lock-timeout", "500ms",
                          "--statement-timeout", "1m", "--", "sh", "-c", script], capture_output=True, text=True,
                         timeout=30, env=clean_env({"PGOPTIONS": "-c search_path=app"}))
    assert out.returncode == 3, out.stderr  # the child's own status
    lines = out.stdout.splitlines()
    assert lines[0] == "PGOPTIONS=-c search_path=app -c lock_timeout=500 -c statement_timeout=60000", out.stdout
    assert re.fullmatch(r"PGAPPNAME=pg_lock_exporter migrate [0-9a-f]{32}", lines[1]), out.stdout
    assert "\non stderr\n" in "\n" + out.stderr
    assert re.search(r"^migrate: cannot reach PostgreSQL .*; running unwatched \(--unwatched\)", out.stderr, re.M)
    assert attempts(out.stderr) == [1]


def test_sigterm_is_forwarded_and_ends_the_run(exporter_bin, pg_server, database):
    script = 'trap "echo child got TERM; exit 7" TERM; echo ready; while :; do sleep 0.1; done'
    guard = subprocess.Popen([str(exporter_bin), "migrate", "--dsn", pg_server.dsn_for(database), "--", "sh", "-c",
                              script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
                             start_new_session=True)
    try:
        assert guard.stdout.readline() == "ready\n"
        guard.send_signal(15)
        stdout, stderr = guard.communicate(timeout=15)
    finally:
        if guard.poll() is None:
            guard.kill()
    assert guard.returncode == 7, stderr
    assert stdout == "child got TERM\n"
    assert re.search(r"^migrate: received signal 15; passed it to the migration's process group \d+; no further attempts$",
                     stderr, re.M), stderr
    assert re.search(r"^migrate: done: interrupted by signal 15; exit status 7; 1 attempt in ", stderr, re.M), stderr


def test_require_clear_refuses_and_wait_clear_waits(exporter_bin, pg_server, database, workloads, tmp_path):
    marker = tmp_path / "ran"
    touch = ["sh", "-c", f"touch {marker}"]
    w = Workload(pg_server, database, commit_at=1.5, readers=0)
    workloads.append(w)
    rc, _, stderr, _ = migrate(exporter_bin, pg_server, database, ["--require-clear"], touch, clean_env())
    assert rc == 75, stderr
    assert not marker.exists()
    assert re.search(rf"^migrate: preflight: database {database} has 0 blocking trees and 1 session idle in transaction "
                     r"holding locks", stderr, re.M), stderr
    assert re.search(rf"^migrate:   pid {w.worker_pid}  idle in transaction \S+  db={database} user=postgres app=worker",
                     stderr, re.M), stderr
    assert "done: refused: the database is not clear (--require-clear); exit status 75" in stderr
    rc, _, stderr, _ = migrate(exporter_bin, pg_server, database, ["--require-clear", "--wait-clear", "10s"], touch,
                               clean_env())
    assert rc == 0, stderr
    assert marker.exists()
    assert "migrate: preflight: waiting up to 10s for them to go (--wait-clear)" in stderr
    assert f"migrate: preflight: database {database} is clear" in stderr


# --------------------------------------------------------------------- 10. adversarial: neighbours, grandchildren, lost locks
#
# Each of these failed on the guard before issue 19 (the commit messages say how).

class Relay:
    """A TCP relay on 127.0.0.1 whose upstream connections to PostgreSQL leave from a chosen
    source address and port (SO_REUSEPORT, so a port a child's socket already holds can be
    shared): the server then sees that (client_addr, client_port)."""

    def __init__(self, pg_port, source):
        import socket
        self.socket = socket
        self.pg_port, self.source = pg_port, source
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        s = self.socket
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = s.socket()
            up.setsockopt(s.SOL_SOCKET, s.SO_REUSEPORT, 1)
            up.bind(self.source)
            up.connect(("127.0.0.1", self.pg_port))
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(2)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


class Waiter:
    """A session that runs one statement in a thread; `result` is "ok" or the error text."""

    def __init__(self, dsn, application_name, sql):
        self.conn = psycopg2.connect(dsn, application_name=application_name)
        self.conn.autocommit = True
        with self.conn.cursor() as c:
            c.execute("SELECT pg_backend_pid()")
            self.pid = c.fetchone()[0]
        self.result = None
        self.sql = sql

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        try:
            with self.conn.cursor() as c:
                c.execute(self.sql)
            self.result = "ok"
        except Exception as e:  # noqa: BLE001 - the test asserts on it
            self.result = str(e).strip().splitlines()[0]

    def join(self):
        self.thread.join(timeout=30)
        self.conn.close()
        return self.result


def holder(dsn, sql, application_name="holder"):
    """A session idle in transaction after `sql`; returns (connection, pid)."""
    conn = psycopg2.connect(dsn, application_name=application_name)
    with conn.cursor() as c:
        c.execute("SELECT pg_backend_pid()")
        pid = c.fetchone()[0]
        c.execute(sql)
    return conn, pid


def wait_lock_waits(pg, pids, timeout=15):
    deadline = time.monotonic() + timeout
    ids = ",".join(map(str, pids))
    while int(psql(pg.dsn, f"SELECT count(*) FROM pg_stat_activity WHERE pid IN ({ids}) "
                           "AND wait_event_type = 'Lock'")[0][0]) != len(pids):
        assert time.monotonic() < deadline, f"sessions {pids} never all waited on a lock"
        time.sleep(0.05)


def start_guard(binary, pg, datname, args, command, env=None):
    return subprocess.Popen([str(a) for a in [binary, "migrate", "--dsn", pg.dsn_for(datname), *args, "--", *command]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or clean_env(),
                            stdin=subprocess.DEVNULL, start_new_session=True)


def acted_on(stderr):
    """The pids the guard cancelled and terminated (its JSON events)."""
    events = json_events(stderr)
    return ([e["pid"] for e in events if e["event"] == "cancelled"],
            [e["pid"] for e in events if e["event"] == "terminated"])


def group_members(pgid):
    """Live processes (not zombies) whose process group is `pgid`, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry))
    return out


def start_time(pid):
    """The start time of process `pid` (/proc/PID/stat), None when there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_group(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[2])


NEIGHBOUR_CHILD = r"""
import os, socket, sys, time
import psycopg2
# A listener and a connected pair on 127.0.0.2, and a listener on 127.0.0.1 that lets others
# share its port (SO_REUSEPORT): ports the migration holds, none of them a session of its own.
listener = socket.socket(); listener.bind(("127.0.0.2", 0)); listener.listen(4)
client = socket.socket(); client.bind(("127.0.0.2", 0)); client.connect(listener.getsockname())
accepted, _ = listener.accept()
shared = socket.socket(); shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
shared.bind(("127.0.0.1", 0)); shared.listen(4)
print("ports", listener.getsockname()[1], client.getsockname()[1], shared.getsockname()[1], flush=True)
# The migration's own session, named by the driver (not the tag): known by its socket only.
own = psycopg2.connect(sys.argv[2], application_name="own", options="-c lock_timeout=0")
own.autocommit = True
with own.cursor() as c:
    c.execute("SELECT pg_backend_pid()")
    print("own", c.fetchone()[0], flush=True)
    try:
        c.execute("SELECT count(*) FROM features")
        print("own ok", flush=True)
    except Exception as e:
        print("own", str(e).strip().splitlines()[0], flush=True)
deadline = time.monotonic() + 40
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
"""


def test_neighbours_on_the_childs_ports_from_another_address_are_never_cancelled(exporter_bin, pg_server, database,
                                                                                 tmp_path):
    done = tmp_path / "done"
    dsn = f"host=127.0.0.1 port={pg_server.port} user=postgres dbname={database}"
    lock, _ = holder(dsn, "LOCK TABLE features IN ACCESS EXCLUSIVE MODE")
    guard = start_guard(exporter_bin, pg_server, database,
                        ["--lock-timeout", "500ms", "--max-lock-wait", "1s", "--format", "json"],
                        [sys.executable, "-c", NEIGHBOUR_CHILD, done, dsn])
    relays, waiters = [], []
    try:
        line = guard.stdout.readline().split()
        assert line[0] == "ports", line
        ports = [int(p) for p in line[1:]]
        line = guard.stdout.readline().split()
        assert line[0] == "own", line
        own_pid = int(line[1])
        for i, port in enumerate(ports):
            relay = Relay(pg_server.port, ("127.0.0.1", port))
            relays.append(relay)
            waiters.append(Waiter(f"host=127.0.0.1 port={relay.port} user=postgres dbname={database}",
                                  f"neighbour{i}", "SELECT count(*) FROM features"))
        seen = psql(pg_server.dsn, "SELECT host(client_addr), client_port FROM pg_stat_activity WHERE pid IN "
                                   f"({','.join(str(w.pid) for w in waiters)}) ORDER BY pid")
        assert sorted(int(p) for _, p in seen) == sorted(ports) and {a for a, _ in seen} == {"127.0.0.1"}, seen
        for w in waiters:
            w.start()
        wait_lock_waits(pg_server, [w.pid for w in waiters])
        time.sleep(2.5)  # --max-lock-wait 1s, and more
        lock.commit()
        results = [w.join() for w in waiters]
        own_result = guard.stdout.readline().strip()
        done.touch()
        _, stderr = guard.communicate(timeout=30)
    finally:
        if guard.poll() is None:
            os.killpg(guard.pid, 9)
        for r in relays:
            r.close()
        lock.close()
    assert results == ["ok", "ok", "ok"], (results, stderr)
    # The migration's own wait was cancelled, nothing else.
    assert own_result == "own canceling statement due to user request", (own_result, stderr)
    assert acted_on(stderr) == ([own_pid], []), stderr
    assert guard.returncode == 0, stderr


@pytest.mark.parametrize("action", [["--max-lock-wait", "1s"], ["--max-lock-wait", "30s", "--terminate-idle-after", "1s"]],
                         ids=["cancel", "terminate"])
def test_the_old_tag_in_this_and_another_database_is_not_the_migrations(exporter_bin, pg_server, database, tmp_path,
                                                                        action):
    other = database + "_b"
    psql(pg_server.dsn, f'DROP DATABASE IF EXISTS "{other}"')
    psql(pg_server.dsn, f'CREATE DATABASE "{other}"')
    psql(pg_server.dsn_for(other), "CREATE TABLE features (id int PRIMARY KEY)")
    dsn = f"host=127.0.0.1 port={pg_server.port} user=postgres dbname={database}"
    psql(dsn, "CREATE TABLE mine (id int)")
    done = tmp_path / "done"
    # The migration's own session (psql, carrying the guard's tag) waits behind a holder of its own.
    mine, mine_pid = holder(dsn, "SELECT * FROM mine")
    env = clean_env({"PGHOST": "127.0.0.1", "PGPORT": str(pg_server.port), "PGUSER": "postgres", "PGDATABASE": database})
    guard = start_guard(exporter_bin, pg_server, database, ["--lock-timeout", "500ms", *action, "--format", "json"],
                        ["sh", "-c", 'psql -X -q -At -c "SELECT pg_backend_pid()" -c BEGIN -c "SET lock_timeout = 0" '
                                     '-c "LOCK TABLE mine" -c COMMIT; '
                                     f'i=0; while [ ! -e {done} ] && [ $i -lt 400 ]; do sleep 0.1; i=$((i+1)); done'],
                        env)
    sessions = [mine]
    try:
        # The tag of the guard before issue 19 (what every guard running as PID 1 carried).
        old_tag = f"pg_lock_exporter migrate {guard.pid}"
        own_pid = int(guard.stdout.readline())
        time.sleep(0.5)  # these sessions start after the attempt
        holders, waiters = [], []
        for db in (database, other):
            db_dsn = f"host=127.0.0.1 port={pg_server.port} user=postgres dbname={db}"
            conn, pid = holder(db_dsn, "SELECT * FROM features")
            holders.append((conn, pid))
            sessions.append(conn)
            waiters.append(Waiter(db_dsn, old_tag, "BEGIN; LOCK TABLE features; COMMIT").start())
        time.sleep(3.5)  # --max-lock-wait 1s or --terminate-idle-after 1s, and more
        rows = psql(pg_server.dsn, "SELECT pid, state, coalesce(wait_event_type, '') FROM pg_stat_activity WHERE pid IN "
                                   f"({','.join(str(p) for p in [*(p for _, p in holders), *(w.pid for w in waiters)])})")
        states = {int(pid): (state, wait) for pid, state, wait in rows}
        for conn, _ in holders:
            try:
                conn.rollback()
            except psycopg2.Error:
                pass  # terminated: the assertion below says so
        results = [w.join() for w in waiters]
        done.touch()
        _, stderr = guard.communicate(timeout=30)
    finally:
        if guard.poll() is None:
            os.killpg(guard.pid, 9)
        for c in sessions:
            c.close()
    assert states == {**{p: ("idle in transaction", "Client") for _, p in holders},
                      **{w.pid: ("active", "Lock") for w in waiters}}, (states, stderr)
    assert results == ["ok", "ok"], (results, stderr)
    # Only the migration's own: its wait cancelled, or the holder of its own table terminated.
    if "--terminate-idle-after" in action:
        assert acted_on(stderr) == ([], [mine_pid]), stderr
    else:
        assert acted_on(stderr) == ([own_pid], []), stderr
    assert guard.returncode == 0, stderr


def test_signals_reach_grandchildren_and_the_guard_outlives_them(exporter_bin, pg_server, database, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    script = (f"sh -c 'echo $$ > {a}.pid; sleep 2; echo late > {a}' & "
              f"sh -c 'trap \"\" TERM; echo $$ > {b}.pid; sleep 30; echo late > {b}' & "
              f"while [ ! -s {a}.pid ] || [ ! -s {b}.pid ]; do sleep 0.05; done; echo ready; wait")
    guard = start_guard(exporter_bin, pg_server, database, [], ["sh", "-c", script])
    try:
        assert guard.stdout.readline() == "ready\n"
        pgid = process_group(int(a.with_suffix(".pid").read_text()))
        members = group_members(pgid)
        assert len(members) >= 5, members  # sh, two inner shells, two sleeps
        t0 = time.monotonic()
        guard.send_signal(15)
        _, stderr = guard.communicate(timeout=30)
        seconds = time.monotonic() - t0
        left = group_members(pgid)
    finally:
        if guard.poll() is None:
            os.killpg(guard.pid, 9)
    time.sleep(2.5)
    written = [p.name for p in (a, b) if p.exists()]
    assert (left, written) == ([], []), stderr
    # The shell that ignores SIGTERM is killed after the grace period, not before; the guard
    # exits only then.
    assert 9.5 <= seconds < 14, (seconds, stderr)
    assert guard.returncode == 143, stderr


def test_what_the_child_leaves_running_is_stopped_before_the_guard_exits(exporter_bin, pg_server, database, tmp_path):
    a = tmp_path / "a"
    guard = start_guard(exporter_bin, pg_server, database, [],
                        ["sh", "-c", f"sh -c 'echo $$ > {a}.pid; sleep 2; echo late > {a}' & "
                                     f"while [ ! -s {a}.pid ]; do sleep 0.05; done; exit 0"])
    try:
        _, stderr = guard.communicate(timeout=30)
    finally:
        if guard.poll() is None:
            os.killpg(guard.pid, 9)
    pid = int(a.with_suffix(".pid").read_text())
    alive = os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    time.sleep(2.5)
    assert (alive, a.exists()) == (False, False), stderr
    assert guard.returncode == 0, stderr


def test_a_failure_after_a_lock_wait_is_not_retried(exporter_bin, pg_server, database, tmp_path):
    dsn = f"host=127.0.0.1 port={pg_server.port} user=postgres dbname={database}"
    psql(dsn, "CREATE TABLE runs (at timestamptz DEFAULT now())")
    sql = tmp_path / "m.sql"
    sql.write_text("INSERT INTO runs DEFAULT VALUES;\nBEGIN;\nLOCK TABLE features;\nSELECT 1/0;\nCOMMIT;\n")
    lock, _ = holder(dsn, "SELECT * FROM features")
    env = clean_env({"PGHOST": "127.0.0.1", "PGPORT": str(pg_server.port), "PGUSER": "postgres", "PGDATABASE": database})
    guard = start_guard(exporter_bin, pg_server, database, ["--lock-timeout", "10s"],
                        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", sql], env)
    try:
        deadline = time.monotonic() + 15
        while psql(dsn, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LOCK TABLE features%' "
                        "AND wait_event_type = 'Lock'") != [["1"]]:
            assert time.monotonic() < deadline and guard.poll() is None, "the migration never waited"
            time.sleep(0.05)
        time.sleep(0.5)  # the watchdog has seen the wait
        lock.commit()
        _, stderr = guard.communicate(timeout=30)
    finally:
        if guard.poll() is None:
            os.killpg(guard.pid, 9)
        lock.close()
    assert psql(dsn, "SELECT count(*) FROM runs") == [["1"]], stderr
    assert attempts(stderr) == [1], stderr
    assert "division by zero" in stderr
    assert re.search(r"^migrate: done: failed with exit status 3 \(not a lock failure: not retried\); exit status 3; "
                     r"1 attempt in ", stderr, re.M), stderr
    assert guard.returncode == 3, stderr


def test_a_lost_advisory_lock_stops_the_migration(exporter_bin, pg_server, database, tmp_path):
    ticks = tmp_path / "ticks"
    key = 4343
    guard = start_guard(exporter_bin, pg_server, database, ["--lock-key", str(key)],
                        ["sh", "-c", f"i=0; while [ $i -lt 100 ]; do echo tick >> {ticks}; sleep 0.1; i=$((i+1)); done"])
    thief = None
    try:
        deadline = time.monotonic() + 10
        while not ticks.exists():
            assert time.monotonic() < deadline and guard.poll() is None, "the migration never started"
            time.sleep(0.05)
        rows = psql(pg_server.dsn, f"SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = {key} AND granted")
        assert len(rows) == 1, rows
        guard_backend = int(rows[0][0])
        thief = psycopg2.connect(f"host=127.0.0.1 port={pg_server.port} user=postgres dbname={database}",
                                 application_name="thief")
        thief.autocommit = True
        with thief.cursor() as c:
            c.execute("SELECT pg_backend_pid()")
            thief_pid = c.fetchone()[0]
            c.execute("SELECT pg_terminate_backend(%s)", (guard_backend,))
            c.execute("SELECT pg_advisory_lock(%s)", (key,))
        t0 = time.monotonic()
        _, stderr = guard.communicate(timeout=30)
        seconds = time.monotonic() - t0
        count = len(ticks.read_text().splitlines())
        time.sleep(0.5)
        after = len(ticks.read_text().splitlines())
    finally:
        if guard.poll() is None:
            os.killpg(guard.pid, 9)
        if thief is not None:
            thief.close()
    assert after == count and count < 100, (count, after, stderr)
    assert seconds < 4, (seconds, stderr)
    assert re.search(rf"^migrate: lost the advisory lock {key}: pid {thief_pid} \(application \"thief\"\) holds it now; "
                     r"stopping the migration \(SIGTERM to its process group \d+\)$", stderr, re.M), stderr
    assert guard.returncode == 75, stderr


def test_json_command_hides_passwords(exporter_bin):
    dead = f"host=127.0.0.1 port={free_port()} user=postgres dbname=x connect_timeout=2"
    out = subprocess.run([str(exporter_bin), "migrate", "--dsn", dead, "--unwatched", "--format", "json", "--",
                          "sh", "-c", "exit 0", "sh", "--password", "hunter2", "--db-password=hunter3",
                          "PGPASSWORD=hunter4", "postgresql://app:hunter5@db/app", "host=db password=hunter6"],
                         capture_output=True, text=True, timeout=30, env=clean_env())
    assert out.returncode == 0, out.stderr
    assert "hunter" not in out.stderr, out.stderr
    command = [e["command"] for e in json_events(out.stderr) if e["event"] == "attempt"]
    assert command == [["sh", "-c", "exit 0", "sh", "--password", "…", "--db-password=…", "PGPASSWORD=…",
                        "postgresql://app:…@db/app", "host=db password=…"]], command


STRANGER = r"""
import os, sys
import psycopg2
out = int(sys.argv[2])
try:
    conn = psycopg2.connect(sys.argv[1], application_name="stranger")
    conn.autocommit = True
    with conn.cursor() as c:
        c.execute("SELECT pg_backend_pid()")
        os.write(out, f"{c.fetchone()[0]}\n".encode())
        c.execute("SELECT count(*) FROM features")
    result = "ok"
except Exception as e:
    result = str(e).strip().splitlines()[0]
os.write(out, (result + "\n").encode())
"""


class LineReader:
    """Lines from a pipe, each read with a deadline."""

    def __init__(self, fd):
        self.fd, self.buffer = fd, b""

    def line(self, timeout):
        import select
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"no line within {timeout}s (so far {self.buffer!r})"
            if select.select([self.fd], [], [], left)[0]:
                data = os.read(self.fd, 4096)
                assert data, f"the pipe closed (so far {self.buffer!r})"
                self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().strip()


def test_a_reused_pid_is_not_the_migrations(exporter_bin, pg_server, database, tmp_path):
    # A process of the migration ends and a stranger gets its pid (/proc/sys/kernel/ns_last_pid
    # chooses the next pid): the stranger's session is not the migration's.
    done = tmp_path / "done"
    dsn = f"host=127.0.0.1 port={pg_server.port} user=postgres dbname={database}"
    # The pid is claimed by writing ns_last_pid and forking at once: any process started on the
    # machine in between takes it. The server's autovacuum launcher starts workers all the time
    # on a cluster with the session's many databases (one such burst took 4 pids in a CI run):
    # it is off for this test.
    psql(pg_server.dsn, "ALTER SYSTEM SET autovacuum = off")
    psql(pg_server.dsn, "SELECT pg_reload_conf()")
    try:
        # Threads take numbers from the same space (a CI run lost the claimed pid to 3 of them in
        # the microseconds between ns_last_pid and fork): a lost claim is tried again, at most 3 times.
        for attempt in range(3):
            try:
                return reused_pid_scenario(exporter_bin, pg_server, database, tmp_path, done, dsn)
            except PidTaken as lost:
                print(f"\nmigrate: attempt {attempt + 1} to claim a pid: {lost}")
                done.unlink(missing_ok=True)
        pytest.fail("three attempts to claim a reused pid all lost it to another process")
    finally:
        psql(pg_server.dsn, "ALTER SYSTEM RESET autovacuum")
        psql(pg_server.dsn, "SELECT pg_reload_conf()")


class PidTaken(Exception):
    """Another process or thread took the pid the test meant to give its stranger."""


def reused_pid_scenario(exporter_bin, pg_server, database, tmp_path, done, dsn):
    lock, _ = holder(dsn, "LOCK TABLE features IN ACCESS EXCLUSIVE MODE")
    guard = start_guard(exporter_bin, pg_server, database,
                        ["--lock-timeout", "500ms", "--max-lock-wait", "1s", "--format", "json"],
                        ["sh", "-c", f"sleep 1000 & echo $!; wait; i=0; "
                                     f"while [ ! -e {done} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done"])
    stranger = None
    try:
        reused = int(guard.stdout.readline())
        time.sleep(1)  # the guard has looked at the migration's processes, this one among them
        r, w = os.pipe()
        started = start_time(reused)
        os.kill(reused, 9)
        deadline = time.monotonic() + 5
        while start_time(reused) == started:  # until the shell has reaped it
            assert time.monotonic() < deadline, f"pid {reused} was never reaped"
            time.sleep(0.001)
        if start_time(reused) is not None:
            raise PidTaken(f"another process took pid {reused} before ns_last_pid was written")
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(reused - 1))
        os.set_inheritable(w, True)
        stranger = os.fork()
        if stranger == 0:
            # Nothing but exec in the forked copy of this (threaded) process: the stranger is a
            # fresh Python with the same pid.
            os.execv(sys.executable, [sys.executable, "-c", STRANGER, dsn, str(w)])
        os.close(w)
        if stranger != reused:
            raise PidTaken(f"pid {reused} went to another process; the stranger got {stranger}")
        answers = LineReader(r)
        backend = int(answers.line(15))
        wait_lock_waits(pg_server, [backend])
        time.sleep(2.5)  # --max-lock-wait 1s, and more
        lock.commit()
        result = answers.line(15)
        done.touch()
        _, stderr = guard.communicate(timeout=30)
    finally:
        if guard.poll() is None:
            os.killpg(guard.pid, 9)
        if stranger:
            try:
                os.kill(stranger, 9)
            except ProcessLookupError:
                pass
            os.waitpid(stranger, 0)
        lock.close()
    assert result == "ok", (result, stderr)
    assert acted_on(stderr) == ([], []), stderr
    assert guard.returncode == 0, stderr


def test_a_child_on_the_guards_terminal_can_read_it(exporter_bin):
    # The child runs in a process group of its own: on a terminal the guard hands it the
    # terminal, or its first read would stop it (SIGTTIN) and the run would hang.
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(exporter_bin), [str(exporter_bin), "migrate", "--dsn", f"host=127.0.0.1 port={free_port()} connect_timeout=2",
                                     "--unwatched", "--", "sh", "-c", "echo ready; read x; echo got $x"])
    out, sent, status = b"", False, None
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and b"migrate: done:" not in out:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
            if b"ready" in out and not sent:
                os.write(fd, b"hello\n")
                sent = True
        if b"migrate: done:" in out:
            status = os.waitpid(pid, 0)[1]
    finally:
        if status is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert "\ngot hello\n" in text, text
    assert status == 0, text
