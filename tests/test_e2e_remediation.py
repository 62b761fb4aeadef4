"""Alert-triggered remediation, end to end, with real components on loopback addresses.

The seed incident runs in a database of its own on the session's sandbox PostgreSQL (never the
shared `app` incident of test_prometheus_live.py). Beside it, per test: `pg_lock_exporter serve`,
`pg_lock_exporter remediate --listen --execute`, Debian's Prometheus and Alertmanager running
deploy/prometheus/prometheus.yml and deploy/alertmanager/alertmanager.yml through the overlays
their header comments allow (livestack.prometheus_overlay / alertmanager_overlay): loopback
addresses, the test's token file, 1s intervals, and as rule files the shipped alerts/*.rules.yml
plus their time-scaled copy (the same TIME_SCALE overlay as test_prometheus_live.py), so that
PostgresBlockerIdleInTransaction (idle > 60s, for: 1m, keep_firing_for: 3m) fires and resolves
within seconds. See docs/testing.md.
"""

import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import livestack
from livestack import (DEPLOY_ALERTMANAGER_CONFIG, DEPLOY_PROMETHEUS_CONFIG, OVERLAY_LABEL, REMEDIATOR_RECEIVER,
                       TIME_SCALE, sample, samples, wait_until)

ALERT = "PostgresBlockerIdleInTransaction"
# Job names of deploy/prometheus/prometheus.yml (the overlay keeps them; the alerts select on them).
EXPORTER_JOB = "pg_lock_exporter"
REMEDIATOR_JOB = "pg_lock_remediator"
READERS = 2
# The remediator re-checks the idle age itself. The time-scaled alert fires once the worker has
# been idle more than 60s/TIME_SCALE (0.5s) for 1m/TIME_SCALE (0.5s), so at least 1s, before
# Alertmanager's group_wait: --min-idle 1s never makes the pass skip the worker.
MIN_IDLE = "1s"
PROMETHEUS_INTERVAL = "1s"
# The overlay contract allows the timing keys; repeat_interval stays as shipped (10m), so the
# only notifications are the first one and the resolved one.
ALERTMANAGER_TIMINGS = {"group_wait": "1s", "group_interval": "1s"}

# Bounds, each counted from the end of the previous step; what they usually take in brackets.
FIRING_TIMEOUT = 20      # incident start -> firing in Prometheus and held by Alertmanager (~3s)
REMEDIATION_TIMEOUT = 15  # -> the remediator counts its termination (~1.5s: group_wait + pass)
SETTLE_TIMEOUT = 10      # -> the worker is gone, the ALTER TABLE done, the readers idle (<1s)
RESOLVE_TIMEOUT = 20     # -> resolved in Prometheus (keep_firing_for 1.5s), Alertmanager, remediator (~4s)

REQUESTS = "pg_lock_remediator_webhook_requests_total"
DECISIONS = "pg_lock_remediator_decisions_total"
TERMINATIONS = "pg_lock_remediator_terminations_total"


# --------------------------------------------------------------------- the stack

@dataclass
class Stack:
    datname: str
    directory: Path
    audit_log: Path
    exporter: object = None
    remediator: object = None
    alertmanager: object = None
    prometheus: object = None
    incident: object = None

    def is_ours(self, labels):
        """The time-scaled PostgresBlockerIdleInTransaction about this stack's database."""
        return (labels.get("alertname") == ALERT and labels.get("datname") == self.datname
                and labels.get(OVERLAY_LABEL[0]) == OVERLAY_LABEL[1])

    def remediator_metrics(self):
        return self.remediator.metrics()

    def audit_lines(self):
        text = self.audit_log.read_text() if self.audit_log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def failure_context(self):
        parts = []
        for name, part in (("remediator", self.remediator), ("alertmanager", self.alertmanager)):
            if part is not None:
                parts.append(f"--- {name} log ({part.process.log_path}):\n{part.process.log_tail(25)}")
        return "\n".join(parts)


def write_secret(path, value):
    # As deploy/make-secrets.sh writes it: mode 0600, no trailing newline.
    path.touch(mode=0o600)
    path.write_text(value)
    return path


