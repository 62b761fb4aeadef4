"""The client-session load of the benchmark (scripts/bench.py): real psql sessions left idle, idle in
transaction, active, or queued in blocking chains, in one of two shapes.

    few long chains    a handful of tables, each with an idle-in-transaction root, an ALTER TABLE
                       queued behind it and dozens of readers queued behind the ALTER
    many short chains  one table per chain, each root -> ALTER TABLE -> 4 readers, and many
                       more chains (a leaking pool: a root per table)

`plan(shape, size)` says how many sessions of each kind a size gets; `open_load()` starts them and
waits until pg_stat_activity shows exactly that. Python 3.11 standard library only.
"""

from __future__ import annotations

import os
import subprocess
import time

# Safety net for the load: a query still running if the benchmark dies ends by itself.
LOAD_PGOPTIONS = "-c statement_timeout=1800000"

SHAPES = ("long", "short")
SHAPE_LABELS = {"long": "few long chains", "short": "many short chains over many tables"}


class Failure(Exception):
    """Something could not be started or measured: the only reason for the benchmark to exit non-zero."""


def deadline_loop(seconds: float, interval: float):
    """Yields until `seconds` have passed, sleeping `interval` between rounds (a bounded poll)."""
    end = time.monotonic() + seconds
    while True:
        yield
        if time.monotonic() >= end:
            return
        time.sleep(interval)


def plan(shape: str, size: int) -> dict:
    """The sessions of one shape and size. Both shapes block a third of the sessions.

    long:  size/150 chains (5 at 750), the rest of the third as readers spread over them; a tenth
           idle in transaction elsewhere, a twentieth active (pg_sleep), the rest idle.
    short: size/15 chains (50 at 750) of root -> ALTER TABLE -> 4 readers, each on its own table;
           2/15 idle in transaction elsewhere (100 at 750), 1/15 active (50), the rest idle (300).
    """
    if shape == "long":
        chains = max(2, size // 150)
        readers = size // 3 - chains
        idle_tx, active = size // 10, size // 20
    elif shape == "short":
        chains = max(2, size // 15)
        readers = 4 * chains
        idle_tx, active = size * 2 // 15, size // 15
    else:
        raise Failure(f"unknown workload shape {shape!r} (known: {', '.join(SHAPES)})")
    idle = size - 2 * chains - readers - idle_tx - active  # each chain: its root and its ALTER TABLE
    if idle < 0 or readers < chains:
        raise Failure(f"size {size} is too small for the {SHAPE_LABELS[shape]} load (use 30 sessions or more)")
    return dict(shape=shape, size=size, chains=chains, blocked=chains + readers, readers=readers, idle_tx=idle_tx,
                active=active, idle=idle)


# What open_load() waits for, and what the benchmark checks before and after measuring: client
# sessions, idle, idle in transaction, active and not waiting, blocked (the exporters' own
# sessions and the benchmark's left out).
VERIFY_SQL = """SELECT count(*),
       count(*) FILTER (WHERE state = 'idle'),
       count(*) FILTER (WHERE state LIKE 'idle in transaction%'),
       count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock'),
       count(*) FILTER (WHERE wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND usename NOT IN ('monitor', 'pgexp', 'sampler', 'guard') AND application_name NOT LIKE 'bench%'"""


class Load:
    """Client sessions held by psql processes. Each psql reads its SQL from a pipe we keep open,
    so it stays connected in whatever state the SQL left it (idle, idle in transaction, waiting).

    `conninfo(db, user, application)` builds a libpq connection string; `psql(sql)` runs SQL and
    returns its rows (both from the benchmark's sandbox)."""

    def __init__(self, conninfo, psql, log_path: str):
        self.conninfo = conninfo
        self.psql = psql
        self.procs: list[tuple[subprocess.Popen, tuple]] = []
        self.log = open(log_path, "ab")
        self.env = dict(os.environ, PGOPTIONS=LOAD_PGOPTIONS)
        self.env.pop("PGAPPNAME", None)

    def spawn(self, spec: tuple) -> None:
        db, user, application, sql = spec
        proc = subprocess.Popen(
            ["psql", "-X", "-q", self.conninfo(db, user, application)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log, env=self.env, bufsize=0,
            start_new_session=True,
        )
        self.procs.append((proc, spec))
        try:
            proc.stdin.write((sql + "\n").encode())
        except OSError:
            pass  # it already exited: start() notices and starts it again

    def start(self, specs: list[tuple], expected: tuple, what: str, timeout: float) -> None:
        """Starts sessions and waits until VERIFY_SQL returns `expected`; respawns a psql that
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
            seen = tuple(self.psql(VERIFY_SQL)[0])
            if seen == tuple(str(n) for n in expected):
                return
        raise Failure(f"load: {what} not reached in {timeout:.0f}s: expected {expected}, last seen {seen}")

    def stop(self) -> None:
        """Ends every client session (stop the exporters first) and every psql."""
        if not self.procs:
            return
        try:
            self.psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND wait_event_type = 'Lock';"
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
        except Failure:
            pass  # the psql processes are ended below anyway
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


def open_load(load: Load, plan: dict) -> None:
    """Starts the sessions of `plan` in the database `app` (which has the table `orders`): first
    idle, idle-in-transaction and active sessions and the chain roots, then the ALTER TABLEs
    behind the roots, then the readers behind the ALTER TABLEs, each step checked."""
    tables = [f"chain_{plan['shape']}_{plan['size']}_{k}" for k in range(1, plan["chains"] + 1)]
    load.psql(
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
    idle, idle_tx, active, chains = plan["idle"], plan["idle_tx"] + plan["chains"], plan["active"], plan["chains"]
    load.start(base, (len(base), idle, idle_tx, active, 0), "idle, idle-in-transaction and active sessions",
               timeout=60 + plan["size"] / 10)
    # The migrations queue behind the roots...
    load.start([("app", "app", "alembic", f"ALTER TABLE {t} ADD COLUMN signature text;") for t in tables],
               (len(base) + chains, idle, idle_tx, active, chains), "ALTER TABLEs queued behind the roots",
               timeout=60 + plan["size"] / 20)
    # ...and the readers behind the migrations, spread over the chains.
    readers = [("app", "app", f"web-{j % 4 + 1}", f"SELECT count(*) FROM {tables[j % chains]};")
               for j in range(plan["readers"])]
    load.start(readers, (plan["size"], idle, idle_tx, active, plan["blocked"]), "readers queued behind the ALTER TABLEs",
               timeout=60 + plan["size"] / 10)
