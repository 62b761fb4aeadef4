#!/usr/bin/env python3
"""The performance benchmark of pg_lock_exporter against the project's performance goals (judged in targets() below).

    python3 scripts/bench.py                 # full run: both load shapes at 100, 750 and 2000 sessions + soak
    python3 scripts/bench.py --quick         # smoke run, a couple of minutes after the build
    python3 scripts/bench.py --help

For each load shape (scripts/workload.py: few long chains, many short chains over many tables) and
size it starts real client sessions on a throwaway PostgreSQL (scripts/pg-sandbox), checks them in
pg_stat_activity, then measures in interleaved rounds: the exporter's scrape over HTTP, Debian's
prometheus-postgres-exporter on the same server, and the cheapest SQL that yields the same
information timed in one psql session. Around the rounds it reads each exporter's server backend
(/proc/PID/stat: server CPU per scrape), both exporters' memory (RSS, PSS, private), and then the
server CPU per second of the background sampler (`serve --sample.interval 1s`) and of `migrate`'s
watchdog poll. A soak of many scrapes checks that the exporter's private memory stays flat. It
prints a Markdown report with the performance targets marked met or missed and writes it to
bench/results.md.

Python 3.11 standard library only, plus the system's psql and PostgreSQL server. Talks only to
127.0.0.1 and the sandbox's Unix socket. Exits non-zero only when something could not be started
or measured, never because a target was missed.
"""

from __future__ import annotations

import argparse
import contextlib
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workload  # noqa: E402  (scripts/workload.py: the client sessions)
from workload import SHAPE_LABELS, SHAPES, VERIFY_SQL, Failure, deadline_loop  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANDBOX = os.path.join(ROOT, "scripts", "pg-sandbox")
THEIR_BINARY = "/usr/bin/prometheus-postgres-exporter"
# The release build users get (RELEASE_FLAGS in the Makefile, the link order in Package.swift).
BUILD_COMMAND = ["make", "--no-print-directory", "release"]
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
# The roles of the measured clients (each its own, so its server backend is found by usename).
OURS_ROLE, THEIRS_ROLE, SAMPLER_ROLE, GUARD_ROLE = "monitor", "pgexp", "sampler", "guard"
# The environment of the processes measured: nothing of ours leaks into them.
CHILD_ENV = dict(PATH=os.environ.get("PATH", "/usr/bin:/bin"), HOME=os.environ.get("HOME", "/"))
STARTED = time.monotonic()


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


# --------------------------------------------------------------------------------------------
# /proc readings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon (private), Threads from /proc/PID/status and Pss from smaps_rollup (kB)."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "Threads"):
                values[key] = int(rest.split()[0])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                values["Pss"] = int(line.split()[1])
    return values


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)


def backend_cpu_seconds(pid: int) -> float:
    """CPU time of a single-threaded server backend: /proc/PID/schedstat's run time, in ns (the
    utime+stime of /proc/PID/stat count in 10 ms ticks, too coarse for a sampler's second);
    utime+stime where schedstat is missing; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return proc_cpu_seconds(pid)


def mib(kb: float) -> float:
    return kb / 1024


class Backends:
    """The server CPU of one role's backends (the server processes that serve a client's
    connections, found by usename in pg_stat_activity), summed over an interval. A backend
    that starts inside the interval counts from zero."""

    def __init__(self, pg: "Sandbox", role: str):
        self.pg = pg
        self.role = role
        self.start = {pid: backend_cpu_seconds(pid) for pid in self.pids()}

    def pids(self) -> list[int]:
        rows = self.pg.psql(f"SELECT pid FROM pg_stat_activity WHERE usename = '{self.role}'", db="postgres")
        return [int(r[0]) for r in rows]

    def seconds(self) -> tuple[float, int]:
        """CPU seconds since the start, and how many backends there are now."""
        now = self.pids()
        return sum(backend_cpu_seconds(pid) - self.start.get(pid, 0.0) for pid in now), len(now)


def wait_for_backend(pg: "Sandbox", role: str, timeout: float = 15) -> None:
    for _ in deadline_loop(timeout, 0.1):
        if pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'", db="postgres")[0][0] != "0":
            return
    raise Failure(f"no server backend of role {role} after {timeout:.0f}s")


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

    def restart(self) -> None:
        """A fresh server process, same cluster and settings, so that no case inherits the
        shared memory (lock tables, proc array, caches) of the one before it. It did not remove
        the short shape's run-to-run variation (README, Performance)."""
        self._sandbox("stop", self.dir, timeout=120)
        self._sandbox("start", self.dir, str(self.port))

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


def prepare(pg: Sandbox) -> None:
    """The roles and the database the workload (scripts/workload.py) and the measured clients use."""
    pg.psql("CREATE ROLE app LOGIN; CREATE ROLE reporting LOGIN;\n"
            + "".join(f"CREATE ROLE {r} LOGIN IN ROLE pg_monitor;\n" for r in (OURS_ROLE, THEIRS_ROLE, SAMPLER_ROLE, GUARD_ROLE))
            + "CREATE DATABASE app OWNER app;", db="postgres")
    pg.psql("CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric);\n"
            "INSERT INTO orders SELECT g, g % 97, g * 1.5 FROM generate_series(1, 10000) g;\n"
            "GRANT SELECT ON orders TO reporting;", user="app")
    if pg.has_statements:
        pg.psql("CREATE EXTENSION pg_stat_statements")


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
# SQL: the exporter's statements (printed by the binary), the cheapest SQL yielding the same
# information, and the pieces timed on their own.


# The binary whose SQL is timed (set in main()): it prints its own statements, so the timed
# SQL can never drift from what a scrape sends.
EXPORTER_BINARY = ""


