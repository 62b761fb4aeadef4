"""Helpers for the tests that run the real stack: PostgreSQL (scripts/pg-sandbox), the seed
incident (scripts/incident), the pg_lock_exporter binary (`serve` and `remediate --listen`),
Prometheus and Alertmanager, and the overlays that run deploy/'s configs natively.

conftest.py turns these into session-scoped fixtures; the end-to-end remediation test
(test_e2e_remediation.py) uses the classes directly, each test with its own stack.

Everything here talks only to loopback addresses: every HTTP request goes through
`http_get_json`, which refuses other hosts and ignores the *_proxy environment variables.
"""

import atexit
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

# The scenario the session fixtures (conftest.py) set up.
INCIDENT_DB = "app"
INCIDENT_READERS = 3
EXPORTER_JOB = "pg_lock_exporter"
# The multi-target job of the session's Prometheus: one /probe target whose PostgreSQL is down.
PROBE_JOB = "pg_lock_exporter_probe"
STOPPED_TARGET = "stopped"
# Time in the time-scaled rules runs this much faster: 1m of a shipped `for:` becomes 0.5s, the
# 60s idle threshold of PostgresBlockerIdleInTransaction 0.5s, the 1h threshold of
# PostgresLongRunningTransaction 30s. See render_time_scaled_rules below and docs/testing.md.
TIME_SCALE = 120


# --------------------------------------------------------------------- small utilities

def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """The environment for child processes: no libpq variables or DATA_SOURCE_NAME leaking in
    from the developer's shell (they could point at a real server), no proxies."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("PG") and not k.startswith(("PG_BINDIR", "PG_SANDBOX_")))
           and k != "DATA_SOURCE_NAME"
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(extra or {})
    return env


def wait_until(what, probe, timeout, interval=0.25):
    """Call probe() until it returns a truthy value; return that value. On timeout raise
    AssertionError naming `what` and the last value or exception seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except _Exited:
            raise
        except Exception as e:  # noqa: BLE001 - report whatever the probe hit
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def start_on_free_port(name, attempts, launch, ready_url):
    """Start a server with launch(port, attempt) -> ManagedProcess on a free loopback port, until
    GET ready_url() answers 200. Another process may take the port between choosing and binding
    it: then try again on another, up to `attempts` times. A server that exits fails at once."""
    failures = []
    for attempt in range(attempts):
        process = launch(free_port(), attempt)

        def ready():
            if not process.alive():
                raise _Exited(process.describe_exit())
            try:
                return http_get(ready_url(), timeout=2)[0] == 200
            except OSError:
                return False

        try:
            wait_until(f"{name} /-/ready", ready, timeout=30, interval=0.1)
            return
        except (AssertionError, _Exited) as e:
            failures.append(str(e))
            process.stop()
            if "address already in use" not in process.log_text():
                break
    raise AssertionError(f"{name} did not start:\n" + "\n".join(failures))


class _Exited(Exception):
    """A server exited while starting: stop waiting for it."""


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _check_loopback(url):
    host = urllib.parse.urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"refusing to talk to a non-loopback address: {url}")