@pytest.fixture
def remediation_stack(exporter_bin, prometheus_bin, alertmanager_bin, pg_server, start_incident, rule_files, workdir):
    """build(datname, alertmanager_token=None) starts the exporter, the remediator, Alertmanager
    and Prometheus for an incident in `datname` (not started yet: Stack.incident is set by
    start()). With alertmanager_token, Alertmanager's credentials file holds that token instead
    of the remediator's. Everything it started is stopped at teardown, also on failure; the
    incident too, so no blocked session outlives the test."""
    stacks = []

    def build(datname, alertmanager_token=None):
        directory = workdir / f"e2e-{datname}"
        directory.mkdir()
        stack = Stack(datname=datname, directory=directory, audit_log=directory / "audit.jsonl")
        stacks.append(stack)
        token_file = write_secret(directory / "remediator_token", secrets.token_urlsafe(32))
        am_token_file = token_file
        if alertmanager_token is not None:
            am_token_file = write_secret(directory / "alertmanager_token", alertmanager_token)

        stack.exporter = livestack.start_exporter(exporter_bin, pg_server.dsn, directory / "exporter.log")
        remediator_args = [
            "--webhook.token-file", token_file, "--execute", "--min-idle", MIN_IDLE, "--audit-log", stack.audit_log,
            # The webhook runs its pass in the database named by the alert's datname. Other
            # databases of this shared server (the `app` incident) are not this test's to end.
            "--only-database", re.escape(datname),
        ]
        stack.remediator = livestack.start_remediator(exporter_bin, pg_server.dsn_for(datname),
                                                      directory / "remediator.log", remediator_args)
        am_config = livestack.alertmanager_overlay(
            yaml.safe_load(DEPLOY_ALERTMANAGER_CONFIG.read_text(encoding="utf-8")),
            stack.remediator.webhook_url, am_token_file, ALERTMANAGER_TIMINGS)
        stack.alertmanager = livestack.AlertmanagerServer(alertmanager_bin, directory / "alertmanager", am_config)
        prom_config = livestack.prometheus_overlay(
            yaml.safe_load(DEPLOY_PROMETHEUS_CONFIG.read_text(encoding="utf-8")),
            stack.exporter.address, stack.remediator.address, stack.alertmanager.address, rule_files,
            PROMETHEUS_INTERVAL)
        stack.prometheus = livestack.PrometheusServer(prometheus_bin, directory / "prometheus", config=prom_config)
        stack.prometheus.wait_for_target_up(EXPORTER_JOB)
        stack.prometheus.wait_for_target_up(REMEDIATOR_JOB)
        stack.prometheus.wait_for_rules_evaluated()
        wanted = f"{stack.alertmanager.url}/api/v2/alerts"
        wait_until(f"Prometheus to use Alertmanager {wanted}",
                   lambda: wanted in [a["url"] for a in
                                      stack.prometheus.api("alertmanagers")["data"]["activeAlertmanagers"]],
                   timeout=15)
        return stack

    yield build
    for stack in reversed(stacks):
        for part in (stack.prometheus, stack.alertmanager, stack.remediator, stack.exporter):
            if part is not None:
                part.stop()
        if stack.incident is not None:
            stack.incident.stop()
            empty_database(pg_server, stack.datname)


def empty_database(pg_server, datname):
    """After the incident's clients are killed, wait until its sessions have left the server
    (a backend waiting on a lock notices a vanished client only at the sandbox's
    client_connection_check_interval), so the next test sees nothing of this one; end what is
    left after that. Only sessions of this test's own database are touched."""
    count = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{datname}' AND backend_type = 'client backend'"
    try:
        wait_until(f"the sessions of {datname} to end", lambda: livestack.psql(pg_server.dsn, count) == [["0"]],
                   timeout=10)
    except AssertionError:
        livestack.psql(pg_server.dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      f"WHERE datname = '{datname}' AND backend_type = 'client backend'")
        wait_until(f"the sessions of {datname} to end after pg_terminate_backend",
                   lambda: livestack.psql(pg_server.dsn, count) == [["0"]], timeout=5)


def start(stack, start_incident):
    stack.incident = start_incident(stack.datname, READERS)
    return stack.incident