def exporter_statements(version: int) -> list[str]:
    """The statements of one collection as `serve` sends them, printed by the binary itself
    (`serve --print-sql VERSION`): the statement timeout first (its value as $1), then the snapshot
    statements; the pg_settings one is sent on connect and then once a minute, the rest at
    every scrape."""
    out = subprocess.run([EXPORTER_BINARY, "serve", "--print-sql", str(version)], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise Failure(f"{EXPORTER_BINARY} serve --print-sql failed: {out.stderr.strip()[:200]}")
    statements = [part.strip() for part in out.stdout.split("\n--\n")]
    if len(statements) < 4 or "statement_timeout" not in statements[0]:
        raise Failure(f"unexpected --print-sql output ({len(statements)} statements)")
    return statements


def is_settings(statement: str) -> bool:
    """The pg_settings statement: read once a minute, not per scrape."""
    return "FROM pg_settings" in statement


def statement_name(statement: str) -> str:
    """A short name for a statement of the exporter, by the catalog it reads (first match wins:
    the locks statement also reads pg_stat_activity and pg_prepared_xacts, the settings ones name
    statement_timeout)."""
    for needle, name in (("set_config('statement_timeout'", "timeout"), ("FROM pg_db_role_setting", "role settings"),
                         ("FROM pg_settings", "settings"), ("FROM pg_locks", "locks"),
                         ("FROM pg_prepared_xacts", "prepared xacts"), ("pg_stat_database", "databases"),
                         ("FROM pg_stat_activity", "sessions")):
        if needle in statement:
            return name
    return statement[:30]


def batch(statements: list[str]) -> str:
    """Statements joined with psql's \\; so they go to the server as one query, one round trip."""
    return " \\;\n".join(statements)


# THE CHEAPEST SQL YIELDING THE SAME INFORMATION: the floor a scrape is compared with.
#
# Every column of the exporter's statements is read by a metric (the incident tests check each
# metric's exact value), so any SQL that yields the same information returns at least these
# rows. The floor is therefore these very statements, with the costs a client can avoid taken
# away: prepared once (no parse, no plan per run), sent in one round trip, the rows discarded
# unread by psql (no decoding, no graph, no exposition, no HTTP). What is left is the server
# reading pg_stat_activity and pg_locks and sending the rows: a scrape cannot be cheaper than
# that unless the statements themselves change, and then this floor moves with them, because
# it is built from the statements the binary prints. The text batch is timed as well (what a
# client without prepared statements pays); the floor is the cheaper of the two in each run.
CHEAPEST_CANDIDATES = ("text", "prepared")


def cheapest_candidates(statements: list[str]) -> tuple[list[str], dict[str, str]]:
    """(statements to run once in the timing session, {candidate: SQL timed in the rounds})."""
    per_scrape = [st for st in statements if not is_settings(st)]
    prepare = [f"PREPARE bench_{i}{'(text)' if '$1' in st else ''} AS {st}" for i, st in enumerate(per_scrape)]
    execute = [f"EXECUTE bench_{i}{'(' + repr('5000') + ')' if '$1' in st else ''}" for i, st in enumerate(per_scrape)]
    return prepare, {
        "text": batch([st.replace("$1", "'5000'") for st in per_scrape]),
        "prepared": batch(execute),
    }


def cheapest(row: dict) -> tuple[str, float]:
    key = min(CHEAPEST_CANDIDATES, key=lambda k: row["sql"][k]["p50"])
    return key, row["sql"][key]["p50"]


def piece_sql(statements: list[str]) -> dict[str, str]:
    """Each of the exporter's statements on its own, and the bare reads they build on (informational)."""
    pieces = {statement_name(st): st.replace("$1", "'5000'") for st in statements if statement_name(st) != "timeout"}
    pieces["count(*) FROM pg_stat_get_activity(NULL)"] = "SELECT count(*) FROM pg_stat_get_activity(NULL)"
    pieces["count(*) FROM pg_stat_activity"] = "SELECT count(*) FROM pg_stat_activity"
    pieces["count(*) FROM pg_locks"] = "SELECT count(*) FROM pg_locks"
    return pieces


def words(sql: str) -> frozenset[str]:
    """The identifiers and keywords of a statement, literals and $n parameters left out: equal for
    a statement and pg_stat_statements' normalized text of it."""
    text = re.sub(r"'(?:[^']|'')*'", " ", sql.lower())
    found = set(re.findall(r"[a-z_][a-z_0-9]*", re.sub(r"\$\d+", " ", text)))
    return frozenset(found - NORMALIZED_WORDS)


# Constants that pg_stat_statements replaces with $n: extract(epoch ...), NULL::text, true/false.
NORMALIZED_WORDS = frozenset({"epoch", "null", "true", "false"})


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


def start_serve(name: str, binary: str, args: list[str], log_path: str) -> Exporter:
    """`binary serve ARGS` listening on a free loopback port, once it accepts connections."""
    port = free_port()
    exporter = Exporter(name, [binary, "serve", *args, "--web.listen-address", f"127.0.0.1:{port}"], CHILD_ENV, port, log_path)
    try:
        exporter.wait_ready()
    except BaseException:
        exporter.stop()
        raise
    return exporter


@contextlib.contextmanager
def loaded(pg: Sandbox, plan: dict, workdir: str, tag: str):
    """The client sessions of `plan` open on a freshly restarted server (so that no case inherits
    the shared memory of the one before it); yields VERIFY_SQL's row and the setup time."""
    load = workload.Load(pg.conninfo, lambda sql, user="postgres": pg.psql(sql, user=user),
                         os.path.join(workdir, f"load-{tag}.log"))
    try:
        pg.restart()
        started = time.monotonic()
        log(f"{tag}: opening {plan['size']} client sessions")
        workload.open_load(load, plan)
        yield pg.psql(VERIFY_SQL)[0], time.monotonic() - started
    finally:
        log(f"{tag}: closing the load")
        load.close()


def metric_value(body: bytes, name_and_labels: str) -> float | None:
    match = re.search(rb"^" + re.escape(name_and_labels.encode()) + rb" (\S+)$", body, re.M)
    return float(match.group(1)) if match else None


def server_time(pg: Sandbox, role: str) -> tuple[float, float, int, list[tuple[frozenset, int, float]]]:
    """Total execution and planning time (ms) and calls of `role`'s statements since the last
    reset, and per statement: its word set, calls and total execution time (ms)."""
    rows = pg.psql(
        "SELECT translate(query, E'\\n\\r\\t', '   '), calls, total_exec_time, total_plan_time "
        f"FROM pg_stat_statements WHERE userid = '{role}'::regrole"
    )
    per_statement = [(words(q), int(c), float(e)) for q, c, e, _ in rows]
    return (sum(float(r[2]) for r in rows), sum(float(r[3]) for r in rows), sum(int(r[1]) for r in rows),
            per_statement)


def reset_statements(pg: Sandbox) -> None:
    if pg.has_statements:
        pg.psql("SELECT pg_stat_statements_reset()")


def measure(pg: Sandbox, ours: Exporter, theirs: Exporter, timer: PsqlTimer, rounds: int) -> dict:
    """Interleaved rounds, so that noise from other jobs on a shared machine hits every contender
    alike: each round scrapes both exporters once and runs each cheapest-SQL candidate once in the
    psql session, in a rotating order. Around the rounds: each exporter's own CPU and that of its
    server backends."""
    prepare, candidates = cheapest_candidates(exporter_statements(pg.version_num))
    for statement in prepare:
        timer.time(statement)
    for _ in range(WARMUP_SCRAPES):
        ours.scrape()
        theirs.scrape()
    for _ in range(WARMUP_SQL):
        for sql in candidates.values():
            timer.time(sql)
    reset_statements(pg)
    steps = ["ours", "theirs", *CHEAPEST_CANDIDATES]
    samples: dict[str, list[float]] = {step: [] for step in steps}
    bodies = {}
    cpu = {"ours": proc_cpu_seconds(ours.pid), "theirs": proc_cpu_seconds(theirs.pid)}
    backends = {"ours": Backends(pg, OURS_ROLE), "theirs": Backends(pg, THEIRS_ROLE)}
    watch = Interference(pg, [ours.pid, theirs.pid, timer.proc.pid])
    for i in range(rounds):
        shift = i % len(steps)
        for step in steps[shift:] + steps[:shift]:
            if step in candidates:
                samples[step].append(timer.time(candidates[step]))
            else:
                elapsed, bodies[step] = (ours if step == "ours" else theirs).scrape()
                samples[step].append(elapsed)
    result = {"sql": {k: dict(p50=statistics.median(samples[k]), p99=percentile(samples[k], 99)) for k in CHEAPEST_CANDIDATES}}
    for key, exporter, role in (("ours", ours, OURS_ROLE), ("theirs", theirs, THEIRS_ROLE)):
        server_cpu, connections = backends[key].seconds()
        result[key] = dict(
            p50=statistics.median(samples[key]), p99=percentile(samples[key], 99), mean=statistics.fmean(samples[key]),
            cpu_ms=(proc_cpu_seconds(exporter.pid) - cpu[key]) * 1000 / rounds, status=proc_status(exporter.pid),
            server_cpu_ms=server_cpu * 1000 / rounds, connections=connections, body=bodies[key],
            server_ms=None, plan_ms=None, statements=[])
        if pg.has_statements:
            execute, plan, calls, statements = server_time(pg, role)
            result[key].update(server_ms=execute / rounds, plan_ms=plan / rounds, server_calls=calls / rounds,
                               statements=statements)
    result["other_cpus"] = watch.others()
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


def sampling_cost(pg: Sandbox, workdir: str, binary: str, window: float, tag: str) -> tuple[float, float]:
    """Server CPU and the exporter's own CPU per second (ms/s) of the background sampler: an
    exporter with `--sample.interval 1s`, scraped once and then left alone for `window` seconds
    while its backend's CPU and its own are read. While something is blocked each sample also
    reads the episode's detail (sessions with their statements, locks, lock details)."""
    exporter = start_serve("pg_lock_exporter (sampler)", binary,
                           ["--dsn", pg.conninfo("app", SAMPLER_ROLE), "--sample.interval", "1s"],
                           os.path.join(workdir, f"sampler-{tag}.log"))
    try:
        exporter.scrape()
        wait_for_backend(pg, SAMPLER_ROLE)
        time.sleep(1.5)  # the first samples
        backends = Backends(pg, SAMPLER_ROLE)
        own_before = proc_cpu_seconds(exporter.pid)
        started = time.monotonic()
        time.sleep(window)
        seconds, _ = backends.seconds()
        wall = time.monotonic() - started
        return seconds * 1000 / wall, (proc_cpu_seconds(exporter.pid) - own_before) * 1000 / wall
    finally:
        exporter.stop()


def watchdog_cost(pg: Sandbox, workdir: str, binary: str, window: float, tag: str) -> float:
    """Server CPU per second (ms/s) of `migrate`'s guard polling at its default --poll-interval
    200ms, around a migration command that only sleeps (`migrate -- sleep N`): the guard's
    backend CPU over `window` seconds."""
    with open(os.path.join(workdir, f"migrate-{tag}.log"), "ab") as out:
        proc = subprocess.Popen(
            [binary, "migrate", "--dsn", pg.conninfo("app", GUARD_ROLE), "--poll-interval", "200ms", "--",
             "sleep", f"{window + 4:.0f}"], env=CHILD_ENV, stdout=out, stderr=out, start_new_session=True)
        try:
            wait_for_backend(pg, GUARD_ROLE)
            time.sleep(1)
            backends = Backends(pg, GUARD_ROLE)
            started = time.monotonic()
            time.sleep(window)
            seconds, alive = backends.seconds()
            if alive == 0 or proc.poll() is not None:
                raise Failure(f"migrate exited before the watchdog was measured (see {out.name})")
            return seconds * 1000 / (time.monotonic() - started)
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# One shape and size


def run_case(args, pg: Sandbox, workdir: str, ours_binary: str, plan: dict, soak: int) -> dict:
    shape, size = plan["shape"], plan["size"]
    tag = f"{shape}-{size}"
    row: dict = dict(plan=plan)
    log(f"{tag}: {SHAPE_LABELS[shape]}: {plan['idle']} idle, {plan['idle_tx'] + plan['chains']} idle in transaction "
        f"incl. {plan['chains']} roots, {plan['active']} active, {plan['blocked']} blocked in {plan['chains']} chains")
    ours = theirs = timer = None
    with loaded(pg, plan, workdir, tag) as (verified, setup):
        try:
            row["verified"], row["setup_s"] = verified, setup
            log(f"{tag}: load verified in {setup:.1f}s: {verified[0]} client sessions, {verified[4]} blocked")
            ours = start_serve("pg_lock_exporter", ours_binary, ["--dsn", pg.conninfo("app", OURS_ROLE)],
                               os.path.join(workdir, f"pg_lock_exporter-{tag}.log"))
            port = free_port()
            theirs = Exporter("postgres_exporter", [THEIR_BINARY, f"--web.listen-address=127.0.0.1:{port}"],
                              dict(CHILD_ENV, DATA_SOURCE_NAME=pg.conninfo("app", THEIRS_ROLE) + " sslmode=disable"),
                              port, os.path.join(workdir, f"postgres_exporter-{tag}.log"))
            theirs.wait_ready()
            timer = PsqlTimer(pg)

            log(f"{tag}: {args.scrapes} rounds of: a scrape of each exporter, {', '.join(CHEAPEST_CANDIDATES)} SQL in psql")
            row.update(measure(pg, ours, theirs, timer, args.scrapes))
            row["reported_blocked"] = metric_value(row["ours"]["body"], 'pg_blocked_sessions{datname="app"}')
            up = (metric_value(row["ours"]["body"], "pg_up"), metric_value(row["theirs"]["body"], "pg_up"))
            if up != (1, 1):
                raise Failure(f"{tag}: pg_up is {up[0]} (ours) and {up[1]} (postgres_exporter)")
            o, t = row["ours"], row["theirs"]
            log(f"{tag}: p50 ours {o['p50']:.2f} ms, theirs {t['p50']:.2f} ms, cheapest {cheapest(row)[1]:.2f} ms; "
                f"server CPU/scrape ours {o['server_cpu_ms']:.2f} ms, theirs {t['server_cpu_ms']:.2f} ms; "
                f"other jobs kept {row['other_cpus']:.2f} CPUs busy")
            theirs.stop()
            # The HTTP round trip alone (this script's client included): the exporter's health check.
            row["http_floor"] = statistics.median(ours.scrape("/-/healthy")[0] for _ in range(50))
            if soak:
                row["soak"] = run_soak(ours, soak)
            ours.stop()

            row["sampler_ms_per_s"] = sampling_cost(pg, workdir, ours_binary, args.cost_window, tag)[0]
            row["watchdog_ms_per_s"] = watchdog_cost(pg, workdir, ours_binary, args.cost_window, tag)
            log(f"{tag}: server CPU of the sampler {row['sampler_ms_per_s']:.2f} ms/s, of the watchdog "
                f"{row['watchdog_ms_per_s']:.2f} ms/s")

            # The pieces, one after the other (informational).
            for key, sql in piece_sql(exporter_statements(pg.version_num)).items():
                times = timer.repeat(sql, args.sql_reps)
                row["sql"][key] = dict(p50=statistics.median(times), p99=percentile(times, 99))
            if pg.psql(VERIFY_SQL)[0] != verified:
                log(f"warning: {tag}: the load changed during the measurements")
            return row
        finally:
            for exporter in (ours, theirs):
                if exporter is not None:
                    exporter.stop()
            if timer is not None:
                timer.close()


def run_sampling(pg: Sandbox, workdir: str, binary: str, size: int, window: float) -> dict:
    """Sampling's cost at `size` client sessions: on a quiet server (every session idle: each
    sample is the cheap aggregate alone) and during blocking (the long shape's chains: each
    sample also reads what the episodes need)."""
    row: dict = dict(size=size)
    quiet = dict(shape="quiet", size=size, chains=0, blocked=0, readers=0, idle_tx=0, active=0, idle=size)
    for label, plan in (("quiet", quiet), ("blocking", workload.plan("long", size))):
        with loaded(pg, plan, workdir, f"sampling-{label}-{size}") as (verified, _):
            server, own = sampling_cost(pg, workdir, binary, window, f"{label}-{size}")
            row[label] = dict(server=server, own=own, blocked=int(verified[4]))
            log(f"sampling {label} {size}: server CPU {server:.2f} ms/s, exporter CPU {own:.2f} ms/s ({verified[4]} blocked)")
    return row


def run_pages(pg: Sandbox, workdir: str, binary: str, size: int, rounds: int) -> dict:
    """`/tree` at `size` sessions in the long shape (a third blocked in chains): in interleaved
    rounds, a scrape of /metrics and a load of /tree, each on its own; the page's own
    `Server-Timing` splits its time into the collection (`collect`, what a scrape that joins it
    shares) and the drawing (`render`); and the page's weight."""
    with loaded(pg, workload.plan("long", size), workdir, f"pages-{size}") as (verified, _):
        ours = start_serve("pg_lock_exporter", binary, ["--dsn", pg.conninfo("app", OURS_ROLE), "--sample.interval", "0"],
                           os.path.join(workdir, f"pages-{size}.log"))
        try:
            scrapes, pages, collect, render, sizes = [], [], [], [], []
            for index in range(rounds + WARMUP_SCRAPES):
                scrape_ms, _ = ours.scrape()
                conn = http.client.HTTPConnection("127.0.0.1", ours.port, timeout=30)
                started = time.perf_counter()
                conn.request("GET", "/tree?refresh=0")
                response = conn.getresponse()
                body = response.read()
                page_ms = (time.perf_counter() - started) * 1000
                timing = dict(re.findall(r"(\w+);dur=([0-9.]+)", response.getheader("Server-Timing") or ""))
                conn.close()
                if response.status != 200 or b'class="tree"' not in body:
                    raise Failure(f"pages {size}: /tree answered {response.status} without a tree")
                if index >= WARMUP_SCRAPES:
                    scrapes.append(scrape_ms)
                    pages.append(page_ms)
                    collect.append(float(timing["collect"]))
                    render.append(float(timing["render"]))
                    sizes.append(len(body))
        finally:
            ours.stop()
        row = dict(size=size, blocked=int(verified[4]), scrape=statistics.median(scrapes), page=statistics.median(pages),
                   collect=statistics.median(collect), render=statistics.median(render),
                   render_p95=percentile(render, 95), bytes=statistics.median(sizes),
                   gzip_bytes=len(gzip.compress(body)), rounds=rounds)
        log(f"pages {size}: scrape {row['scrape']:.2f} ms, /tree {row['page']:.2f} ms (collect {row['collect']:.2f}, "
            f"render {row['render']:.2f}), {row['bytes'] / 1024:.0f} KiB")
        return row


def pages_report(rows: list[dict]) -> str:
    if not rows:
        return ""
    out = ["", "## `/tree`: a page of blocking trees, beside the scrape that reads the same server", "",
           "The long shape (a third of the sessions blocked in chains). Medians over the rounds, each round a scrape of "
           "`/metrics` then a load of `/tree`, one at a time. `collect` is the page's collection (it also reads the "
           "statements and the locks on contended objects, as `check` does; a scrape that arrives meanwhile shares it), "
           "`render` the drawing: the blocking graph, the normalized statements of the sessions drawn, the HTML "
           "(`Server-Timing`). Weight: the HTML, then gzipped (the stylesheet is a second, cached request).", "",
           "| sessions | blocked | scrape ms | /tree ms | collect ms | render ms (p95) | HTML KiB | gzipped KiB |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['size']} | {r['blocked']} | {r['scrape']:.2f} | {r['page']:.2f} | {r['collect']:.2f} | "
                   f"{r['render']:.2f} ({r['render_p95']:.2f}) | {r['bytes'] / 1024:.0f} | {r['gzip_bytes'] / 1024:.0f} |")
    out.append("")
    return "\n".join(out)


def sampling_report(rows: list[dict], window: float) -> str:
    if not rows:
        return ""
    out = ["", "## Sampling's cost (`--sample.interval 1s`, the default)", "",
           f"One exporter sampling the server every second and never scraped, for {window:g} s: the CPU of its backend on "
           "the server and its own, per second. Quiet: every session idle, so each sample is the cheap aggregate alone. "
           "Blocking: the long shape (a third of the sessions blocked in chains), so each sample also reads the episode "
           "detail (every session with its statement, the locks, the lock details, the settings).", "",
           "| sessions | quiet: server ms/s | quiet: exporter ms/s | blocking: server ms/s | blocking: exporter ms/s | blocked |",
           "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        q, b = r["quiet"], r["blocking"]
        out.append(f"| {r['size']} | {q['server']:.2f} | {q['own']:.2f} | {b['server']:.2f} | {b['own']:.2f} | {b['blocked']} |")
    out.append("")
    return "\n".join(out)


def run_scale(pg: Sandbox, workdir: str, binary: str, targets: int, window: float, interval: float) -> list[dict]:
    """One exporter serving `targets` databases through /probe (--config.file), each probed every
    `interval` seconds as Prometheus would, for `window` seconds: without and with the background
    sampler (--sample.interval 1s). Reports CPU, memory and the connections it holds."""
    # At most 200 databases (creating a thousand takes minutes); more targets name them again,
    # each target still with a connection of its own.
    databases = [f"scale_{i:03d}" for i in range(min(targets, 200))]
    names = [f"t{i:04d}" for i in range(targets)]
    log(f"scale: {targets} targets on {len(databases)} databases")
    existing = {row[0] for row in pg.psql("SELECT datname FROM pg_database", db="postgres")}
    missing = [n for n in databases if n not in existing]
    for start in range(0, len(missing), 50):
        # psql sends each statement on its own: CREATE DATABASE cannot run in a transaction block.
        pg.psql("".join(f"CREATE DATABASE {n};\n" for n in missing[start:start + 50]), db="postgres", timeout=600)
    config = os.path.join(workdir, "targets.yml")
    with open(config, "w") as f:
        f.write("targets:\n")
        for i, n in enumerate(names):
            f.write(f"  {n}:\n    dsn: \"{pg.conninfo(databases[i % len(databases)], 'monitor')}\"\n")
    results = []
    for label, extra in (("probes only", ["--sample.interval", "0"]), ("probes + sampler 1s", ["--sample.interval", "1s"])):
        exporter = start_serve("pg_lock_exporter (scale)", binary, ["--config.file", config, *extra],
                               os.path.join(workdir, "scale.log"))
        try:
            if extra[-1] == "0":
                for n in names:  # every target connected and warm before measuring
                    exporter.scrape(f"/probe?target={n}")
            else:
                time.sleep(min(30, 5 + targets / 100))  # the sampler connects every target itself
            watched = names[::max(1, targets // 20)]  # samples achieved, read from 20 targets

            def samples_taken() -> float:
                return sum(metric_value(exporter.scrape(f"/probe?target={n}")[1], "pg_lock_exporter_samples_total") or 0
                           for n in watched)
            samples_before = samples_taken() if extra[-1] != "0" else 0
            cpu_before = proc_cpu_seconds(exporter.pid)
            started = time.monotonic()
            latencies = []
            probes = down = 0
            step = interval / targets
            while time.monotonic() - started < window:
                due = started + probes * step
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                elapsed, body = exporter.scrape(f"/probe?target={names[probes % targets]}")
                if metric_value(body, "pg_up") != 1:
                    down += 1
                latencies.append(elapsed)
                probes += 1
            wall = time.monotonic() - started
            cpu = proc_cpu_seconds(exporter.pid) - cpu_before
            rate = (samples_taken() - samples_before) / len(watched) / wall if extra[-1] != "0" else None
            held = int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_lock_exporter'", db="postgres")[0][0])
            status = proc_status(exporter.pid)
            results.append(dict(
                label=label, targets=targets, interval=interval, window=wall, probes=probes,
                cpu_percent=100 * cpu / wall, cpu_ms_per_probe=1000 * cpu / max(1, probes),
                p50=percentile(latencies, 50), p99=percentile(latencies, 99), connections=held,
                rss=mib(status["VmRSS"]), anon=mib(status["RssAnon"]), threads=status["Threads"], down=down, rate=rate,
                busy=machine_busy_seconds()))
            log(f"scale ({label}): {probes} probes in {wall:.0f}s ({down} pg_up 0), CPU {100 * cpu / wall:.1f}%, "
                f"{held} connections, {status['Threads']} threads, RSS {mib(status['VmRSS']):.1f} MiB"
                + (f", {rate:.2f} samples per target per second" if rate is not None else ""))
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
    def first(path, prefix):
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(prefix)), "?")

    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=10).stdout.strip()
    dirty = git("status", "--porcelain", "--untracked-files=no", "Sources")
    return dict(nproc=len(os.sched_getaffinity(0)), model=first("/proc/cpuinfo", "model name"),
                memory_gib=int(first("/proc/meminfo", "MemTotal").split()[0]) / 1024 / 1024, kernel=os.uname().release,
                commit=git("rev-parse", "--short", "HEAD") + (" (Sources/ modified)" if dirty else ""), argv=sys.argv[1:])


def scale_report(scale: list[dict]) -> str:
    if not scale:
        return ""
    first = scale[0]
    out = ["", f"## Scale: one exporter, {first['targets']} targets", "",
           f"`--config.file` with {first['targets']} targets (on {min(first['targets'], 200)} databases) on the sandbox server, each probed at `/probe?target=NAME` "
           f"every {first['interval']:g} s (Prometheus's schedule, spread evenly), for {first['window']:.0f} s; then the same "
           "with the background sampler on (`--sample.interval 1s`, one aggregate per target per second).", "",
           "| mode | probes (pg_up 0) | CPU % of one core | CPU ms/probe | probe p50 / p99 ms | connections held | RSS MiB | RSS KiB per target | threads | samples per target per second |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in scale:
        rate = "" if r["rate"] is None else f"{r['rate']:.2f}"
        out.append(f"| {r['label']} | {r['probes']} ({r['down']}) | {r['cpu_percent']:.1f} | {r['cpu_ms_per_probe']:.2f} | "
                   f"{r['p50']:.2f} / {r['p99']:.2f} | {r['connections']} | {r['rss']:.1f} | {1024 * r['rss'] / r['targets']:.0f} | "
                   f"{r['threads']} | {rate} |")
    out.append("")
    return "\n".join(out)


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def case_label(row: dict) -> str:
    return f"{row['plan']['shape']} {row['plan']['size']}"


def summary_table(rows: list[dict]) -> list[str]:
    """The two-shape table (README's Performance section quotes it)."""
    out = [
        "| shape | sessions | blocked | scrape p50 / p99 ms ours | postgres_exporter | faster | cheapest SQL ms | "
        "ours / cheapest | server CPU ms/scrape ours / theirs | ratio | RSS MiB ours / theirs | PSS MiB | private MiB | "
        "sampler server CPU ms/s | watchdog server CPU ms/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        o, t = row["ours"], row["theirs"]
        _, floor = cheapest(row)
        blocked = row["verified"][4]
        if row["reported_blocked"] is not None and int(row["reported_blocked"]) != int(blocked):
            blocked += f" (exporter said {int(row['reported_blocked'])})"
        os_, ts = o["status"], t["status"]
        out.append(
            f"| {row['plan']['shape']} | {row['plan']['size']} | {blocked} | {o['p50']:.2f} / {o['p99']:.2f} "
            f"| {t['p50']:.2f} / {t['p99']:.2f} | {t['p50'] / o['p50']:.1f}× | {floor:.2f} | {o['p50'] / floor:.2f}× "
            f"| {o['server_cpu_ms']:.2f} / {t['server_cpu_ms']:.2f} | {o['server_cpu_ms'] / max(t['server_cpu_ms'], 1e-9):.2f}× "
            f"| {mib(os_['VmRSS']):.1f} / {mib(ts['VmRSS']):.1f} | {mib(os_['Pss']):.1f} / {mib(ts['Pss']):.1f} "
            f"| {mib(os_['RssAnon']):.1f} / {mib(ts['RssAnon']):.1f} | {row['sampler_ms_per_s']:.2f} | {row['watchdog_ms_per_s']:.2f} |"
        )
    return out


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
        "Two load shapes (scripts/workload.py), a third of the sessions blocked in each: **long** = few long chains "
        "(size/150 idle-in-transaction roots, each with a queued `ALTER TABLE` and dozens of readers); **short** = many "
        "short chains over many tables (size/15 roots, each on its own table with an `ALTER TABLE` and 4 readers; at "
        "750: 300 idle, 100 idle in transaction holding a lock nobody wants, 50 in `pg_sleep`, 50 chains). "
        f"Per shape and size, {args.scrapes} interleaved rounds after {WARMUP_SCRAPES} warm-up scrapes; each round, in a "
        "rotating order: one scrape of pg_lock_exporter, one of postgres_exporter, and one run of each cheapest-SQL "
        "candidate in one psql session (`\\timing`, rows discarded), so noise from other jobs hits all alike. Scrapes "
        "are sequential on a kept-alive HTTP connection with Prometheus's headers (`Accept-Encoding: gzip`, "
        "`X-Prometheus-Scrape-Timeout-Seconds: 10`). Both exporters connect over the Unix socket as `pg_monitor` "
        "roles of their own. Times are medians unless marked p99.\n"
    )
    out.extend(summary_table(rows))
    out.append("")
    out.append(
        "cheapest SQL = the exporter's own per-scrape statements (printed by the binary, `serve --print-sql`) prepared "
        "once and run in one round trip, or as text if that is faster (`CHEAPEST_CANDIDATES` in scripts/bench.py says "
        "why that is the floor). server CPU = the CPU time of the exporter's server backends (found by role in "
        "pg_stat_activity; `/proc/PID/schedstat`, the ns-precise run time behind `/proc/PID/stat`'s utime+stime) over the rounds / scrapes; ratio = ours / theirs. RSS = VmRSS, PSS = "
        "smaps_rollup Pss, private = RssAnon, after the rounds. sampler = server CPU of an exporter's backend with "
        f"`--sample.interval 1s` and no scrapes, over {args.cost_window:g} s; watchdog = server CPU of `migrate`'s guard "
        f"backend (`migrate --poll-interval 200ms -- sleep`), over {args.cost_window:g} s."
    )
    if mirror_ok is not None:
        out.append(
            "The statements timed in psql match the statements the exporter ran (checked against pg_stat_statements)."
            if mirror_ok
            else "**The statements timed in psql do not match the statements the exporter ran (pg_stat_statements): "
            "check `serve --print-sql` against the collector.**"
        )
    out.append("")

    out.append("## Details\n")
    out.append(
        "| shape | sessions | ours mean ms = execute + plan + own CPU + rest | HTTP floor ms | SQL text / prepared ms "
        "| own CPU ms/scrape ours / theirs | server ms/scrape theirs | statements/scrape ours / theirs "
        "| body KiB ours / theirs | connections ours / theirs | threads ours / theirs | other jobs' CPUs | load setup s |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        o, t = row["ours"], row["theirs"]
        if o["server_ms"] is not None:
            split = (f"{o['mean']:.2f} = {o['server_ms']:.2f} + {o['plan_ms']:.2f} + {o['cpu_ms']:.2f} + "
                     f"{o['mean'] - o['server_ms'] - o['plan_ms'] - o['cpu_ms']:.2f}")
        else:
            split = f"{o['mean']:.2f} = n/a + n/a + {o['cpu_ms']:.2f} + n/a"
        out.append(
            f"| {row['plan']['shape']} | {row['plan']['size']} | {split} | {row['http_floor']:.2f} | "
            + " / ".join(f"{row['sql'][k]['p50']:.2f}" for k in CHEAPEST_CANDIDATES)
            + f" | {o['cpu_ms']:.2f} / {t['cpu_ms']:.2f} "
            f"| {fmt(None if t['server_ms'] is None else t['server_ms'] + t['plan_ms'])} "
            f"| {fmt(o.get('server_calls'), 0)} / {fmt(t.get('server_calls'), 0)} "
            f"| {len(o['body']) / 1024:.1f} / {len(t['body']) / 1024:.1f} | {o['connections']} / {t['connections']} "
            f"| {o['status']['Threads']} / {t['status']['Threads']} | {row['other_cpus']:.2f} | {row['setup_s']:.1f} |"
        )
    out.append("")
    out.append(
        "execute and plan = `total_exec_time` and `total_plan_time` of the exporter's statements in "
        "pg_stat_statements (its own role) / scrapes (theirs: the sum); own CPU = the exporter process's CPU time / "
        "scrapes; rest = everything else: parse on the server, sending the rows, the network, thread wake-ups, this "
        "script's HTTP client. HTTP floor = p50 of `GET /-/healthy` on the same connection (no database work). other "
        "jobs' CPUs = the machine's busy time during the rounds less that of the server, both exporters, psql and this "
        "script, over the wall time: above ~0.2 the latencies are inflated by other work on the machine."
    )
    worst = max(row["other_cpus"] for row in rows)
    if worst > 0.25:
        out.append(f"\n**Warning: other jobs kept up to {worst:.2f} of {info['nproc']} CPUs busy during the "
                   "measurements; absolute times are inflated, the interleaved ratios less so. Rerun on a quiet machine.**")
    out.append("")

    if pg.has_statements:
        names = [statement_name(st) for st in exporter_statements(pg.version_num)]
        by_words = {words(st): statement_name(st) for st in exporter_statements(pg.version_num)}
        out.append("Where the server time of our scrape goes: execute time per scrape of each of our statements, ms "
                   "(pg_stat_statements, over the rounds):\n")
        out.append("| statement | " + " | ".join(case_label(r) for r in rows) + " |")
        out.append("|---|" + "---:|" * len(rows))
        for name in names:
            cells = []
            for r in rows:
                total = sum(e for w, _, e in r["ours"]["statements"] if by_words.get(w) == name)
                cells.append(f"{total / args.scrapes:.3f}")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")

    pieces = [k for k in rows[0]["sql"] if k not in CHEAPEST_CANDIDATES]
    out.append(f"Each statement on its own in psql, as text, ms (median of {args.sql_reps} runs, after the rounds):\n")
    out.append("| statement | " + " | ".join(case_label(r) for r in rows) + " |")
    out.append("|---|" + "---:|" * len(rows))
    for key in pieces:
        out.append(f"| {key} | " + " | ".join(f"{r['sql'][key]['p50']:.2f}" for r in rows) + " |")
    out.append("")

    soak_row = next((r for r in rows if r.get("soak")), None)
    if soak_row:
        s = soak_row["soak"]
        out.append(
            f"**Soak** ({case_label(soak_row)}, {s['scrapes']} back-to-back scrapes in {s['seconds']:.0f}s): "
            f"RssAnon {mib(s['anon_before']):.2f} → {mib(s['anon_after']):.2f} MiB (max {mib(s['anon_max']):.2f}), "
            f"VmRSS {mib(s['rss_before']):.1f} → {mib(s['rss_after']):.1f} MiB (max {mib(s['rss_max']):.1f}); "
            f"scrape p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms; CPU {s['cpu_ms']:.2f} ms/scrape.\n"
        )
    out.append(targets(rows, soak_row))
    return "\n".join(out) + "\n"


def targets(rows: list[dict], soak_row: dict | None) -> str:
    """The performance goals, judged for each shape at its size nearest 750: a scrape ≥ 2× faster
    than postgres_exporter's, server CPU per scrape ≤ 0.5× its, a scrape ≤ 1.3× the cheapest SQL,
    resident memory below its, private memory flat over the soak."""
    lines = ["## Performance targets\n"]

    def line(ok: bool | None, text: str) -> None:
        mark = "n/a" if ok is None else ("MET" if ok else "MISSED")
        lines.append(f"- **{mark}** — {text}")

    for shape in [s for s in SHAPES if any(r["plan"]["shape"] == s for r in rows)]:
        row = min((r for r in rows if r["plan"]["shape"] == shape), key=lambda r: abs(r["plan"]["size"] - 750))
        o, t = row["ours"], row["theirs"]
        lines.append(f"\n{SHAPE_LABELS[shape]} ({row['plan']['size']} sessions, {row['verified'][4]} blocked):\n")
        speedup = t["p50"] / o["p50"]
        line(speedup >= 2, f"scrape ≥ 2× faster than postgres_exporter's: {t['p50']:.2f} ms vs {o['p50']:.2f} ms = {speedup:.1f}×")
        cpu_ratio = o["server_cpu_ms"] / max(t["server_cpu_ms"], 1e-9)
        line(cpu_ratio <= 0.5, f"server CPU per scrape ≤ 0.5× postgres_exporter's: {o['server_cpu_ms']:.2f} ms vs "
             f"{t['server_cpu_ms']:.2f} ms = {cpu_ratio:.2f}×")
        key, floor = cheapest(row)
        ratio = o["p50"] / floor
        line(ratio <= 1.3, f"scrape ≤ 1.3× the cheapest SQL: {o['p50']:.2f} ms vs {floor:.2f} ms ({key}) = {ratio:.2f}×")
        line(o["status"]["VmRSS"] < t["status"]["VmRSS"],
             f"RSS below postgres_exporter's: {mib(o['status']['VmRSS']):.1f} MiB vs {mib(t['status']['VmRSS']):.1f} MiB")
        if soak_row is row:
            s = soak_row["soak"]
            growth = s["anon_after"] - s["anon_before"]
            peak = s["anon_max"] - s["anon_before"]
            line(growth <= 512 and peak <= 1024,
                 f"private memory flat over {s['scrapes']} scrapes (growth ≤ 0.5 MiB, peak ≤ 1 MiB above the start): "
                 f"{growth / 1024:+.2f} MiB, peak {peak / 1024:+.2f} MiB")
        if row["reported_blocked"] is None or int(row["reported_blocked"]) != int(row["verified"][4]):
            lines.append(f"- **WARNING** — the exporter reported {row['reported_blocked']} blocked sessions, "
                         f"pg_stat_activity shows {row['verified'][4]}")
    if soak_row is None:
        line(None, "private memory flat: no soak run")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------


def ensure_postgres_exporter() -> str:
    if not os.access(THEIR_BINARY, os.X_OK):
        raise Failure(f"{THEIR_BINARY} is missing: run scripts/install-deps --bench")
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
    p.add_argument("--shapes", help=f"load shapes (default {','.join(SHAPES)}): " +
                   "; ".join(f"{k} = {v}" for k, v in SHAPE_LABELS.items()))
    p.add_argument("--sizes", help="client session counts (default 100,750,2000; --quick: 60,240)")
    p.add_argument("--scrapes", type=int, help="rounds per shape and size (default 200; --quick: 30)")
    p.add_argument("--sql-reps", type=int, help="psql runs per statement and size (default 50; --quick: 10)")
    p.add_argument("--soak", type=int, help="scrapes of the memory soak at the size nearest 750, short shape "
                   "(default 10000; --quick: 500; 0 skips it)")
    p.add_argument("--cost-window", type=float, help="seconds the sampler's and the watchdog's server CPU are read "
                   "(default 10; --quick: 3)")
    p.add_argument("--quick", action="store_true", help="a smoke run: small sizes, few scrapes")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    p.add_argument("--exporter", default=os.path.join(ROOT, ".build", "release", "pg_lock_exporter"),
                   help="the pg_lock_exporter binary to measure (default: the release build)")
    p.add_argument("--output", help="where to write the report (default bench/results.md; --quick: bench/results-quick.md)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, the stopped cluster)")
    p.add_argument("--targets", help="targets served by one exporter in the scale check, comma-separated "
                   "(default 200,1000; --quick: 20; 0 skips it)")
    p.add_argument("--only", help="sections to run, comma-separated: cases (side by side with postgres_exporter), "
                   "sampling (sampling's cost, quiet and blocking), fleet (the scale check), pages (/tree's render time "
                   "and weight); default all")
    p.add_argument("--targets-window", type=float, help="seconds each scale measurement lasts (default 45; --quick: 6)")
    p.add_argument("--targets-interval", type=float, help="seconds between two probes of one target (default 15; --quick: 2)")
    args = p.parse_args(argv)
    # (full run, --quick) for every option left unset
    defaults = dict(shapes=(",".join(SHAPES),) * 2, sizes=("100,750,2000", "60,240"), scrapes=(200, 30), sql_reps=(50, 10),
                    soak=(10000, 500), cost_window=(10.0, 3.0), output=("bench/results.md", "bench/results-quick.md"),
                    targets=("200,1000", "20"), targets_window=(45.0, 6.0), targets_interval=(15.0, 2.0))
    for key, (full, quick) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        p.error("--sizes: comma-separated integers")
    try:
        args.targets = [int(t) for t in args.targets.split(",") if t.strip() and int(t) > 0]
    except ValueError:
        p.error("--targets: comma-separated integers")
    args.only = {s.strip() for s in (args.only or "cases,sampling,fleet,pages").split(",") if s.strip()}
    if not args.only or not args.only <= {"cases", "sampling", "fleet", "pages"}:
        p.error("--only: a comma-separated list of cases, sampling, fleet, pages")
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if not args.shapes or any(s not in SHAPES for s in args.shapes):
        p.error(f"--shapes: a comma-separated list of {', '.join(SHAPES)}")
    if not args.sizes or args.scrapes < 1 or args.sql_reps < 1 or args.soak < 0 or args.cost_window <= 0:
        p.error("sizes, --scrapes, --sql-reps and --cost-window must be positive, --soak zero or more")
    if not all(30 <= size <= 10000 for size in args.sizes):
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
        their_version = ensure_postgres_exporter()
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

        log(f"starting PostgreSQL in {pg.dir} (max_connections {max(args.sizes) + 300})")
        pg.start()
        prepare(pg)
        log(f"PostgreSQL {pg.version} on {pg.dir}, port {pg.port}; pg_stat_statements "
            f"{'on' if pg.has_statements else 'not available'}")

        soak_case = (SHAPES[-1] if SHAPES[-1] in args.shapes else args.shapes[0],
                     min(args.sizes, key=lambda s: abs(s - 750))) if args.soak else None
        rows = []
        if "cases" in args.only:
            for shape in args.shapes:
                for size in args.sizes:
                    rows.append(run_case(args, pg, workdir, ours_binary, workload.plan(shape, size),
                                         args.soak if (shape, size) == soak_case else 0))
        sampling = [run_sampling(pg, workdir, ours_binary, size, args.cost_window)
                    for size in args.sizes] if "sampling" in args.only else []
        scales = [run_scale(pg, workdir, ours_binary, count, args.targets_window, args.targets_interval)
                  for count in args.targets] if "fleet" in args.only else []
        page_rows = [run_pages(pg, workdir, ours_binary, size, min(args.scrapes, 50))
                     for size in args.sizes] if "pages" in args.only else []

        mirror_ok = None
        if pg.has_statements and rows:
            statements = [words(st) for st in exporter_statements(pg.version_num)]
            ran = {w for w, _, _ in rows[-1]["ours"]["statements"]}
            # Every scrape runs all but the settings statement, which goes on connect and then
            # once a minute, so it may or may not fall inside the measured rounds.
            per_scrape = {words(st) for st in exporter_statements(pg.version_num) if not is_settings(st)}
            mirror_ok = per_scrape <= ran <= set(statements)
        text = (report(args, pg, rows, info, their_version, mirror_ok) if rows else f"# pg_lock_exporter benchmark ({', '.join(sorted(args.only))})\n") \
            + sampling_report(sampling, args.cost_window) + "".join(scale_report(scale) for scale in scales) \
            + pages_report(page_rows)
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