def http_get(url, params=None, timeout=5):
    """GET url (loopback only); returns (status, body bytes)."""
    _check_loopback(url)
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post_json(url, doc, headers=None, timeout=5):
    """POST a JSON document to url (loopback only); returns (status, body bytes)."""
    _check_loopback(url)
    request = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with _NO_PROXY_OPENER.open(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def alertmanager_webhook(alerts):
    """Alertmanager's webhook payload (version 4) for `alerts`: [(labels dict, startsAt)], firing."""
    return {"version": "4", "status": "firing", "receiver": "pg-lock-remediator", "groupKey": "{}:{}",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
            "alerts": [{"status": "firing", "labels": labels, "annotations": {}, "startsAt": starts,
                        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": f"{i:016x}"}
                       for i, (labels, starts) in enumerate(alerts)]}


def http_get_json(url, params=None, timeout=5):
    status, body = http_get(url, params, timeout)
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError(f"GET {url} {params or ''}: HTTP {status}, not JSON: {body[:300]!r}") from None
    return status, doc


def psql(dsn, sql, timeout=15):
    """Run one SQL statement with psql; return stdout rows as lists of fields."""
    out = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", "\t", dsn, "-c", sql],
                         capture_output=True, text=True, timeout=timeout, env=clean_env())
    if out.returncode != 0:
        raise AssertionError(f"psql {sql!r} failed: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def dsn_with(dsn, **params):
    """Replace or add key=value pairs in a libpq keyword/value connection string
    (the sandbox's strings have no quoted values)."""
    pairs = dict(p.split("=", 1) for p in dsn.split())
    pairs.update({k: str(v) for k, v in params.items()})
    return " ".join(f"{k}={v}" for k, v in pairs.items())


# --------------------------------------------------------------------- processes

_LIVE_PROCESSES = []


class ManagedProcess:
    """A child process in its own process group, its stdout+stderr in a log file. stop() ends
    the whole group (TERM, then KILL); an atexit hook stops whatever a crash left running."""

    def __init__(self, name, argv, log_path, env=None, cwd=None, stdin=subprocess.DEVNULL):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env=env if env is not None else clean_env(), cwd=cwd)
        _LIVE_PROCESSES.append(self)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=30):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def describe_exit(self):
        return (f"{self.name} exited with status {self.proc.returncode}; "
                f"last lines of {self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout=5):
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # (A leader that already exited and was reaped is left alone: its group id may
        # belong to someone else by now.)
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        if not self._log.closed:
            self._log.close()
        if self in _LIVE_PROCESSES:
            _LIVE_PROCESSES.remove(self)


@atexit.register
def _stop_leftovers():
    for p in list(_LIVE_PROCESSES):
        p.stop(timeout=2)


# --------------------------------------------------------------------- PostgreSQL and the incident

@dataclass
class PgServer:
    directory: Path
    port: int
    dsn: str  # to the "postgres" database

    def dsn_for(self, dbname):
        return dsn_with(self.dsn, dbname=dbname)

    def stop(self):
        subprocess.run([SCRIPTS / "pg-sandbox", "stop", self.directory], capture_output=True, timeout=60,
                       env=clean_env())
        # Last resort if pg_ctl could not stop it: immediate shutdown of the postmaster.
        pidfile = self.directory / "data" / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError, IndexError):
            pass


def start_pg_sandbox(directory, attempts=3):
    """scripts/pg-sandbox start DIRECTORY PORT on a free port (retried if the port was taken
    meanwhile). The directory's parent must be traversable by the server's user."""
    directory = Path(directory)
    errors = []
    for _ in range(attempts):
        port = free_port()
        out = subprocess.run([SCRIPTS / "pg-sandbox", "start", directory, str(port)], capture_output=True,
                             text=True, timeout=120, env=clean_env())
        if out.returncode == 0:
            dsn = out.stdout.strip().splitlines()[-1]
            return PgServer(directory=directory, port=port, dsn=dsn)
        errors.append(f"port {port}: {out.stderr.strip()}")
        subprocess.run([SCRIPTS / "pg-sandbox", "stop", directory], capture_output=True, timeout=60, env=clean_env())
    raise AssertionError("scripts/pg-sandbox could not start PostgreSQL:\n" + "\n".join(errors))


@dataclass
class Incident:
    """The seed incident running in `datname`: worker idle in transaction holding a lock on
    features, alembic's ALTER TABLE queued behind it, `readers` web SELECTs behind that."""
    dsn: str
    datname: str
    readers: int
    state_dir: Path
    worker_pid: int = 0
    migration_pid: int = 0
    reader_pids: list = field(default_factory=list)

    @property
    def blocked(self):
        """Sessions waiting behind the worker: the migration and every reader."""
        return self.readers + 1

    def problems(self):
        """Why the incident is no longer what it was at start (empty list: intact)."""
        if not self.worker_pid:
            return ["the incident never started"]
        rows = psql(self.dsn, "SELECT pid, application_name, state, coalesce(wait_event_type, '') FROM pg_stat_activity "
                              f"WHERE datname = '{self.datname}' AND application_name IN ('worker', 'alembic', 'web')")
        now = {int(pid): (app, state, wait) for pid, app, state, wait in rows}
        out = []
        if now.get(self.worker_pid, (None, None))[1] != "idle in transaction":
            out.append(f"worker pid {self.worker_pid} is {now.get(self.worker_pid, 'gone')}")
        for pid in [self.migration_pid, *self.reader_pids]:
            if now.get(pid, (None, None, None))[2] != "Lock":
                out.append(f"waiting pid {pid} is {now.get(pid, 'gone')}")
        return out

    def stop(self):
        subprocess.run([SCRIPTS / "incident", "stop", self.state_dir], capture_output=True, timeout=30,
                       env=clean_env())


