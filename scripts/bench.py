#!/usr/bin/env python3
"""The performance benchmark of pg_lock_exporter against the project's performance goals (judged in targets() below).

    python3 scripts/bench.py                 # full run: 100, 750 and 2000 client sessions + soak
    python3 scripts/bench.py --quick         # smoke run, about a minute after the build
    python3 scripts/bench.py --help

For each size it starts a realistic load on a throwaway PostgreSQL (scripts/pg-sandbox): idle
sessions, sessions idle in transaction, active sessions, and blocking chains (an idle-in-transaction
root holding a lock on a table, an ALTER TABLE queued behind it, readers queued behind the ALTER;
a third of the sessions blocked). It checks the load in pg_stat_activity, then measures in
interleaved rounds: the exporter's scrape latency over HTTP, its SQL and the cheapest SQL that
yields the same information timed in one psql session, and Debian's prometheus-postgres-exporter
on the same server; then both exporters' memory, the exporter's CPU time per scrape and the
server time of each exporter's queries (pg_stat_statements). A soak of many scrapes checks that
the exporter's private memory stays flat. It prints a Markdown report, with the performance targets
marked met or missed, and writes it to bench/results.md.

Python 3.11 standard library only, plus the system's psql and PostgreSQL server. Talks only to
127.0.0.1 and the sandbox's Unix socket. Exits non-zero only when something could not be started
or measured, never because a target was missed.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import http.client
import math
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANDBOX = os.path.join(ROOT, "scripts", "pg-sandbox")
THEIR_BINARY = "/usr/bin/prometheus-postgres-exporter"
# As `make release` builds it (RELEASE_FLAGS in the Makefile).
BUILD_COMMAND = ["swift", "build", "-c", "release", "--static-swift-stdlib", "-Xswiftc", "-use-ld=lld",
                 "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "--product", "pg_lock_exporter"]
# The headers Prometheus 2.x sends with a scrape, with a 10 s scrape timeout.
SCRAPE_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.45.3 (pg_lock_exporter bench)",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
WARMUP_SCRAPES = 5
WARMUP_SQL = 3
# Safety net for the load: a query still running if this script dies ends by itself.
LOAD_PGOPTIONS = "-c statement_timeout=1800000"
STARTED = time.monotonic()


class Failure(Exception):
    """Something could not be started or measured: the only reason to exit non-zero."""


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deadline_loop(seconds: float, interval: float):
    """Yields until `seconds` have passed, sleeping `interval` between rounds (a bounded poll)."""
    end = time.monotonic() + seconds
    while True:
        yield
        if time.monotonic() >= end:
            return
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# /proc readings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem, VmHWM (kB) and Threads from /proc/PID/status."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM", "Threads"):
                values[key] = int(rest.split()[0])
    return values


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)


def smaps_breakdown(pid: int) -> list[tuple[str, int, int]]:
    """(mapping, Rss kB, Anonymous kB) summed per file or kind of mapping, largest first."""
    totals: dict[str, list[int]] = {}
    current = "?"
    header = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if header.match(line):
                parts = line.split(None, 5)
                name = parts[5].strip() if len(parts) > 5 else ""
                current = os.path.basename(name) if name.startswith("/") else (name or "[anonymous]")
                totals.setdefault(current, [0, 0])
            elif line.startswith("Rss:"):
                totals[current][0] += int(line.split()[1])
            elif line.startswith("Anonymous:"):
                totals[current][1] += int(line.split()[1])
    return sorted(((k, v[0], v[1]) for k, v in totals.items()), key=lambda t: -t[1])


def mib(kb: float) -> float:
    return kb / 1024


# --------------------------------------------------------------------------------------------
# The sandbox server


class Sandbox:
    """A throwaway cluster started by scripts/pg-sandbox, with pg_stat_statements when available."""

    def __init__(self, directory: str, max_connections: int):
        self.dir = directory
        self.port = free_port()
        self.env = dict(os.environ, PG_SANDBOX_MAX_CONNECTIONS=str(max_connections))
        self.started = False
        self.has_statements = False
        self.version_num = 0
        self.version = ""

    def _sandbox(self, *args: str, timeout: float = 180) -> str:
        try:
            done = subprocess.run([SANDBOX, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"scripts/pg-sandbox {args[0]} timed out")
        if done.returncode != 0:
            raise Failure(f"scripts/pg-sandbox {args[0]} failed:\n{done.stderr.strip()}")
        return done.stdout.strip()

    def start(self) -> None:
        self.started = True
        self._sandbox("start", self.dir, str(self.port))
        bindir = self._sandbox("bindir")
        library = os.path.join(os.path.dirname(bindir), "lib", "pg_stat_statements.so")
        if os.path.exists(library):
            # pg-sandbox takes no extra server options: persist the setting and restart through it.
            self.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'", db="postgres")
            self._sandbox("start", self.dir, str(self.port))
            self.psql("ALTER SYSTEM SET pg_stat_statements.track_planning = on", db="postgres")
            self.psql("SELECT pg_reload_conf()", db="postgres")
            self.has_statements = True
        self.version_num = int(self.psql("SHOW server_version_num", db="postgres")[0][0])
        self.version = self.psql("SHOW server_version", db="postgres")[0][0]

    def stop(self) -> None:
        if self.started:
            try:
                self._sandbox("stop", self.dir, timeout=120)
            except Failure as error:
                log(f"warning: {error}")
            self.started = False

    def postmaster_pid(self) -> int:
        try:
            with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return -1

    def conninfo(self, db: str = "app", user: str = "postgres", application: str | None = None) -> str:
        text = f"host={self.dir} port={self.port} dbname={db} user={user}"
        return text + (f" application_name={application}" if application else "")

    def psql(self, sql: str, db: str = "app", user: str = "postgres", timeout: float = 120) -> list[list[str]]:
        """Runs SQL (sent on stdin, so it may hold several statements) and returns the rows."""
        command = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", self.conninfo(db, user, "bench")]
        try:
            done = subprocess.run(command, input=sql, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"psql timed out after {timeout}s running: {sql[:200]}")
        if done.returncode != 0:
            raise Failure(f"psql failed ({done.returncode}) running: {sql[:300]}\n{done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines() if line]


class PsqlTimer:
    """One psql session kept open on a pipe, with \\timing on and results sent to /dev/null: each
    statement (or `\\;`-joined batch, one round trip) written to it prints one `Time:` line,
    which psql flushes at once, so timings can be interleaved with scrapes."""

    def __init__(self, pg: Sandbox):
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", pg.conninfo("app", "postgres", "bench-sql")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
        )
        self.buffer = b""
        self.poller = select.poll()
        self.poller.register(self.proc.stdout, select.POLLIN)
        self.proc.stdin.write(b"SET lock_timeout = 1000;\n\\o /dev/null\n\\timing on\n")

    def time(self, sql: str, timeout: float = 60) -> float:
        try:
            self.proc.stdin.write((sql.strip().rstrip(";") + ";\n").encode())
        except OSError:
            pass  # psql exited: reported below
        end = time.monotonic() + timeout
        while True:
            line, sep, rest = self.buffer.partition(b"\n")
            if sep:
                self.buffer = rest
                match = re.match(rb"Time: ([0-9.]+) ms", line)
                if match:
                    return float(match.group(1))
                continue
            left = end - time.monotonic()
            if left <= 0 or not self.poller.poll(left * 1000):  # poll(): our fd may be above 1024
                raise Failure(f"psql timing session: no answer in {timeout}s to: {sql[:200]}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.proc.wait(timeout=10)
                error = self.proc.stderr.read().decode(errors="replace").strip()
                raise Failure(f"psql timing session ended ({self.proc.returncode}): {error}\n-- SQL:\n{sql}")
            self.buffer += chunk

    def repeat(self, sql: str, repetitions: int, warmup: int = WARMUP_SQL) -> list[float]:
        times = [self.time(sql) for _ in range(warmup + repetitions)]
        return times[warmup:]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


# --------------------------------------------------------------------------------------------
# SQL: the exporter's batch (printed by the binary), the cheapest batch
# that yields the same information, and the pieces timed on their own.


# The binary whose SQL is timed (set in main()): it prints its own statements, so the timed
# batch can never drift from what a scrape sends.
EXPORTER_BINARY = ""


def exporter_statements(version: int) -> list[str]:
    """The statements of one collection as the exporter sends them for `serve`, printed by the
    binary itself (`serve --print-sql VERSION`): the statement timeout, sessions, locks,
    prepared transactions, databases, and the settings statement it sends on connect and then
    once a minute."""
    out = subprocess.run([EXPORTER_BINARY, "serve", "--print-sql", str(version)], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise Failure(f"{EXPORTER_BINARY} serve --print-sql failed: {out.stderr.strip()[:200]}")
    statements = [part.strip() for part in out.stdout.split("\n--\n")]
    # The timeout statement takes its value as a parameter; psql sends it inline.
    statements = [st.replace("$1", "'5000'") for st in statements]
    if len(statements) != 6:
        raise Failure(f"expected 6 statements from --print-sql, got {len(statements)}")
    return statements


def aggregates_sql() -> str:
    """pg_sessions, pg_idle_in_transaction_seconds and pg_transaction_age_seconds_max need one row
    per (database, user, application, state) group, not one per session."""
    return """SELECT datname, usename, application_name, coalesce(state, 'unknown'), count(*),
       max(extract(epoch FROM now() - state_change)) FILTER (WHERE state LIKE 'idle in transaction%'),
       max(extract(epoch FROM now() - xact_start))
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1, 2, 3, 4"""


def waiters_sql(version: int) -> str:
    """The blocking graph needs the lock waiters with pg_blocking_pids() and their wait start."""
    wait = "extract(epoch FROM now() - l.waitstart)" if version >= 140000 else "extract(epoch FROM now() - a.state_change)"
    join = (
        "LEFT JOIN (SELECT pid, min(waitstart) AS waitstart FROM pg_locks WHERE NOT granted GROUP BY pid) l ON l.pid = a.pid"
        if version >= 140000
        else ""
    )
    return f"""SELECT a.pid, a.datname, pg_blocking_pids(a.pid), {wait}