def wait_for_firing(stack):
    """Wait until Prometheus has our alert firing and Alertmanager holds it; returns both
    views of it. Polled together and often: the window ends when the remediation resolves it."""
    seen = {}

    def probe():
        if "prometheus" not in seen:
            for alert in stack.prometheus.alerts():
                if stack.is_ours(alert["labels"]) and alert["state"] == "firing":
                    seen["prometheus"] = alert
        if "prometheus" in seen and "alertmanager" not in seen:
            for alert in stack.alertmanager.alerts():
                if stack.is_ours(alert["labels"]):
                    seen["alertmanager"] = alert
        return len(seen) == 2

    try:
        wait_until(f"{ALERT} for {stack.datname} firing in Prometheus and held by Alertmanager (seen: {sorted(seen)})",
                   probe, timeout=FIRING_TIMEOUT, interval=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{stack.failure_context()}") from None
    return seen["prometheus"], seen["alertmanager"]


def expected_alert_labels(stack):
    """One alert per database (the description names the pid, the remediator re-reads)."""
    return {"alertname": ALERT, "severity": "critical", OVERLAY_LABEL[0]: OVERLAY_LABEL[1],
            "instance": stack.exporter.address, "job": EXPORTER_JOB, "datname": stack.datname}


def sessions(incident, pids):
    """{pid: state} of those of `pids` still in pg_stat_activity."""
    rows = livestack.psql(incident.dsn, "SELECT pid, state FROM pg_stat_activity "
                                        f"WHERE pid IN ({', '.join(str(p) for p in pids)})")
    return {int(pid): state for pid, state in rows}


def all_idle(incident, pids):
    """True once every one of `pids` is connected and idle (its statement done), else raise
    an AssertionError showing where they are (wait_until reports it)."""
    now = sessions(incident, pids)
    assert now == {pid: "idle" for pid in pids}, f"sessions now: {now}"
    return True


def column_exists(incident):
    return livestack.psql(incident.dsn, "SELECT count(*) FROM information_schema.columns "
                                        "WHERE table_name = 'features' AND column_name = 'signature'") == [["1"]]


def terminate_decisions(metrics):
    """{(reason, dry_run): count} of the remediator's terminate decisions."""
    return {(dict(labels)["reason"], dict(labels)["dry_run"]): value
            for labels, value in samples(metrics, DECISIONS).items() if dict(labels)["action"] == "terminate"}


# --------------------------------------------------------------------- the overlays themselves

def test_deploy_config_overlays_change_only_what_their_contract_allows(tmp_path):
    """The overlays run deploy/'s files unchanged but for what their header comments list."""
    prom_text = DEPLOY_PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    am_text = DEPLOY_ALERTMANAGER_CONFIG.read_text(encoding="utf-8")
    for text, needles in ((prom_text, (livestack.DEPLOY_EXPORTER, livestack.DEPLOY_REMEDIATOR,
                                       livestack.DEPLOY_ALERTMANAGER)),
                          (am_text, (livestack.DEPLOY_WEBHOOK_URL, livestack.DEPLOY_TOKEN_FILE))):
        header = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), text.splitlines()))
        assert "OVERLAY CONTRACT" in header
        for needle in needles:
            assert needle in header, f"the contract comment no longer names {needle}"

    prom = yaml.safe_load(prom_text)
    addresses = {livestack.DEPLOY_EXPORTER: "127.0.0.1:1001", livestack.DEPLOY_REMEDIATOR: "127.0.0.1:1002",
                 livestack.DEPLOY_ALERTMANAGER: "127.0.0.1:1003"}
    rules = [tmp_path / "a.rules.yml", tmp_path / "a.time-scaled.rules.yml"]
    overlay = livestack.prometheus_overlay(prom, *addresses.values(), rules, "1s")
    replaced = set()
    for path, old, new in livestack.config_changes(prom, overlay):
        if path == ("rule_files",):
            assert old == ["alerts/*.rules.yml"] and new == [str(r) for r in rules]
        elif path[:1] == ("global",):
            assert path[1] in livestack.PROMETHEUS_INTERVAL_KEYS and new == "1s", path
        else:
            assert old in addresses and new == addresses[old], (path, old, new)
            replaced.add(old)
    assert replaced == set(addresses)
    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in overlay["scrape_configs"]}
    assert jobs == {EXPORTER_JOB: ["127.0.0.1:1001"], REMEDIATOR_JOB: ["127.0.0.1:1002"]}

    am = yaml.safe_load(am_text)
    url, token = "http://127.0.0.1:1002/webhook/alertmanager", str(tmp_path / "token")
    overlay = livestack.alertmanager_overlay(am, url, token, ALERTMANAGER_TIMINGS)
    changed = set()
    for path, old, new in livestack.config_changes(am, overlay):
        if old == livestack.DEPLOY_WEBHOOK_URL:
            assert new == url and path[-1] == "url"
        elif old == livestack.DEPLOY_TOKEN_FILE:
            assert new == token and path[-1] == "credentials_file"
        else:
            assert path[-1] in ALERTMANAGER_TIMINGS and new == ALERTMANAGER_TIMINGS[path[-1]], path
            assert path[:-1] == ("route",) or (
                path[:2] == ("route", "routes") and am["route"]["routes"][path[2]]["receiver"] == REMEDIATOR_RECEIVER
                and len(path) == 4), path
        changed.add(old)
    assert {livestack.DEPLOY_WEBHOOK_URL, livestack.DEPLOY_TOKEN_FILE} <= changed
    # The remediation route must still send the resolved notification the live test waits for.
    [route] = [r for r in overlay["route"]["routes"] if r["receiver"] == REMEDIATOR_RECEIVER]
    assert route["matchers"] == [f'alertname = "{ALERT}"']
    [receiver] = [r for r in overlay["receivers"] if r["name"] == REMEDIATOR_RECEIVER]
    assert receiver["webhook_configs"][0]["send_resolved"] is True