def start_incident(pg, datname, readers, state_dir):
    """Create database `datname` and run scripts/incident in it. Returns the Incident with the
    pids read back from pg_stat_activity. The caller must call stop() (also after a failure)."""
    psql(pg.dsn, f'CREATE DATABASE "{datname}"')
    dsn = pg.dsn_for(datname)
    incident = Incident(dsn=dsn, datname=datname, readers=readers, state_dir=Path(state_dir))
    # Output to a file, not a pipe: the sessions it leaves running inherit it and would keep a
    # pipe open until they end.
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    log = Path(state_dir) / "incident-start.log"
    with open(log, "wb") as out:
        try:
            rc = subprocess.run([SCRIPTS / "incident", "start", dsn, state_dir, str(readers)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, timeout=60, env=clean_env()).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    if rc != 0:
        incident.stop()
        raise AssertionError(f"scripts/incident start failed ({rc}):\n{log.read_text(errors='replace')}")
    rows = psql(dsn, "SELECT application_name, pid, state, coalesce(wait_event_type, '') FROM pg_stat_activity "
                     f"WHERE datname = '{datname}' AND application_name IN ('worker', 'alembic', 'web') "
                     "ORDER BY backend_start")
    by_app = {}
    for app, pid, state, wait in rows:
        by_app.setdefault(app, []).append((int(pid), state, wait))
    assert [s for _, s, _ in by_app.get("worker", [])] == ["idle in transaction"], rows
    assert [w for _, _, w in by_app.get("alembic", [])] == ["Lock"], rows
    assert [w for _, _, w in by_app.get("web", [])] == ["Lock"] * readers, rows
    incident.worker_pid = by_app["worker"][0][0]
    incident.migration_pid = by_app["alembic"][0][0]
    incident.reader_pids = [p for p, _, _ in by_app["web"]]
    return incident


class HeldSession(ManagedProcess):
    """A psql session that runs `sql` and then stays connected, waiting for more input, as a
    forgotten script or a waiting migration would: `BEGIN; SELECT ...;` leaves it idle in
    transaction, an `ALTER TABLE` that must wait leaves it waiting, then idle once done.
    stop() ends the session (its transaction rolls back)."""

    def __init__(self, dsn, application_name, sql, log_path):
        super().__init__(f"psql {application_name}", ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                                      dsn_with(dsn, application_name=application_name)],
                         log_path, stdin=subprocess.PIPE)
        self.proc.stdin.write(sql.encode() + b"\n")
        self.proc.stdin.flush()


# --------------------------------------------------------------------- the exporter

LISTENING_RE = re.compile(r"msg=listening address=(\S+)")


@dataclass
class Exporter:
    process: ManagedProcess
    address: str  # HOST:PORT

    @property
    def url(self):
        return f"http://{self.address}/metrics"

    def stop(self):
        self.process.stop()


def wait_listening(proc, what, timeout=15):
    """The HOST:PORT from the `msg=listening address=...` log line of `serve` or
    `remediate --listen` (both started on port 0: the kernel picks a free one)."""
    def listening():
        if not proc.alive():
            return _EXITED  # stop waiting (wait_until would retry an exception until the timeout)
        m = LISTENING_RE.search(proc.log_text())
        return m.group(1) if m else None
    address = wait_until(f"{what}'s msg=listening log line", listening, timeout=timeout, interval=0.05)
    if address is _EXITED:
        raise AssertionError(proc.describe_exit())
    return address


_EXITED = type("Exited", (), {"__repr__": lambda self: "EXITED"})()