FROM pg_stat_activity a {join}
WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid()"""


def waiters_and_roots_sql(version: int) -> str:
    """Waiters plus the rows of the sessions they wait on (the roots' labels and ages), one
    statement so pg_blocking_pids() is read once."""
    wait = "extract(epoch FROM now() - l.waitstart)" if version >= 140000 else "extract(epoch FROM now() - a.state_change)"
    join = (
        "LEFT JOIN (SELECT pid, min(waitstart) AS waitstart FROM pg_locks WHERE NOT granted GROUP BY pid) l ON l.pid = a.pid"
        if version >= 140000
        else ""
    )
    return f"""WITH w AS MATERIALIZED (
    SELECT a.pid, a.datname, pg_blocking_pids(a.pid) AS blockers, {wait} AS wait
    FROM pg_stat_activity a {join}
    WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid())
SELECT pid, datname, blockers, wait, NULL::name, NULL::text, NULL::text, NULL::text, NULL::float8 FROM w
UNION ALL
SELECT a.pid, a.datname, NULL, NULL, a.usename, a.application_name,
       coalesce(host(a.client_addr), CASE WHEN a.client_port = -1 THEN 'local' END, ''), a.state,
       extract(epoch FROM now() - a.state_change)
FROM pg_stat_activity a
WHERE a.pid IN (SELECT unnest(blockers) FROM w) AND a.wait_event_type IS DISTINCT FROM 'Lock'"""


def batch(statements: list[str]) -> str:
    """Statements joined with psql's \\; so they go to the server as one query, one round trip."""
    return " \\;\n".join(statements)


def lean_sql(version: int) -> str:
    """The exporter's sessions and lock statements folded into one, reading pg_locks once (for the
    wait starts and the lock counts) and leaving out what no metric uses (backend_start and
    state_change as text, needed only by remediate). Lock-count rows come after the session rows,
    with a NULL pid."""
    if version < 140000:
        return f"""SELECT a.pid, a.datname, a.usename, a.application_name,
       coalesce(host(a.client_addr), CASE WHEN a.client_port = -1 THEN 'local' END, ''), a.backend_type, a.state,
       extract(epoch FROM now() - a.state_change), extract(epoch FROM now() - a.xact_start),
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END, NULL::float8, NULL::bool, NULL::int8
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid()
UNION ALL
SELECT NULL, coalesce(d.datname, ''), NULL, l.mode, NULL, NULL, NULL, NULL, NULL, NULL, NULL, l.granted, count(*)
FROM pg_locks l LEFT JOIN pg_database d ON d.oid = l.database
WHERE l.pid IS DISTINCT FROM pg_backend_pid()
GROUP BY d.datname, l.mode, l.granted"""
    return """WITH l AS MATERIALIZED (SELECT pid, database, mode, granted, waitstart FROM pg_locks)
SELECT a.pid, a.datname, a.usename, a.application_name,
       coalesce(host(a.client_addr), CASE WHEN a.client_port = -1 THEN 'local' END, ''), a.backend_type, a.state,
       extract(epoch FROM now() - a.state_change), extract(epoch FROM now() - a.xact_start),
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END,
       extract(epoch FROM now() - w.waitstart), NULL::bool, NULL::int8
FROM pg_stat_activity a
LEFT JOIN (SELECT pid, min(waitstart) AS waitstart FROM l WHERE NOT granted GROUP BY pid) w ON w.pid = a.pid
WHERE a.pid <> pg_backend_pid()
UNION ALL
SELECT NULL, coalesce(d.datname, ''), NULL, l.mode, NULL, NULL, NULL, NULL, NULL, NULL, NULL, l.granted, count(*)
FROM l LEFT JOIN pg_database d ON d.oid = l.database
WHERE l.pid IS DISTINCT FROM pg_backend_pid()
GROUP BY d.datname, l.mode, l.granted"""


def prepare_statements(version: int) -> list[str]:
    """Run once in the timing session: the lean batch as prepared statements (planned once, as an
    exporter that prepares its statements per connection would)."""
    ours = exporter_statements(version)
    return [
        f"PREPARE bench_lean AS {lean_sql(version)}",
        f"PREPARE bench_databases AS {ours[3]}",
    ]


# The SQL timed in the same rounds as the scrapes; the cheapest of them is the reference.
ROUND_SQL = ("batch", "lean", "prepared")


def sql_variants(version: int) -> dict[str, str]:
    ours = exporter_statements(version)
    return {
        # The exporter's own batch, as a scrape sends it (the settings statement goes once a minute).
        "batch": batch(ours[:4]),
        # The same information in one statement for sessions and locks, then the same
        # databases statement; and that batch prepared.
        "lean": batch([ours[0], lean_sql(version), ours[3]]),
        "prepared": batch([ours[0], "EXECUTE bench_lean", "EXECUTE bench_databases"]),
        # Fewer rows instead: one row per group, the waiters and the rows of those they wait on.
        "aggregated": batch([ours[0], aggregates_sql(), waiters_and_roots_sql(version), ours[2], ours[3]]),
        # The pieces timed on their own.
        "aggregates": aggregates_sql(),
        "waiters": waiters_sql(version),
        "rows": ours[1],
        "rows+bp(all)": """SELECT a.*, pg_blocking_pids(a.pid) FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid()""",
        "locks": ours[2],
        "databases": ours[3],
        "settings": ours[4],
        "bp(waiters)": "SELECT pg_blocking_pids(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        "count(pg_locks)": "SELECT count(*) FROM pg_locks",
        "count(pg_stat_activity)": "SELECT count(*) FROM pg_stat_activity",
    }


SQL_LABELS = {
    "batch": "the exporter's batch as a scrape sends it (printed by the binary)",
    "lean": "lean batch: sessions + lock counts in one statement reading pg_locks once, no timestamp text",
    "prepared": "the lean batch, prepared (no planning per run)",
    "aggregated": "aggregated batch: group aggregates + waiters + their blockers' rows + locks, databases, settings",
    "aggregates": "per-group aggregates of pg_stat_activity",
    "waiters": "lock waiters with pg_blocking_pids() and waitstart",
    "rows": "every session's row (the exporter's sessions statement)",
    "rows+bp(all)": "every row plus pg_blocking_pids() for every session",
    "locks": "the exporter's lock counts statement",
    "databases": "the exporter's pg_stat_database statement",
    "settings": "the exporter's pg_settings statement",
    "bp(waiters)": "SELECT pg_blocking_pids(pid) ... WHERE wait_event_type='Lock'",
    "count(pg_locks)": "SELECT count(*) FROM pg_locks",
    "count(pg_stat_activity)": "SELECT count(*) FROM pg_stat_activity",
}


def words(sql: str) -> frozenset[str]:
    """The identifiers and keywords of a statement, literals and $n parameters left out: equal for
    a statement and pg_stat_statements' normalized text of it."""
    text = re.sub(r"'(?:[^']|'')*'", " ", sql.lower())
    found = set(re.findall(r"[a-z_][a-z_0-9]*", re.sub(r"\$\d+", " ", text)))
    return frozenset(found - NORMALIZED_WORDS)


# Constants that pg_stat_statements replaces with $n: extract(epoch ...), NULL::text, true/false.
NORMALIZED_WORDS = frozenset({"epoch", "null", "true", "false"})


# --------------------------------------------------------------------------------------------
# The load: one psql process per client session, fed by a pipe that stays open


class Load:
    """Client sessions held by psql processes. Each psql reads its SQL from a pipe we keep open,
    so it stays connected in whatever state the SQL left it (idle, idle in transaction, waiting)."""

    def __init__(self, pg: Sandbox, log_path: str):
        self.pg = pg
        self.procs: list[tuple[subprocess.Popen, tuple]] = []
        self.log = open(log_path, "ab")
        self.env = dict(os.environ, PGOPTIONS=LOAD_PGOPTIONS)
        self.env.pop("PGAPPNAME", None)

    def spawn(self, spec: tuple) -> None:
        db, user, application, sql = spec
        proc = subprocess.Popen(
            ["psql", "-X", "-q", self.pg.conninfo(db, user, application)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log, env=self.env, bufsize=0,
            start_new_session=True,
        )
        self.procs.append((proc, spec))
        try:
            proc.stdin.write((sql + "\n").encode())
        except OSError:
            pass  # it already exited: start() notices and starts it again

    def start(self, specs: list[tuple], check_sql: str, expected: tuple, what: str, timeout: float) -> None:
        """Starts sessions and waits until `check_sql` returns `expected`; respawns a psql that
        exited (a connection refused under the storm of new connections), a few times at most."""
        first = len(self.procs)
        for i, spec in enumerate(specs):
            self.spawn(spec)
            if i % 100 == 99:
                time.sleep(0.05)  # let the postmaster keep up
        respawns = 0
        seen = None
        for _ in deadline_loop(timeout, 0.3):
            for index in range(first, len(self.procs)):
                proc, spec = self.procs[index]
                if proc.poll() is not None:
                    if respawns >= 20:
                        raise Failure(f"load: psql sessions keep exiting (see {self.log.name})")
                    respawns += 1
                    try:
                        proc.stdin.close()
                    except OSError:
                        pass
                    self.spawn(spec)
                    self.procs[index] = self.procs.pop()
            seen = tuple(self.pg.psql(check_sql)[0])
            if seen == expected:
                return
        raise Failure(f"load: {what} not reached in {timeout:.0f}s: expected {expected}, last seen {seen}")

    def stop(self) -> None:
        """Ends every client session (the exporters are stopped first) and every psql."""
        if not self.procs:
            return
        try:
            self.pg.psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND wait_event_type = 'Lock';"
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                timeout=60,
            )
        except Failure as error:
            log(f"warning: terminating the load: {error}")
        for proc, _ in self.procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        end = time.monotonic() + 30
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=max(0.01, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs = []

    def close(self) -> None:
        self.stop()
        self.log.close()


def load_plan(size: int) -> dict:
    """The sessions of one size: a third blocked in chains, a tenth idle in transaction elsewhere,
    a twentieth active, the rest idle."""
    chains = max(2, size // 150)
    blocked = size // 3
    readers = blocked - chains
    idle_tx = size // 10
    active = size // 20
    idle = size - chains - blocked - idle_tx - active
    if idle < 0 or readers < chains:
        raise Failure(f"size {size} is too small for the load (use 30 sessions or more)")
    return dict(size=size, chains=chains, blocked=blocked, readers=readers, idle_tx=idle_tx, active=active, idle=idle)


VERIFY_SQL = """SELECT count(*),
       count(*) FILTER (WHERE state = 'idle'),
       count(*) FILTER (WHERE state LIKE 'idle in transaction%'),
       count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock'),
       count(*) FILTER (WHERE wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND usename NOT IN ('monitor', 'pgexp') AND application_name NOT LIKE 'bench%'"""


def open_load(pg: Sandbox, load: Load, plan: dict) -> None:
    size, chains = plan["size"], plan["chains"]
    tables = [f"chain_{size}_{k}" for k in range(1, chains + 1)]
    pg.psql(
        "SET client_min_messages = warning;\n"
        + "".join(
            f"CREATE TABLE IF NOT EXISTS {t} (id int PRIMARY KEY, payload text);\n"
            f"INSERT INTO {t} SELECT g, md5(g::text) FROM generate_series(1, 100) g ON CONFLICT DO NOTHING;\n"
            for t in tables
        ),
        user="app",
    )
    base: list[tuple] = []
    for i in range(plan["idle"]):  # idle pooled connections of several applications and users
        if i % 10 == 0:
            base.append(("postgres", "postgres", "psql", "SELECT 1;"))
        elif i % 10 == 1:
            base.append(("app", "reporting", "metabase", "SELECT 1;"))
        else:
            base.append(("app", "app", f"web-{i % 4 + 1}", "SELECT count(*) FROM orders WHERE id = 1;"))
    for i in range(plan["idle_tx"]):  # idle in transaction, holding locks nobody else wants
        base.append(("app", "app", "celery", f"BEGIN; SELECT * FROM orders WHERE id = {i + 1};"))
    for i in range(plan["active"]):
        base.append(("app", "app", "batch", "SELECT pg_sleep(3600);"))
    for t in tables:  # the chain roots: a read left idle in transaction
        base.append(("app", "app", "worker", f"BEGIN; SELECT * FROM {t} LIMIT 1;"))
    n_idle_tx = plan["idle_tx"] + chains
    load.start(
        base, VERIFY_SQL,
        (str(len(base)), str(plan["idle"]), str(n_idle_tx), str(plan["active"]), "0"),
        "idle, idle-in-transaction and active sessions", timeout=60 + size / 10,
    )
    # The migrations queue behind the roots...
    load.start(
        [("app", "app", "alembic", f"ALTER TABLE {t} ADD COLUMN signature text;") for t in tables],
        VERIFY_SQL,
        (str(len(base) + chains), str(plan["idle"]), str(n_idle_tx), str(plan["active"]), str(chains)),
        "ALTER TABLEs queued behind the roots", timeout=60,
    )
    # ...and the readers behind the migrations, spread over the chains.
    readers = [
        ("app", "app", f"web-{j % 4 + 1}", f"SELECT count(*) FROM {tables[j % chains]};") for j in range(plan["readers"])
    ]
    load.start(
        readers, VERIFY_SQL,
        (str(size), str(plan["idle"]), str(n_idle_tx), str(plan["active"]), str(plan["blocked"])),
        "readers queued behind the ALTER TABLEs", timeout=60 + size / 10,
    )


# --------------------------------------------------------------------------------------------
# Exporters and scraping


class Exporter:
    def __init__(self, name: str, command: list[str], env: dict, port: int, log_path: str):
        self.name = name
        self.port = port
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(command, env=env, stdout=self.log, stderr=self.log, start_new_session=True)
        self.conn: http.client.HTTPConnection | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 20) -> None:
        for _ in deadline_loop(timeout, 0.1):
            if self.proc.poll() is not None:
                raise Failure(f"{self.name} exited with {self.proc.returncode}; log: {self.log_path}\n{self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                pass
        raise Failure(f"{self.name} does not listen on 127.0.0.1:{self.port} after {timeout}s; log: {self.log_path}")

    def tail(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def scrape(self, path: str = "/metrics") -> tuple[float, bytes]:
        """One GET /metrics on a kept-alive connection, as Prometheus scrapes; milliseconds from
        sending the request to the last byte of the body, and the body (decompressed)."""
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    self.conn.connect()
                started = time.perf_counter()
                self.conn.request("GET", path, headers=SCRAPE_HEADERS)
                response = self.conn.getresponse()
                body = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    raise Failure(f"{self.name} answered {response.status}: {body[:300]!r}")
                if response.getheader("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if response.will_close:
                    self.conn.close()
                    self.conn = None
                return elapsed, body
            except (http.client.HTTPException, OSError) as error:
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                if attempt == 1 or self.proc.poll() is not None:
                    raise Failure(f"{self.name}: scrape failed: {error}\n{self.tail()}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def metric_value(body: bytes, name_and_labels: str) -> float | None:
    match = re.search(rb"^" + re.escape(name_and_labels.encode()) + rb" (\S+)$", body, re.M)
    return float(match.group(1)) if match else None


def server_time(pg: Sandbox, role: str) -> tuple[float, float, int, list[frozenset]]:
    """Total execution and planning time (ms) and calls of `role`'s statements since the last
    reset, and the word sets of the statements it ran."""
    where = f"WHERE userid = '{role}'::regrole"
    execute, plan, calls = pg.psql(
        "SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(total_plan_time), 0), coalesce(sum(calls), 0) "
        f"FROM pg_stat_statements {where}"
    )[0]
    texts = pg.psql(
        "SELECT string_agg(translate(query, E'\\n\\r\\t', '   '), E'\\x1f') FROM pg_stat_statements " + where
    )
    joined = texts[0][0] if texts and texts[0] else ""
    return float(execute), float(plan), int(calls), [words(t) for t in joined.split("\x1f") if t.strip()]


def reset_statements(pg: Sandbox) -> None:
    if pg.has_statements:
        pg.psql("SELECT pg_stat_statements_reset()")


def exporter_stats(exporter: Exporter, cpu_before: float, scrapes: int, latencies: list[float]) -> dict:
    return dict(
        p50=statistics.median(latencies), p99=percentile(latencies, 99), mean=statistics.fmean(latencies),
        cpu_ms=(proc_cpu_seconds(exporter.pid) - cpu_before) * 1000 / scrapes, status=proc_status(exporter.pid),
        server_ms=None, plan_ms=None, statements=[],
    )


def measure(pg: Sandbox, ours: Exporter, theirs: Exporter, timer: PsqlTimer, rounds: int) -> dict:
    """Interleaved rounds, so that noise from other jobs on a shared machine hits every contender
    alike: each round scrapes both exporters once and runs each SQL batch of ROUND_SQL once in the
    psql session, in a rotating order."""
    variants = sql_variants(pg.version_num)
    for statement in prepare_statements(pg.version_num):
        timer.time(statement)
    for _ in range(WARMUP_SCRAPES):
        ours.scrape()
        theirs.scrape()
    for _ in range(WARMUP_SQL):
        for key in ROUND_SQL:
            timer.time(variants[key])
    reset_statements(pg)
    steps = ["ours", "theirs", *ROUND_SQL]
    samples: dict[str, list[float]] = {step: [] for step in steps}
    bodies = {}
    cpu = {"ours": proc_cpu_seconds(ours.pid), "theirs": proc_cpu_seconds(theirs.pid)}
    watch = Interference(pg, [ours.pid, theirs.pid, timer.proc.pid])
    for i in range(rounds):
        shift = i % len(steps)
        for step in steps[shift:] + steps[:shift]:
            if step in variants:
                samples[step].append(timer.time(variants[step]))
            else:
                elapsed, bodies[step] = (ours if step == "ours" else theirs).scrape()
                samples[step].append(elapsed)
    result = {
        "ours": exporter_stats(ours, cpu["ours"], rounds, samples["ours"]),
        "theirs": exporter_stats(theirs, cpu["theirs"], rounds, samples["theirs"]),
        "sql": {k: dict(p50=statistics.median(samples[k]), p99=percentile(samples[k], 99)) for k in ROUND_SQL},
        "other_cpus": watch.others(),
    }
    for key, role in (("ours", "monitor"), ("theirs", "pgexp")):
        result[key]["body"] = bodies[key]
        if pg.has_statements:
            execute, plan, calls, statements = server_time(pg, role)
            result[key].update(server_ms=execute / rounds, plan_ms=plan / rounds, server_calls=calls / rounds,
                               statements=statements)
    return result


class Interference:
    """How many CPUs other jobs on the machine kept busy while we measured: the machine's busy
    time less the time of everything we run (the server's processes, the exporters, psql, us)."""

    def __init__(self, pg: Sandbox, pids: list[int]):
        self.pg = pg
        self.pids = pids
        self.start = (time.monotonic(), machine_busy_seconds(), self.ours())

    def ours(self) -> float:
        total = sum(os.times()[:2])
        postmaster = self.pg.postmaster_pid()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            pid = int(entry.name)
            if pid in self.pids or pid == postmaster or int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        return total

    def others(self) -> float:
        wall, busy, ours = self.start
        return max(0.0, ((machine_busy_seconds() - busy) - (self.ours() - ours)) / (time.monotonic() - wall))


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


# --------------------------------------------------------------------------------------------
# One size


def run_size(args, pg: Sandbox, workdir: str, ours_binary: str, plan: dict, soak: int) -> dict:
    size = plan["size"]
    row: dict = dict(plan=plan)
    load = Load(pg, os.path.join(workdir, f"load-{size}.log"))
    ours = theirs = timer = None
    try:
        started = time.monotonic()
        log(f"size {size}: opening {size} client sessions "
            f"({plan['idle']} idle, {plan['idle_tx'] + plan['chains']} idle in transaction incl. {plan['chains']} roots, "
            f"{plan['active']} active, {plan['blocked']} blocked in {plan['chains']} chains)")
        open_load(pg, load, plan)
        row["setup_s"] = time.monotonic() - started
        verified = pg.psql(VERIFY_SQL)[0]
        row["verified"] = verified
        log(f"size {size}: load verified in {row['setup_s']:.1f}s: {verified[0]} client sessions, {verified[4]} blocked")

        env = dict(PATH=os.environ.get("PATH", "/usr/bin:/bin"), HOME=os.environ.get("HOME", "/"))
        port = free_port()
        ours = Exporter(
            "pg_lock_exporter",
            [ours_binary, "serve", "--dsn", pg.conninfo("app", "monitor"), "--web.listen-address", f"127.0.0.1:{port}"],
            env, port, os.path.join(workdir, f"pg_lock_exporter-{size}.log"),
        )
        port = free_port()
        theirs = Exporter(
            "postgres_exporter", [THEIR_BINARY, f"--web.listen-address=127.0.0.1:{port}"],
            dict(env, DATA_SOURCE_NAME=pg.conninfo("app", "pgexp") + " sslmode=disable"),
            port, os.path.join(workdir, f"postgres_exporter-{size}.log"),
        )
        ours.wait_ready()
        theirs.wait_ready()
        timer = PsqlTimer(pg)

        log(f"size {size}: {args.scrapes} rounds of: a scrape of each exporter, {', '.join(ROUND_SQL)} in psql")
        measured = measure(pg, ours, theirs, timer, args.scrapes)
        row.update(ours=measured["ours"], theirs=measured["theirs"], sql=measured["sql"], other_cpus=measured["other_cpus"])
        body = row["ours"]["body"]
        row["reported_blocked"] = metric_value(body, 'pg_blocked_sessions{datname="app"}')
        row["reported_depth"] = metric_value(body, 'pg_blocking_chain_depth_max{datname="app"}')
        row["reported_up"] = metric_value(body, "pg_up")
        row["theirs_up"] = metric_value(row["theirs"]["body"], "pg_up")
        if row["reported_up"] != 1 or row["theirs_up"] != 1:
            raise Failure(f"size {size}: pg_up is {row['reported_up']} (ours) and {row['theirs_up']} (postgres_exporter)")
        log(f"size {size}: ours p50 {row['ours']['p50']:.2f} ms, theirs {row['theirs']['p50']:.2f} ms, "
            + ", ".join(f"{k} {row['sql'][k]['p50']:.2f} ms" for k in ROUND_SQL)
            + f"; other jobs kept {row['other_cpus']:.2f} CPUs busy")
        theirs.stop()
        theirs = None
        # The HTTP round trip alone (this script's client included): the exporter's health check.
        row["http_floor"] = statistics.median(ours.scrape("/-/healthy")[0] for _ in range(50))
        row["breakdown"] = smaps_breakdown(ours.pid)
        if soak:
            row["soak"] = run_soak(ours, soak)
        ours.stop()
        ours = None

        # The pieces, one after the other (informational).
        for key, sql in sql_variants(pg.version_num).items():
            if key not in row["sql"]:
                times = timer.repeat(sql, args.sql_reps)
                row["sql"][key] = dict(p50=statistics.median(times), p99=percentile(times, 99))
        log(f"size {size}: statements timed in psql ({args.sql_reps} runs each): "
            + ", ".join(f"{k} {v['p50']:.2f}" for k, v in row["sql"].items()))
        timer.close()
        timer = None

        row["after"] = pg.psql(VERIFY_SQL)[0]
        if row["after"] != verified:
            log(f"warning: size {size}: the load changed during the measurements: {verified} -> {row['after']}")
        return row
    finally:
        for exporter in (ours, theirs):
            if exporter is not None:
                exporter.stop()
        if timer is not None:
            timer.close()
        log(f"size {size}: closing the load")
        load.close()


def run_scale(pg: Sandbox, workdir: str, binary: str, targets: int, window: float, interval: float) -> list[dict]:
    """One exporter serving `targets` databases through /probe (--config.file), each probed every
    `interval` seconds as Prometheus would, for `window` seconds: without and with the background
    sampler (--sample.interval 1s). Reports CPU, memory and the connections it holds."""
    names = [f"scale_{i:03d}" for i in range(targets)]
    log(f"scale: creating {targets} databases")
    existing = {row[0] for row in pg.psql("SELECT datname FROM pg_database", db="postgres")}
    missing = [n for n in names if n not in existing]
    for start in range(0, len(missing), 50):
        # psql sends each statement on its own: CREATE DATABASE cannot run in a transaction block.
        pg.psql("".join(f"CREATE DATABASE {n};\n" for n in missing[start:start + 50]), db="postgres", timeout=600)
    config = os.path.join(workdir, "targets.yml")
    with open(config, "w") as f:
        f.write("targets:\n")
        for n in names:
            f.write(f"  {n}:\n    dsn: \"{pg.conninfo(n, 'monitor')}\"\n")
    results = []
    for label, extra in (("probes only", []), ("probes + sampler 1s", ["--sample.interval", "1s"])):
        port = free_port()
        exporter = Exporter(
            "pg_lock_exporter (scale)",
            [binary, "serve", "--config.file", config, "--web.listen-address", f"127.0.0.1:{port}", *extra],
            dict(os.environ), port, os.path.join(workdir, "scale.log"))
        try:
            exporter.wait_ready()
            for n in names:  # every target connected and warm before measuring
                exporter.scrape(f"/probe?target={n}")
            cpu_before = proc_cpu_seconds(exporter.pid)
            started = time.monotonic()
            latencies = []
            probes = 0
            step = interval / targets
            while time.monotonic() - started < window:
                due = started + probes * step
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                elapsed, body = exporter.scrape(f"/probe?target={names[probes % targets]}")
                if metric_value(body, "pg_up") != 1:
                    raise Failure(f"scale: target {names[probes % targets]} answered pg_up != 1")
                latencies.append(elapsed)
                probes += 1
            wall = time.monotonic() - started
            cpu = proc_cpu_seconds(exporter.pid) - cpu_before
            held = int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_lock_exporter'", db="postgres")[0][0])
            status = proc_status(exporter.pid)
            results.append(dict(
                label=label, targets=targets, interval=interval, window=wall, probes=probes,
                cpu_percent=100 * cpu / wall, cpu_ms_per_probe=1000 * cpu / max(1, probes),
                p50=percentile(latencies, 50), p99=percentile(latencies, 99), connections=held,
                rss=mib(status["VmRSS"]), anon=mib(status["RssAnon"]), threads=status["Threads"]))
            log(f"scale ({label}): {probes} probes in {wall:.0f}s, CPU {100 * cpu / wall:.1f}%, {held} connections")
        finally:
            exporter.stop()
    return results


def run_soak(exporter: Exporter, scrapes: int) -> dict:
    log(f"soak: {scrapes} scrapes")
    every = max(1, scrapes // 50)
    first = proc_status(exporter.pid)
    samples = [first["RssAnon"]]
    rss = [first["VmRSS"]]
    cpu_before = proc_cpu_seconds(exporter.pid)
    latencies = []
    started = time.monotonic()
    for i in range(1, scrapes + 1):
        elapsed, _ = exporter.scrape()
        latencies.append(elapsed)
        if i % every == 0 or i == scrapes:
            status = proc_status(exporter.pid)
            samples.append(status["RssAnon"])
            rss.append(status["VmRSS"])
    return dict(
        scrapes=scrapes, seconds=time.monotonic() - started, anon_before=samples[0], anon_after=samples[-1],
        anon_max=max(samples), anon_min=min(samples), rss_before=rss[0], rss_after=rss[-1], rss_max=max(rss),
        p50=statistics.median(latencies), p99=percentile(latencies, 99),
        cpu_ms=(proc_cpu_seconds(exporter.pid) - cpu_before) * 1000 / scrapes,
    )


# --------------------------------------------------------------------------------------------
# The report


def machine() -> dict:
    model = "?"
    memory = 0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1])
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "Sources"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " (Sources/ modified)" if dirty else ""
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return dict(
        nproc=len(os.sched_getaffinity(0)), model=model, memory_gib=memory / 1024 / 1024, kernel=os.uname().release,
        commit=commit, argv=sys.argv[1:],
    )


def scale_report(scale: list[dict]) -> str:
    if not scale:
        return ""
    first = scale[0]
    out = ["", f"## Scale: one exporter, {first['targets']} targets", "",
           f"`--config.file` with {first['targets']} databases on the sandbox server, each probed at `/probe?target=NAME` "
           f"every {first['interval']:g} s (Prometheus's schedule, spread evenly), for {first['window']:.0f} s; then the same "
           "with the background sampler on (`--sample.interval 1s`, one aggregate per target per second).", "",
           "| mode | probes | CPU % of one core | CPU ms/probe | probe p50 / p99 ms | connections held | RSS MiB | anon MiB | threads |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in scale:
        out.append(f"| {r['label']} | {r['probes']} | {r['cpu_percent']:.1f} | {r['cpu_ms_per_probe']:.2f} | "
                   f"{r['p50']:.2f} / {r['p99']:.2f} | {r['connections']} | {r['rss']:.1f} | {r['anon']:.1f} | {r['threads']} |")
    out.append("")
    return "\n".join(out)


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def cheapest_sql(row: dict) -> tuple[str, float]:
    key = min(ROUND_SQL, key=lambda k: row["sql"][k]["p50"])
    return key, row["sql"][key]["p50"]


def report(args, pg: Sandbox, rows: list[dict], info: dict, their_version: str, mirror_ok: bool | None) -> str:
    out: list[str] = []
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append("# pg_lock_exporter benchmark\n")
    out.append(
        f"{now} · {info['nproc']} CPUs ({info['model']}), {info['memory_gib']:.0f} GiB, Linux {info['kernel']} · "
        f"PostgreSQL {pg.version} · postgres_exporter {their_version} (Debian, default collectors) · "
        f"pg_lock_exporter at {info['commit']} (binary {info['binary']}) · `{' '.join(['scripts/bench.py', *info['argv']])}`\n"
    )
    out.append(
        f"Per size, {args.scrapes} interleaved rounds after {WARMUP_SCRAPES} warm-up scrapes; each round, in a rotating "
        "order: one scrape of pg_lock_exporter, one of postgres_exporter, and one run of each SQL batch in one psql "
        "session (`\\timing`, results to /dev/null), so noise from other jobs hits all alike. Scrapes are sequential "
        "on a kept-alive HTTP connection with Prometheus's headers (`Accept-Encoding: gzip`, "
        "`X-Prometheus-Scrape-Timeout-Seconds: 10`). Both exporters connect over the Unix socket as a `pg_monitor` "
        "role. Times are medians unless marked p99.\n"
    )
    out.append(
        "| sessions | blocked | exporter p50 / p99 ms | SQL batch / cheapest ms | ratio | postgres_exporter p50 / p99 ms "
        "| speedup | RSS ours / theirs MiB | anon ours MiB | CPU ms/scrape |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        o, t = row["ours"], row["theirs"]
        _, cheapest = cheapest_sql(row)
        blocked = row["verified"][4]
        if row["reported_blocked"] is not None and int(row["reported_blocked"]) != int(blocked):
            blocked += f" (exporter said {int(row['reported_blocked'])})"
        out.append(
            f"| {row['plan']['size']} | {blocked} | {o['p50']:.2f} / {o['p99']:.2f} "
            f"| {row['sql']['batch']['p50']:.2f} / {cheapest:.2f} | {o['p50'] / cheapest:.2f}× "
            f"| {t['p50']:.2f} / {t['p99']:.2f} | {t['p50'] / o['p50']:.1f}× "
            f"| {mib(o['status']['VmRSS']):.1f} / {mib(t['status']['VmRSS']):.1f} | {mib(o['status']['RssAnon']):.1f} "
            f"| {o['cpu_ms']:.2f} |"
        )
    out.append("")
    out.append(
        "SQL batch = the exporter's own statements as it sends them (`SET statement_timeout` + sessions, locks, "
        "databases, settings in one round trip), as printed by the binary (`serve --print-sql`); `pg_settings` is read once a minute, not per scrape. Cheapest = the fastest of "
        "the SQL that yields the same information: that batch; the *lean* batch (sessions and lock counts in one "
        "statement that reads `pg_locks` once, without the `backend_start`/`state_change` text no metric uses); and "
        "the lean batch *prepared* (no planning per run). ratio = exporter p50 / cheapest. speedup = postgres_exporter "
        "p50 / exporter p50. RSS = VmRSS, anon = RssAnon, after the scrapes. CPU = the exporter's utime+stime over the "
        "rounds / scrapes."
    )
    if mirror_ok is not None:
        out.append(
            "The mirrored batch matches the statements the exporter ran (checked against pg_stat_statements)."
            if mirror_ok
            else "**The mirrored batch no longer matches the statements the exporter ran (pg_stat_statements): "
            "update `exporter_statements()` in scripts/bench.py.**"
        )
    out.append("")

    out.append("## Details\n")
    out.append(
        "| sessions | exporter mean ms = execute + plan + own CPU + rest | HTTP floor ms | SQL batch / lean / prepared ms "
        "| server ms/scrape theirs "
        "| statements/scrape ours / theirs | body KiB ours / theirs | CPU ms/scrape theirs | anon theirs MiB "
        "| threads ours / theirs | other jobs' CPUs | load setup s |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        o, t = row["ours"], row["theirs"]
        if o["server_ms"] is not None:
            split = (f"{o['mean']:.2f} = {o['server_ms']:.2f} + {o['plan_ms']:.2f} + {o['cpu_ms']:.2f} + "
                     f"{o['mean'] - o['server_ms'] - o['plan_ms'] - o['cpu_ms']:.2f}")
        else:
            split = f"{o['mean']:.2f} = n/a + n/a + {o['cpu_ms']:.2f} + n/a"
        out.append(
            f"| {row['plan']['size']} | {split} | {row['http_floor']:.2f} | "
            + " / ".join(f"{row['sql'][k]['p50']:.2f}" for k in ROUND_SQL)
            + f" | {fmt(None if t['server_ms'] is None else t['server_ms'] + t['plan_ms'])} | {fmt(o.get('server_calls'), 0)} / {fmt(t.get('server_calls'), 0)} "
            f"| {len(o['body']) / 1024:.1f} / {len(t['body']) / 1024:.1f} | {t['cpu_ms']:.2f} "
            f"| {mib(t['status']['RssAnon']):.1f} | {o['status']['Threads']} / {t['status']['Threads']} "
            f"| {row['other_cpus']:.2f} | {row['setup_s']:.1f} |"
        )
    out.append("")
    out.append(
        "execute and plan = `total_exec_time` and `total_plan_time` of the exporter's statements in "
        "pg_stat_statements (its own role) / scrapes (theirs: the sum); own CPU = the exporter process's CPU time / "
        "scrapes; rest = everything else: parse on the server, the network, thread wake-ups, this script's HTTP "
        "client. HTTP floor = p50 of `GET /-/healthy` on the same connection (no database work). other jobs' CPUs = the machine's busy time during the rounds "
        "less that of the server, both exporters, psql and this script, over the wall time: above ~0.2 the latencies "
        "are inflated by other work on the machine."
    )
    worst = max(row["other_cpus"] for row in rows)
    if worst > 0.25:
        out.append(f"\n**Warning: other jobs kept up to {worst:.2f} of {info['nproc']} CPUs busy during the "
                   "measurements; absolute times are inflated, the interleaved ratios less so. Rerun on a quiet machine.**")
    out.append("")
    out.append(f"SQL medians in psql, ms ({', '.join(ROUND_SQL)} from the rounds; the rest {args.sql_reps} runs each, "
               "afterwards):\n")
    out.append("| statement | " + " | ".join(str(r["plan"]["size"]) for r in rows) + " |")
    out.append("|---|" + "---:|" * len(rows))
    for key in SQL_LABELS:
        out.append(f"| {SQL_LABELS[key]} | " + " | ".join(f"{r['sql'][key]['p50']:.2f}" for r in rows) + " |")
    out.append("")

    soak_row = next((r for r in rows if r.get("soak")), None)
    if soak_row:
        s = soak_row["soak"]
        out.append(
            f"**Soak** ({soak_row['plan']['size']} sessions, {s['scrapes']} back-to-back scrapes in {s['seconds']:.0f}s): "
            f"RssAnon {mib(s['anon_before']):.2f} → {mib(s['anon_after']):.2f} MiB (max {mib(s['anon_max']):.2f}), "
            f"VmRSS {mib(s['rss_before']):.1f} → {mib(s['rss_after']):.1f} MiB (max {mib(s['rss_max']):.1f}); "
            f"scrape p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms; CPU {s['cpu_ms']:.2f} ms/scrape.\n"
        )
    mem_row = soak_row or min(rows, key=lambda r: abs(r["plan"]["size"] - 750))
    bd = mem_row["breakdown"]
    out.append(f"Where the exporter's resident memory is ({mem_row['plan']['size']} sessions, after the scrapes, "
               "/proc/PID/smaps summed per file):\n")
    out.append("| mapping | Rss KiB | of which anonymous KiB |")
    out.append("|---|---:|---:|")
    for name, rss_kb, anon_kb in bd[:10]:
        out.append(f"| {name} | {rss_kb} | {anon_kb} |")
    rest = bd[10:]
    if rest:
        out.append(f"| {len(rest)} others | {sum(r[1] for r in rest)} | {sum(r[2] for r in rest)} |")
    out.append("")

    out.append(targets(rows, soak_row))
    return "\n".join(out) + "\n"


def targets(rows: list[dict], soak_row: dict | None) -> str:
    """The performance goals (a scrape within 1.3x the cheapest SQL, 2x faster than postgres_exporter,
    less memory than it, private memory under 8 MiB and flat), judged at the size nearest 750."""
    row = min(rows, key=lambda r: abs(r["plan"]["size"] - 750))
    o, t = row["ours"], row["theirs"]
    key, cheapest = cheapest_sql(row)
    lines = [f"## Performance targets (at {row['plan']['size']} sessions, {row['verified'][4]} blocked)\n"]

    def line(ok: bool | None, text: str) -> None:
        mark = "n/a" if ok is None else ("MET" if ok else "MISSED")
        lines.append(f"- **{mark}** — {text}")

    ratio = o["p50"] / cheapest
    line(ratio <= 1.3, f"scrape ≤ 1.3× the cheapest SQL: {o['p50']:.2f} ms vs {cheapest:.2f} ms ({key}) = {ratio:.2f}×")
    speedup = t["p50"] / o["p50"]
    line(speedup >= 2, f"≥ 2× faster than postgres_exporter: {t['p50']:.2f} ms vs {o['p50']:.2f} ms = {speedup:.1f}×")
    line(o["status"]["VmRSS"] < t["status"]["VmRSS"],
         f"resident memory below postgres_exporter's: {mib(o['status']['VmRSS']):.1f} MiB vs {mib(t['status']['VmRSS']):.1f} MiB")
    line(o["status"]["RssAnon"] < 8 * 1024, f"private (anonymous) memory < 8 MiB: {mib(o['status']['RssAnon']):.2f} MiB")
    if soak_row:
        s = soak_row["soak"]
        growth = s["anon_after"] - s["anon_before"]
        peak = s["anon_max"] - s["anon_before"]
        line(growth <= 512 and peak <= 1024,
             f"flat over {s['scrapes']} scrapes (growth ≤ 0.5 MiB, peak ≤ 1 MiB above the start): "
             f"{growth / 1024:+.2f} MiB, peak {peak / 1024:+.2f} MiB")
    else:
        line(None, "flat over the soak: no soak run")
    if len(rows) >= 3:
        a, b, c = rows[0], rows[len(rows) // 2], rows[-1]

        def slope(x, y, field):
            return (y["ours"][field] - x["ours"][field]) / (y["plan"]["size"] - x["plan"]["size"]) * 1000

        lat_lo, lat_hi = slope(a, b, "p50"), slope(b, c, "p50")
        cpu_lo, cpu_hi = slope(a, b, "cpu_ms"), slope(b, c, "cpu_ms")
        tolerance = 0.05  # ms per 1000 sessions: timer and scheduling noise
        linear = lat_hi <= 1.5 * max(lat_lo, 0) + tolerance and cpu_hi <= 1.5 * max(cpu_lo, 0) + tolerance
        line(linear,
             f"linear growth (marginal cost per 1000 sessions {a['plan']['size']}→{b['plan']['size']} vs "
             f"{b['plan']['size']}→{c['plan']['size']} within 1.5×): latency {lat_lo:.2f} vs {lat_hi:.2f} ms, "
             f"CPU {cpu_lo:.2f} vs {cpu_hi:.2f} ms")
    else:
        line(None, "linear growth: needs three sizes")
    if row["reported_blocked"] is None or int(row["reported_blocked"]) != int(row["verified"][4]):
        lines.append(f"- **WARNING** — the exporter reported {row['reported_blocked']} blocked sessions, "
                     f"pg_stat_activity shows {row['verified'][4]}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------


def ensure_postgres_exporter() -> str:
    if not os.access(THEIR_BINARY, os.X_OK):
        log("installing prometheus-postgres-exporter (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            subprocess.run(["apt-get", "install", "-y", "prometheus-postgres-exporter"], env=env, timeout=900,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise Failure(f"cannot install prometheus-postgres-exporter: {error}")
        if not os.access(THEIR_BINARY, os.X_OK):
            raise Failure(f"{THEIR_BINARY} is missing; install it: apt-get install -y prometheus-postgres-exporter")
    done = subprocess.run([THEIR_BINARY, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "?"


def build() -> None:
    log("building: " + " ".join(BUILD_COMMAND))
    try:
        done = subprocess.run(BUILD_COMMAND, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        raise Failure("the release build timed out")
    if done.returncode != 0:
        raise Failure("the release build failed:\n" + (done.stdout + done.stderr)[-4000:])


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", help="client session counts (default 100,750,2000; --quick: 60,240)")
    p.add_argument("--scrapes", type=int, help="scrapes per exporter and size (default 200; --quick: 30)")
    p.add_argument("--sql-reps", type=int, help="psql runs per statement and size (default 100; --quick: 15)")
    p.add_argument("--soak", type=int, help="scrapes of the memory soak at the size nearest 750 "
                   "(default 10000; --quick: 500; 0 skips it)")
    p.add_argument("--quick", action="store_true", help="a smoke run: small sizes, few scrapes")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    p.add_argument("--exporter", default=os.path.join(ROOT, ".build", "release", "pg_lock_exporter"),
                   help="the pg_lock_exporter binary to measure (default: the release build)")
    p.add_argument("--output", help="where to write the report (default bench/results.md; --quick: bench/results-quick.md)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, the stopped cluster)")
    p.add_argument("--targets", type=int, help="databases served by one exporter in the scale check "
                   "(default 200; --quick: 20; 0 skips it)")
    p.add_argument("--targets-window", type=float, help="seconds each scale measurement lasts (default 45; --quick: 6)")
    p.add_argument("--targets-interval", type=float, help="seconds between two probes of one target (default 15; --quick: 2)")
    args = p.parse_args(argv)
    if args.quick:
        defaults = dict(sizes="60,240", scrapes=30, sql_reps=15, soak=500, output="bench/results-quick.md",
                        targets=20, targets_window=6.0, targets_interval=2.0)
    else:
        defaults = dict(sizes="100,750,2000", scrapes=200, sql_reps=100, soak=10000, output="bench/results.md",
                        targets=200, targets_window=45.0, targets_interval=15.0)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        p.error("--sizes: comma-separated integers")
    if not args.sizes or args.scrapes < 1 or args.sql_reps < 1 or args.soak < 0:
        p.error("sizes, --scrapes and --sql-reps must be positive, --soak zero or more")
    for size in args.sizes:
        if size < 30 or size > 10000:
            p.error("--sizes: between 30 and 10000 sessions")
    if not os.path.isabs(args.output):
        args.output = os.path.join(ROOT, args.output)
    return args


def on_signal(number, _frame):
    log(f"stopped by signal {number}: cleaning up")
    raise SystemExit(128 + number)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max(args.sizes) + 512
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
    info = machine()
    workdir = tempfile.mkdtemp(prefix="pg_lock_bench.")
    os.chmod(workdir, 0o755)  # the server runs as another user when we are root (pg-sandbox)
    pg = Sandbox(os.path.join(workdir, "pg"), max(args.sizes) + 300)
    try:
        if not args.no_build:
            build()
        if not os.access(args.exporter, os.X_OK):
            raise Failure(f"{args.exporter} is missing: build it, or drop --no-build")
        # A private copy: a concurrent build may relink the original while we measure.
        ours_binary = os.path.join(workdir, "pg_lock_exporter")
        shutil.copy2(args.exporter, ours_binary)
        global EXPORTER_BINARY
        EXPORTER_BINARY = ours_binary
        built = datetime.datetime.fromtimestamp(os.stat(ours_binary).st_mtime, datetime.timezone.utc)
        info["binary"] = f"{os.path.relpath(args.exporter, ROOT)}, {os.stat(ours_binary).st_size / 2**20:.0f} MiB, built {built:%H:%M} UTC"
        their_version = ensure_postgres_exporter()

        log(f"starting PostgreSQL in {pg.dir} (max_connections {max(args.sizes) + 300})")
        pg.start()
        pg.psql(
            "CREATE ROLE app LOGIN; CREATE ROLE reporting LOGIN;\n"
            "CREATE ROLE monitor LOGIN IN ROLE pg_monitor; CREATE ROLE pgexp LOGIN IN ROLE pg_monitor;\n"
            "CREATE DATABASE app OWNER app;",
            db="postgres",
        )
        pg.psql(
            "CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric);\n"
            "INSERT INTO orders SELECT g, g % 97, g * 1.5 FROM generate_series(1, 10000) g;\n"
            "GRANT SELECT ON orders TO reporting;",
            user="app",
        )
        if pg.has_statements:
            pg.psql("CREATE EXTENSION pg_stat_statements")
        log(f"PostgreSQL {pg.version} on {pg.dir}, port {pg.port}; pg_stat_statements "
            f"{'on' if pg.has_statements else 'not available'}")

        soak_size = min(args.sizes, key=lambda s: abs(s - 750)) if args.soak else None
        rows = []
        for size in args.sizes:
            rows.append(run_size(args, pg, workdir, ours_binary, load_plan(size), args.soak if size == soak_size else 0))

        scale = run_scale(pg, workdir, ours_binary, args.targets, args.targets_window, args.targets_interval) if args.targets else []

        mirror_ok = None
        if pg.has_statements:
            statements = [words(st) for st in exporter_statements(pg.version_num)]
            ran = set(rows[-1]["ours"]["statements"])
            # Every scrape runs the first five; the settings statement only on connect and then
            # once a minute, so it may or may not fall inside the measured rounds.
            mirror_ok = set(statements[:5]) <= ran <= set(statements)
        text = report(args, pg, rows, info, their_version, mirror_ok) + scale_report(scale)
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text)
        print(text)
        print(f"Written to {os.path.relpath(args.output, os.getcwd())}")
        return 0
    except Failure as error:
        print(f"bench: {error}", file=sys.stderr)
        print(f"bench: logs in {workdir}", file=sys.stderr)
        args.keep = True
        return 1
    except Exception:
        traceback.print_exc()
        print(f"bench: internal error; logs in {workdir}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        pg.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work directory kept: {workdir}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