# --------------------------------------------------------------------- alert -> webhook -> termination

def test_alert_triggered_remediation_ends_exactly_the_root_blocker(remediation_stack, start_incident):
    stack = remediation_stack("e2e_remediation")
    started = time.monotonic()
    incident = start(stack, start_incident)
    waiting = [incident.migration_pid, *incident.reader_pids]

    # 1. The time-scaled alert fires in Prometheus for the worker, and reaches Alertmanager,
    #    which routes it to the remediator (and the humans).
    prom_alert, am_alert = wait_for_firing(stack)
    fired_after = time.monotonic() - started
    assert prom_alert["labels"] == expected_alert_labels(stack)
    assert f"pid {incident.worker_pid} " in prom_alert["annotations"]["description"]
    assert prom_alert["annotations"]["description"].startswith(f"1 root blocker(s) in database {stack.datname} ")
    assert f"with {READERS + 1} session(s) waiting" in prom_alert["annotations"]["description"]
    assert am_alert["labels"] == prom_alert["labels"]
    assert am_alert["status"]["state"] == "active", am_alert["status"]
    assert {r["name"] for r in am_alert["receivers"]} == {REMEDIATOR_RECEIVER, "humans"}

    # 2. The webhook arrives with the right token; the pass terminates the worker.
    def terminated():
        m = stack.remediator_metrics()
        return m if (sample(m, TERMINATIONS) or 0) >= 1 else None
    try:
        metrics = wait_until("the remediator to count a termination", terminated, timeout=REMEDIATION_TIMEOUT,
                             interval=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{stack.failure_context()}") from None
    remediated_after = time.monotonic() - started
    assert sample(metrics, REQUESTS, result="accepted") >= 1
    for result in ("unauthorized", "bad_request", "too_large"):
        assert sample(metrics, REQUESTS, result=result) == 0, result
    assert sample(metrics, TERMINATIONS) == 1
    assert terminate_decisions(metrics) == {("root_blocker", "false"): 1}
    assert sample(metrics, "pg_lock_remediator_termination_failures_total") == 0
    assert sample(metrics, "pg_lock_remediator_pass_errors_total") == 0
    assert sample(metrics, "pg_lock_remediator_dry_run") == 0
    accepted = sample(metrics, REQUESTS, result="accepted")
    ignored = sample(metrics, REQUESTS, result="ignored")

    # 3. Exactly the root blocker is gone; the migration completed; the readers got their rows.
    wait_until(f"worker pid {incident.worker_pid} to leave pg_stat_activity",
               lambda: sessions(incident, [incident.worker_pid]) == {}, timeout=SETTLE_TIMEOUT)
    wait_until("the migration and the readers to finish and sit idle", lambda: all_idle(incident, waiting),
               timeout=SETTLE_TIMEOUT)
    assert column_exists(incident), "the ALTER TABLE did not complete: features has no column signature"
    if int(livestack.psql(incident.dsn, "SHOW server_version_num")[0][0]) >= 140000:
        # PostgreSQL's own count: one session of this database ended by pg_terminate_backend.
        wait_until("pg_stat_database.sessions_killed = 1", lambda: livestack.psql(
            incident.dsn, f"SELECT sessions_killed FROM pg_stat_database WHERE datname = '{stack.datname}'") == [["1"]],
            timeout=SETTLE_TIMEOUT)

    lines = stack.audit_lines()
    done = [line for line in lines if line["result"] == "terminated"]
    assert len(done) == 1, lines
    assert {k: done[0][k] for k in ("pid", "datname", "application_name", "state", "action", "code",
                                    "blocked_sessions")} == {
        "pid": incident.worker_pid, "datname": stack.datname, "application_name": "worker",
        "state": "idle in transaction", "action": "terminate", "code": "root_blocker", "blocked_sessions": READERS + 1}
    assert not [line for line in lines if line["action"] == "terminate" and line is not done[0]], lines

    # 4. The alert resolves: keep_firing_for (3m / TIME_SCALE) elapses in Prometheus, which tells
    #    Alertmanager, whose resolved notification the remediator acknowledges and ignores.
    def resolved_in_prometheus():
        return not [a for a in stack.prometheus.alerts() if stack.is_ours(a["labels"])]
    wait_until(f"{ALERT} for {stack.datname} to resolve in Prometheus", resolved_in_prometheus,
               timeout=RESOLVE_TIMEOUT, interval=0.2)
    wait_until("Alertmanager to drop the resolved alert",
               lambda: not [a for a in stack.alertmanager.alerts() if stack.is_ours(a["labels"])],
               timeout=RESOLVE_TIMEOUT, interval=0.2)
    try:
        metrics = wait_until("the remediator to acknowledge the resolved notification (result=\"ignored\")",
                             lambda: (lambda m: m if sample(m, REQUESTS, result="ignored") > ignored else None)(
                                 stack.remediator_metrics()), timeout=RESOLVE_TIMEOUT, interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{stack.failure_context()}") from None
    resolved_after = time.monotonic() - started

    # ... and nothing was done twice: no new pass, no second termination.
    assert sample(metrics, REQUESTS, result="accepted") == accepted
    assert sample(metrics, TERMINATIONS) == 1
    assert terminate_decisions(metrics) == {("root_blocker", "false"): 1}
    assert [line["pid"] for line in stack.audit_lines() if line["result"] == "terminated"] == [incident.worker_pid]
    assert all_idle(incident, waiting)

    # Prometheus saw it all: the alert's firing history, the remediator's counter, no blocked session.
    history = stack.prometheus.query(f'max_over_time(ALERTS{{alertname="{ALERT}",alertstate="firing",'
                                     f'datname="{stack.datname}",{OVERLAY_LABEL[0]}="{OVERLAY_LABEL[1]}"}}[5m])')
    assert [h["metric"]["datname"] for h in history] == [stack.datname]
    wait_until("Prometheus to scrape the remediator's termination", lambda: [
        float(s["value"][1]) for s in stack.prometheus.query(f'{TERMINATIONS}{{job="{REMEDIATOR_JOB}"}}')] == [1.0],
        timeout=10)
    wait_until("pg_blocked_sessions 0 in Prometheus", lambda: [
        float(s["value"][1]) for s in stack.prometheus.query(
            f'pg_blocked_sessions{{job="{EXPORTER_JOB}",datname="{stack.datname}"}}')] == [0.0], timeout=10)
    print(f"\n{ALERT} fired after {fired_after:.1f}s, worker terminated after {remediated_after:.1f}s, "
          f"resolved notification acknowledged after {resolved_after:.1f}s (TIME_SCALE {TIME_SCALE})")


# --------------------------------------------------------------------- the negative: a wrong token

def test_alertmanager_with_a_wrong_token_terminates_nothing(remediation_stack, start_incident):
    stack = remediation_stack("e2e_unauthorized", alertmanager_token=secrets.token_urlsafe(32))
    incident = start(stack, start_incident)
    wait_for_firing(stack)

    try:
        wait_until("the remediator to reject Alertmanager's webhook (result=\"unauthorized\")",
                   lambda: sample(stack.remediator_metrics(), REQUESTS, result="unauthorized") >= 1,
                   timeout=REMEDIATION_TIMEOUT, interval=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{stack.failure_context()}") from None

    def failed_webhook_notifications():
        return sum(v for labels, v in samples(stack.alertmanager.metrics(), "alertmanager_notifications_failed_total")
                   .items() if dict(labels).get("integration") == "webhook")
    wait_until("Alertmanager to count the failed webhook notification", failed_webhook_notifications, timeout=10)

    metrics = stack.remediator_metrics()
    assert sample(metrics, REQUESTS, result="accepted") == 0
    assert sample(metrics, TERMINATIONS) == 0
    assert sample(metrics, "pg_lock_remediator_passes_total") == 0
    assert terminate_decisions(metrics) == {}
    assert stack.audit_lines() == []
    assert "webhook rejected: missing or wrong bearer token" in stack.remediator.process.log_text()
    # The incident is exactly as it was: the worker idle in transaction, everyone else waiting.
    assert incident.problems() == []
    assert not column_exists(incident)