def start_multi_target_exporter(binary, targets, directory):
    """`serve --config.file` with targets {name: dsn} on a port the kernel picks (the multi-target
    pattern: Prometheus scrapes /probe?target=NAME). Returns the Exporter; its .url is the
    process's own /metrics."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "targets.yml"
    config.write_text(yaml.safe_dump({"targets": {name: {"dsn": dsn} for name, dsn in targets.items()}}))
    proc = ManagedProcess("pg_lock_exporter multi-target", [binary, "serve", "--config.file", config,
                                                            "--web.listen-address", "127.0.0.1:0"], directory / "exporter.log")
    try:
        return Exporter(process=proc, address=wait_listening(proc, "the multi-target exporter"))
    except BaseException:
        proc.stop()
        raise


def probe_scrape_config(job, exporter_address, target_names):
    """The multi-target scrape config of alerts/README.md: /probe?target=NAME, instance=NAME."""
    return {"job_name": job, "metrics_path": "/probe", "static_configs": [{"targets": list(target_names)}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": exporter_address}]}


def start_exporter(binary, dsn, log_path, extra_args=()):
    """pg_lock_exporter serve on 127.0.0.1 with a port the kernel picks; waits for the
    `msg=listening` log line and for a scrape that reports pg_up 1."""
    proc = ManagedProcess("pg_lock_exporter", [binary, "serve", "--dsn", dsn, "--web.listen-address",
                                               "127.0.0.1:0", *extra_args], log_path)
    try:
        address = wait_listening(proc, "the exporter")
        exporter = Exporter(process=proc, address=address)
        wait_until("pg_up 1 from the exporter",
                   lambda: re.search(rb"^pg_up 1$", http_get(exporter.url)[1], re.M), timeout=15, interval=0.1)
        return exporter
    except BaseException:
        proc.stop()
        raise


# --------------------------------------------------------------------- Prometheus

class PrometheusServer:
    """A Prometheus with its own storage and a generated prometheus.yml.

    scrape_jobs: {job_name: [HOST:PORT, ...]}; rule_files: paths; alertmanagers: [HOST:PORT, ...].
    extra_scrape_configs: whole scrape_configs entries added as given (e.g. probe_scrape_config()).
    Scrape and evaluation interval default to 1s.
    Or config: a whole prometheus.yml document (e.g. prometheus_overlay() of deploy/'s file),
    used as given; scrape_jobs, rule_files, alertmanagers and interval are then ignored."""

    def __init__(self, binary, directory, scrape_jobs=None, rule_files=(), alertmanagers=(), interval="1s",
                 extra_flags=(), attempts=3, config=None, extra_scrape_configs=()):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path = self.directory / "prometheus.yml"
        if config is None:
            self.rule_files = [str(Path(f).resolve()) for f in rule_files]
            config = {
                "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
                "rule_files": self.rule_files,
                "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}
                                   for job, targets in (scrape_jobs or {}).items()] + list(extra_scrape_configs),
            }
            if alertmanagers:
                config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
        else:
            self.rule_files = list(config.get("rule_files") or [])
        for target in prometheus_targets(config):
            host = target.rsplit(":", 1)[0].strip("[]")
            if host not in LOOPBACK_HOSTS:
                raise ValueError(f"refusing a non-loopback target {target}")
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.process = None

        def launch(port, attempt):
            self.port, self.url = port, f"http://127.0.0.1:{port}"
            self.process = ManagedProcess("prometheus", [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={self.url}/",
                *extra_flags,
            ], self.directory / f"prometheus.{attempt}.log")
            return self.process

        start_on_free_port("Prometheus", attempts, launch, lambda: f"{self.url}/-/ready")

    def stop(self):
        if self.process:
            self.process.stop()

    # ---- HTTP API
    def api(self, path, params=None):
        status, doc = http_get_json(f"{self.url}/api/v1/{path}", params, timeout=10)
        if status != 200 or doc.get("status") != "success":
            raise AssertionError(f"/api/v1/{path} {params or ''}: HTTP {status}: {doc}")
        return doc

    def query(self, expr, at=None):
        """Instant query; returns the result list (vector) and fails on warnings."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        doc = self.api("query", params)
        assert not doc.get("warnings"), f"query {expr!r} warned: {doc['warnings']}"
        data = doc["data"]
        assert data["resultType"] == "vector", f"query {expr!r}: result type {data['resultType']}"
        return data["result"]

    def query_range(self, expr, start, end, step="1s"):
        doc = self.api("query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step})
        assert not doc.get("warnings"), f"query_range {expr!r} warned: {doc['warnings']}"
        return doc["data"]["result"]

    def alerts(self):
        return self.api("alerts")["data"]["alerts"]

    def rule_groups(self):
        return self.api("rules")["data"]["groups"]

    def targets(self):
        return self.api("targets")["data"]["activeTargets"]

    def wait_for_target_up(self, job, timeout=30):
        """Wait until every target of `job` has been scraped successfully (up == 1)."""
        def probe():
            result = self.query(f'up{{job="{job}"}}')
            return result and all(r["value"][1] == "1" for r in result)
        wait_until(f"Prometheus to scrape job {job} (up == 1)", probe, timeout=timeout)

    def wait_for_rules_evaluated(self, timeout=30):
        """Wait until every loaded rule has been evaluated at least once."""
        def probe():
            groups = self.rule_groups()
            return groups and all(r.get("health") != "unknown" for g in groups for r in g["rules"])
        wait_until("every rule to be evaluated once", probe, timeout=timeout)


def prometheus_targets(config):
    """Every address a prometheus.yml document makes Prometheus talk to: static scrape targets and
    Alertmanagers, or, where relabelling sets __address__ (the multi-target pattern), that
    replacement instead of the static targets (which are then target names)."""
    configs = list(config.get("scrape_configs") or [])
    configs += list((config.get("alerting") or {}).get("alertmanagers") or [])
    out = []
    for c in configs:
        rewritten = [r.get("replacement", "") for r in c.get("relabel_configs") or [] if r.get("target_label") == "__address__"]
        out += rewritten or [t for sc in c.get("static_configs") or [] for t in sc.get("targets") or []]
    return out


# --------------------------------------------------------------------- the time-scaled rules

OVERLAY_LABEL = ("rule_set", "time-scaled")


def render_time_scaled_rules(path, scale=TIME_SCALE):
    """The shipped rules with time running `scale` times faster, rendered by the mixin itself
    (tests/rules/time-scaled.jsonnet: its durations and age thresholds divided by `scale`), to path."""
    out = subprocess.run(["jsonnet", "-S", "-J", str(REPO / "mixin"), "--tla-code", f"scale={scale}",
                          str(REPO / "tests" / "rules" / "time-scaled.jsonnet")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"jsonnet: {out.stderr.strip()[:500]}"
    Path(path).write_text(out.stdout)
    return Path(path)


# --------------------------------------------------------------------- metrics text

def parse_metrics(body):
    """Prometheus text exposition, read by prometheus_client's parser ->
    {(name, frozenset of (label, value)): value}."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return {(s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(text)
            for s in family.samples}


def sample(metrics, name, **labels):
    """The value of series `name` with exactly these labels in parse_metrics() output, or None."""
    return metrics.get((name, frozenset(labels.items())))


def samples(metrics, name):
    """{frozenset(labels): value} of every series called `name`."""
    return {labels: value for (n, labels), value in metrics.items() if n == name}


# --------------------------------------------------------------------- the remediator

@dataclass
class RemediatorService:
    """`pg_lock_exporter remediate --listen`: the Alertmanager webhook receiver."""
    process: ManagedProcess
    address: str  # HOST:PORT

    @property
    def webhook_url(self):
        return f"http://{self.address}/webhook/alertmanager"

    def metrics(self):
        status, body = http_get(f"http://{self.address}/metrics")
        assert status == 200, f"remediator /metrics: HTTP {status}"
        return parse_metrics(body)

    def stop(self):
        self.process.stop()


def start_remediator(binary, dsn, log_path, args=()):
    """`remediate --dsn DSN --listen 127.0.0.1:0 ARGS`; waits for the listening log line and
    /-/healthy. The service connects to PostgreSQL only when a webhook starts a pass."""
    proc = ManagedProcess("pg_lock_exporter remediate",
                          [binary, "remediate", "--dsn", dsn, "--listen", "127.0.0.1:0", *args], log_path)
    try:
        address = wait_listening(proc, "the remediator")
        wait_until("the remediator's /-/healthy", lambda: http_get(f"http://{address}/-/healthy")[0] == 200,
                   timeout=10, interval=0.05)
        return RemediatorService(process=proc, address=address)
    except BaseException:
        proc.stop()
        raise


# --------------------------------------------------------------------- Alertmanager

class AlertmanagerServer:
    """Alertmanager with the given alertmanager.yml document, its own storage, clustering off,
    listening on a free 127.0.0.1 port; every webhook URL in the config must be loopback."""

    def __init__(self, binary, directory, config, attempts=3):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for receiver in config.get("receivers") or []:
            for hook in receiver.get("webhook_configs") or []:
                _check_loopback(hook["url"])
        self.config_path = self.directory / "alertmanager.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.process = None

        def launch(port, attempt):
            self.port, self.address = port, f"127.0.0.1:{port}"
            self.url = f"http://{self.address}"
            self.process = ManagedProcess("alertmanager", [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.path={self.directory / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",  # no gossip: a single, local instance
                "--log.level=debug",  # logs each notification attempt, for the failure messages
            ], self.directory / f"alertmanager.{attempt}.log")
            return self.process

        start_on_free_port("Alertmanager", attempts, launch, lambda: f"{self.url}/-/ready")

    def alerts(self):
        """/api/v2/alerts: the active (not resolved) alerts it holds."""
        status, doc = http_get_json(f"{self.url}/api/v2/alerts")
        assert status == 200, f"Alertmanager /api/v2/alerts: HTTP {status}: {doc}"
        return doc

    def metrics(self):
        status, body = http_get(f"{self.url}/metrics")
        assert status == 200, f"Alertmanager /metrics: HTTP {status}"
        return parse_metrics(body)

    def stop(self):
        if self.process:
            self.process.stop()


# --------------------------------------------------------------------- deploy/'s configs, natively

# The OVERLAY CONTRACT in the header comments of these two files: what a native run may change.
DEPLOY_PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
DEPLOY_ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
DEPLOY_EXPORTER = "exporter:9817"
DEPLOY_REMEDIATOR = "remediator:9818"
DEPLOY_ALERTMANAGER = "alertmanager:9093"
DEPLOY_WEBHOOK_URL = "http://remediator:9818/webhook/alertmanager"
DEPLOY_TOKEN_FILE = "/run/secrets/remediator_token"
PROMETHEUS_INTERVAL_KEYS = ("scrape_interval", "scrape_timeout", "evaluation_interval")
ALERTMANAGER_TIMING_KEYS = ("group_wait", "group_interval", "repeat_interval")
REMEDIATOR_RECEIVER = "pg-lock-remediator"


def _replace_strings(node, mapping, counts):
    if isinstance(node, dict):
        return {k: _replace_strings(v, mapping, counts) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_strings(v, mapping, counts) for v in node]
    if isinstance(node, str) and node in mapping:
        counts[node] += 1
        return mapping[node]
    return node


def _replace_each_once(doc, mapping, source):
    """Replace whole string values, by exact match; each key must occur exactly once."""
    counts = dict.fromkeys(mapping, 0)
    out = _replace_strings(copy.deepcopy(doc), mapping, counts)
    wrong = {k: n for k, n in counts.items() if n != 1}
    if wrong:
        raise ValueError(f"{source}: the overlay contract replaces each of these values exactly once; "
                         f"occurrences found: {wrong}")
    return out


def prometheus_overlay(doc, exporter, remediator, alertmanager, rule_files, interval="1s"):
    """deploy/prometheus/prometheus.yml for a native run, per its OVERLAY CONTRACT: the three
    targets become the given 127.0.0.1:PORT addresses, the global intervals `interval`, and
    rule_files the given absolute paths. Nothing else changes."""
    for address in (exporter, remediator, alertmanager):
        if address.rsplit(":", 1)[0].strip("[]") not in LOOPBACK_HOSTS:
            raise ValueError(f"refusing a non-loopback target {address}")
    out = _replace_each_once(doc, {DEPLOY_EXPORTER: exporter, DEPLOY_REMEDIATOR: remediator,
                                   DEPLOY_ALERTMANAGER: alertmanager}, DEPLOY_PROMETHEUS_CONFIG.name)
    out.setdefault("global", {})
    for key in PROMETHEUS_INTERVAL_KEYS:
        out["global"][key] = interval
    out["rule_files"] = [str(Path(f).resolve()) for f in rule_files]
    return out


def alertmanager_overlay(doc, webhook_url, token_file, timings=None):
    """deploy/alertmanager/alertmanager.yml for a native run, per its OVERLAY CONTRACT: the
    remediator's webhook URL and the token file replaced, and optionally the timing keys
    (`timings`: {group_wait|group_interval|repeat_interval: duration}) of the root route and
    of the pg-lock-remediator route. Nothing else changes."""
    _check_loopback(webhook_url)
    out = _replace_each_once(doc, {DEPLOY_WEBHOOK_URL: webhook_url, DEPLOY_TOKEN_FILE: str(token_file)},
                             DEPLOY_ALERTMANAGER_CONFIG.name)
    timings = dict(timings or {})
    unknown = set(timings) - set(ALERTMANAGER_TIMING_KEYS)
    if unknown:
        raise ValueError(f"the overlay contract allows only {ALERTMANAGER_TIMING_KEYS}, not {sorted(unknown)}")
    remediation_routes = [r for r in out["route"].get("routes") or [] if r.get("receiver") == REMEDIATOR_RECEIVER]
    if len(remediation_routes) != 1:
        raise ValueError(f"{DEPLOY_ALERTMANAGER_CONFIG.name}: expected one route to {REMEDIATOR_RECEIVER}, "
                         f"found {len(remediation_routes)}")
    for route in (out["route"], remediation_routes[0]):
        route.update(timings)
    return out


def config_changes(old, new, path=()):
    """[(path, old, new)] for every value that differs between two YAML documents; a list of a
    different length, or a key present on one side only, is one change (MISSING on that side)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in list(old) + [k for k in new if k not in old]:
            out += config_changes(old.get(key, MISSING), new.get(key, MISSING), path + (key,))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new)) for c in config_changes(a, b, path + (i,))]
    return [] if old == new else [(path, old, new)]


class _Missing:
    def __repr__(self):
        return "MISSING"


MISSING = _Missing()


# --------------------------------------------------------------------- PgBouncer

class PgBouncer:
    """Debian's pgbouncer (never the system service) on 127.0.0.1 and a free port, in a
    directory of its own, as the sandbox server's unprivileged user when we are root. Database
    `app` points at `datname` on the sandbox over TCP. Users (plain passwords; the sandbox trusts
    every login): `postgres`/`app-secret`, `pgb_stats`/`stats-secret` (stats_users)."""

    STATS_PASSWORD = "stats-secret"
    APP_PASSWORD = "app-secret"

    def __init__(self, directory, pg, datname, pool_mode="session", pool_size=5):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(f"""[databases]
app = host=127.0.0.1 port={pg.port} dbname={datname}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = plain
auth_file = {self.directory}/users.txt
stats_users = pgb_stats
pool_mode = {pool_mode}
default_pool_size = {pool_size}
logfile = {self.directory}/pgbouncer.log
pidfile = {self.directory}/pgbouncer.pid
""")
        (self.directory / "users.txt").write_text(
            f'"postgres" "{self.APP_PASSWORD}"\n"pgb_stats" "{self.STATS_PASSWORD}"\n')
        self.password_file = self.directory / "stats.pw"
        self.password_file.write_text(self.STATS_PASSWORD + "\n")
        self.password_file.chmod(0o600)
        owner = []
        if os.geteuid() == 0:
            user = os.environ.get("PG_SANDBOX_USER", "postgres")
            subprocess.run(["chown", "-R", user, str(self.directory)], check=True)
            owner = ["runuser", "-u", user, "--"]
        out = subprocess.run([*owner, shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", "-d", str(ini)],
                             capture_output=True, text=True, timeout=30, env=clean_env())
        assert out.returncode == 0, out.stderr
        self.log_path, pidfile = self.directory / "pgbouncer.log", self.directory / "pgbouncer.pid"
        # The daemon logs "listening" and writes its pidfile in either order: wait for both.
        wait_until("pgbouncer to listen and write its pidfile",
                   lambda: self.log_path.exists() and f"listening on 127.0.0.1:{self.port}" in self.log_path.read_text()
                   and pidfile.exists() and pidfile.read_text().strip(), timeout=10)
        self.pid = int(pidfile.read_text().split()[0])

    @property
    def name(self):
        return f"127.0.0.1:{self.port}"

    def admin_dsn(self):
        return f"host=127.0.0.1 port={self.port} dbname=pgbouncer user=pgb_stats"

    def url(self, driver="psycopg2"):
        return f"postgresql+{driver}://postgres:{self.APP_PASSWORD}@127.0.0.1:{self.port}/app"

    def dsn(self):
        return f"host=127.0.0.1 port={self.port} dbname=app user=postgres password={self.APP_PASSWORD}"

    def stop(self):
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 2)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)
