"""Session-scoped fixtures for the tests that run the real stack.

    pg_server       a throwaway PostgreSQL (scripts/pg-sandbox) on a free 127.0.0.1 port
    start_incident  factory: the seed incident (scripts/incident) in a new database
    incident        the seed incident in database INCIDENT_DB with INCIDENT_READERS readers
    exporter        `pg_lock_exporter serve` on a free 127.0.0.1 port, watching pg_server
    probe_exporter  `pg_lock_exporter serve --config.file` with one target, STOPPED_TARGET, whose
                    PostgreSQL is not running (nothing listens on its port)
    rule_files      the shipped alerts/*.rules.yml plus their time-scaled overlay
    prometheus      Prometheus scraping the exporter every 1s (job "pg_lock_exporter") and
                    /probe?target=STOPPED_TARGET of probe_exporter (job PROBE_JOB, relabelled
                    instance=STOPPED_TARGET as in alerts/README.md), evaluating rule_files every
                    1s, with its own storage

    alertmanager_bin  Alertmanager, for the end-to-end remediation test (test_e2e_remediation.py),
                    which builds its own stacks from deploy/'s configs

Binaries: PG_LOCK_EXPORTER_BIN (default .build/debug/pg_lock_exporter), PROMETHEUS_BIN
(default `prometheus` on PATH) and ALERTMANAGER_BIN (default Debian's `prometheus-alertmanager`,
else `alertmanager`, on PATH). A missing binary fails the run; nothing is skipped.
Every process started here is stopped at teardown, also when a test or a fixture fails.
Set PG_LOCK_TESTS_KEEP=1 to keep the work directory (logs, prometheus.yml, overlay).
"""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

import livestack
from livestack import EXPORTER_JOB, INCIDENT_DB, INCIDENT_READERS, PROBE_JOB, REPO, STOPPED_TARGET

# The `exporter` fixture's --web.external-url: the alerts' tree_url annotations start with it.
EXTERNAL_URL = "https://pg-lock.example.com/"



def pytest_sessionstart(session):
    # A SIGTERM (CI timeout, `kill`) becomes a KeyboardInterrupt, so pytest still runs the
    # fixture teardowns and no PostgreSQL, exporter or Prometheus outlives the run.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def _interrupt(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, _interrupt)


def _binary(env_name, default, what):
    path = os.environ.get(env_name) or default
    resolved = shutil.which(path) if path and os.sep not in path else path
    if not resolved or not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        pytest.fail(f"{what} not found at {path!r}: {env_name} names it "
                    f"(default {default}). Build or install it; these tests are never skipped.", pytrace=False)
    return resolved


@pytest.fixture(scope="session")
def exporter_bin():
    return _binary("PG_LOCK_EXPORTER_BIN", str(REPO / ".build" / "debug" / "pg_lock_exporter"),
                   "the pg_lock_exporter binary (swift build)")


@pytest.fixture(scope="session")
def prometheus_bin():
    return _binary("PROMETHEUS_BIN", "prometheus", "Prometheus (apt-get install prometheus)")


@pytest.fixture(scope="session")
def alertmanager_bin():
    default = "prometheus-alertmanager" if shutil.which("prometheus-alertmanager") else "alertmanager"
    return _binary("ALERTMANAGER_BIN", default, "Alertmanager (apt-get install prometheus-alertmanager)")


@pytest.fixture(scope="session")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="pg_lock_exporter-tests."))
    # The sandbox's server runs as an unprivileged user when we are root: it must reach DIR/pg.
    path.chmod(0o755)
    yield path
    if not os.environ.get("PG_LOCK_TESTS_KEEP"):
        shutil.rmtree(path, ignore_errors=True)
    else:
        print(f"\nkept {path}")


@pytest.fixture(scope="session")
def pg_server(workdir):
    for tool in ("psql",):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found (apt-get install postgresql-client)", pytrace=False)
    directory = workdir / "pg"
    try:
        server = livestack.start_pg_sandbox(directory)
        yield server
    finally:
        livestack.PgServer(directory=directory, port=0, dsn="").stop()


@pytest.fixture(scope="session")
def start_incident(pg_server, workdir):
    """start_incident(datname, readers) runs the seed incident in a new database; all of them
    are stopped at teardown. Tests that end an incident (the remediator) should start their own
    here rather than end the shared `incident`."""
    started = []

    def start(datname, readers):
        state = workdir / f"incident-{datname}"
        holder = livestack.Incident(dsn="", datname=datname, readers=readers, state_dir=state)
        started.append(holder)  # stopped even if start fails half-way
        incident = livestack.start_incident(pg_server, datname, readers, state)
        started[-1] = incident
        return incident

    yield start
    for incident in reversed(started):
        incident.stop()


@pytest.fixture(scope="session")
def incident(start_incident):
    return start_incident(INCIDENT_DB, INCIDENT_READERS)


@pytest.fixture(scope="session")
def exporter(exporter_bin, pg_server, workdir):
    exp = livestack.start_exporter(exporter_bin, pg_server.dsn, workdir / "exporter.log",
                                   extra_args=["--web.external-url", EXTERNAL_URL])
    yield exp
    exp.stop()


@pytest.fixture(scope="session")
def probe_exporter(exporter_bin, workdir):
    dead = f"host=127.0.0.1 port={livestack.free_port()} user=postgres dbname=postgres connect_timeout=2"
    exp = livestack.start_multi_target_exporter(exporter_bin, {STOPPED_TARGET: dead}, workdir / "probe-exporter")
    yield exp
    exp.stop()


@pytest.fixture(scope="session")
def shipped_rule_files():
    files = sorted((REPO / "alerts").glob("*.rules.yml"))
    assert files, "no alerts/*.rules.yml"
    return files


@pytest.fixture(scope="session")
def rule_overlay(workdir):
    """The time-scaled rules (livestack.render_time_scaled_rules), beside the shipped ones."""
    (workdir / "rules").mkdir(exist_ok=True)
    return livestack.render_time_scaled_rules(workdir / "rules" / "pg_lock_exporter.time-scaled.rules.yml")


@pytest.fixture(scope="session")
def rule_files(shipped_rule_files, rule_overlay):
    return list(shipped_rule_files) + [rule_overlay]


@pytest.fixture(scope="session")
def prometheus(prometheus_bin, exporter, probe_exporter, rule_files, workdir):
    server = None
    try:
        server = livestack.PrometheusServer(
            prometheus_bin, workdir / "prometheus", {EXPORTER_JOB: [exporter.address]}, rule_files=rule_files,
            extra_scrape_configs=[livestack.probe_scrape_config(PROBE_JOB, probe_exporter.address, [STOPPED_TARGET])])
        server.wait_for_target_up(EXPORTER_JOB)
        server.wait_for_rules_evaluated()
        yield server
    finally:
        if server:
            server.stop()
