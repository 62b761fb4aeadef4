"""The bundled alert rules and Grafana dashboard against a live Prometheus.

A real Prometheus scrapes the real exporter every second while a real PostgreSQL is in the
seed incident (worker idle in transaction -> alembic's ALTER TABLE -> INCIDENT_READERS web
SELECTs). It loads the shipped alerts/*.rules.yml unmodified and, beside them, a time-scaled
copy (the mixin rendered by tests/rules/time-scaled.jsonnet: thresholds on age metrics and
`for`/`keep_firing_for` divided by TIME_SCALE), so the minute-scale alerts fire within seconds.
See docs/testing.md.
"""

import importlib.util
import json
import math
import re
import secrets
import subprocess
import sys
import time

import pytest
import yaml

import livestack
from livestack import EXPORTER_JOB, INCIDENT_READERS, OVERLAY_LABEL, PROBE_JOB, REPO, STOPPED_TARGET, TIME_SCALE

OVERLAY = {OVERLAY_LABEL[0]: OVERLAY_LABEL[1]}
# How long the overlay's alerts may take to fire, counted from the start of the test that
# waits: the slowest is PostgresLongRunningTransaction critical, 3600s/120 = 30s of transaction
# age plus for 2m/120 = 1s; the incident is already a few seconds old by then.
FIRING_TIMEOUT = 60

# Alerts the incident must not raise, and why. Together with the keys of expected_firing()
# this must name every alert in the rule files, so a new alert has to be classified here.
QUIET = {
    "PostgresExporterDown": "the exporter is scraped and reaches PostgreSQL",
    "PostgresExporterScrapeErrors": "every collection succeeds",
    "PgBouncerAdminConsoleUnreadable": "no --pgbouncer.dsn is configured, so there is no pg_pgbouncer_up",
    "PostgresDeadlocks": "the incident is a lock queue, not a deadlock",
    "PostgresBlockingEpisodesRepeatedlyLong": "the incident is one blocking episode, still going on: none has ended",
    "PostgresConnectionsNearLimit": "a handful of sessions against max_connections=200",
    "PostgresRemediationFailed": "no remediator runs",
    "PostgresRemediationExecuted": "no remediator runs",
    "PostgresRemediatorWebhookRejected": "no remediator runs",
    "PostgresRemediatorDown": "no remediator job is configured, so there is no up{job=~\"pg_lock_remediator.*\"}",
}


def expected_firing(incident):
    """(alertname, severity) -> the label sets (besides alertname, severity, instance, job and
    rule_set) of every alert the time-scaled rules must fire for the incident."""
    db = incident.datname
    worker_group = {"datname": db, "usename": "postgres", "application_name": "worker"}
    return {
        ("PostgresBlockerIdleInTransaction", "critical"): [{"datname": db}],
        ("PostgresSessionsBlocked", "warning"): [{"datname": db}],
        ("PostgresLockWaitTooLong", "warning"): [{"datname": db}],
        ("PostgresLockWaitTooLong", "critical"): [{"datname": db}],
        ("PostgresIdleInTransactionTooLong", "warning"): [worker_group],
        ("PostgresIdleInTransactionTooLong", "critical"): [worker_group],
        # the worker's transaction, and alembic's (its ALTER TABLE started a transaction too)
        ("PostgresLongRunningTransaction", "warning"): [{"datname": db, "state": "idle in transaction"},
                                                        {"datname": db, "state": "active"}],
        ("PostgresLongRunningTransaction", "critical"): [{"datname": db, "state": "idle in transaction"},
                                                         {"datname": db, "state": "active"}],
        # the incident's sessions are user postgres's; nobody sets the timeout
        ("PostgresIdleInTransactionTimeoutDisabled", "info"): [
            {"datname": db, "usename": "postgres", "name": "idle_in_transaction_session_timeout"}],
    }


def eventually(check, timeout, interval=0.5):
    """Run check() until it stops raising AssertionError; re-raise the last one at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


def frozen(labels, drop=()):
    return frozenset((k, v) for k, v in labels.items() if k not in drop)


def value_of(sample):
    return float(sample["value"][1])


def shipped_rules(shipped_rule_files):
    """[(group name, rule dict)] of every shipped rule file."""
    out = []
    for path in shipped_rule_files:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            out += [(group["name"], rule) for rule in group["rules"]]
    return out


def ours(alert, incident, exporter):
    """Alerts about this test's exporter and incident database (instance-wide ones included)."""
    labels = alert["labels"]
    return labels.get("instance") in (None, exporter.address) and labels.get("datname") in (None, incident.datname)


def pg_major(incident):
    return int(livestack.psql(incident.dsn, "SHOW server_version_num")[0][0]) // 10000


@pytest.fixture
def incident(incident, pg_server):
    """The session's incident (conftest.py), checked before and after each test: if something
    outside the test ends one of its sessions, say so instead of failing on a missing alert."""
    def check(when):
        problems = incident.problems()
        if problems:
            log = (pg_server.directory / "server.log").read_text(errors="replace").splitlines()[-15:]
            pytest.fail(f"the incident is no longer intact {when}: {'; '.join(problems)}\n"
                        "PostgreSQL log:\n  " + "\n  ".join(log), pytrace=False)
    check("before the test")
    yield incident
    check("after the test")


# --------------------------------------------------------------------- the overlay itself

# Gauges that grow one second per second while the incident lasts: the thresholds compared with
# them are time thresholds, which the time-scaled rules divide by TIME_SCALE.
AGE_METRICS = ("pg_idle_in_transaction_seconds", "pg_transaction_age_seconds_max", "pg_lock_wait_seconds_max",
               "pg_blocking_root_state_seconds", "pg_blocking_root_idle_in_transaction_seconds_max")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def seconds(duration):
    return sum(int(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


def test_time_scaled_rules_differ_from_the_shipped_only_by_time(shipped_rule_files, rule_overlay):
    """What the mixin renders for the live tests is the shipped rules with `for`, keep_firing_for
    and every threshold on an age metric divided by TIME_SCALE; a threshold on an age metric that
    _config does not reach (left unscaled) fails here."""
    [shipped_path] = shipped_rule_files
    shipped = yaml.safe_load(shipped_path.read_text(encoding="utf-8"))["groups"]
    scaled = yaml.safe_load(rule_overlay.read_text(encoding="utf-8"))["groups"]
    assert [g["name"] + "-time-scaled" for g in shipped] == [g["name"] for g in scaled]
    age_thresholds = set()
    for old, new in zip([r for g in shipped for r in g["rules"]], [r for g in scaled for r in g["rules"]], strict=True):
        where = (old["alert"], old["labels"]["severity"])
        assert new["labels"] == {**old["labels"], **OVERLAY}, where
        assert NUMBER.sub("N", new["expr"]) == NUMBER.sub("N", old["expr"]), where
        comparison = rf"\b({'|'.join(AGE_METRICS)})(\{{[^}}]*\}})?\s*[<>=!]+\s*({NUMBER.pattern})"
        for (_, _, a), (_, _, b) in zip(re.findall(comparison, old["expr"]), re.findall(comparison, new["expr"]), strict=True):
            assert float(b) == pytest.approx(float(a) / TIME_SCALE), where
            age_thresholds.add(where)
        for other in set(NUMBER.findall(new["expr"])) - {b for *_, b in re.findall(comparison, new["expr"])}:
            assert other in NUMBER.findall(old["expr"]), (where, other)
        assert set(new) == set(old), where
        for key in ("for", "keep_firing_for"):
            if key in old:
                assert seconds(new[key]) == pytest.approx(seconds(old[key]) / TIME_SCALE), where
        # The annotations name a scaled `for` where they name one ("for 5 minutes" -> "for 2500ms").
        durations = re.compile(r"\b\d+ minutes\b|\b\d+ms\b")
        assert {k: durations.sub("D", v) for k, v in new["annotations"].items()} == \
               {k: durations.sub("D", v) for k, v in old["annotations"].items()}, where
    assert age_thresholds == {
        ("PostgresBlockerIdleInTransaction", "critical"),
        ("PostgresLockWaitTooLong", "warning"), ("PostgresLockWaitTooLong", "critical"),
        ("PostgresIdleInTransactionTooLong", "warning"), ("PostgresIdleInTransactionTooLong", "critical"),
        ("PostgresLongRunningTransaction", "warning"), ("PostgresLongRunningTransaction", "critical"),
    }


# --------------------------------------------------------------------- the live stack

def test_exporter_series_in_prometheus_describe_the_incident_exactly(incident, exporter, prometheus):
    """What Prometheus stored from the exporter: the numbers the alerts and panels stand on."""
    db, sel = incident.datname, f'job="{EXPORTER_JOB}",instance="{exporter.address}"'

    def check():
        one = lambda expr: [value_of(s) for s in prometheus.query(expr)]  # noqa: E731
        assert one(f"up{{{sel}}}") == [1]
        assert one(f"pg_up{{{sel}}}") == [1]
        assert one(f'pg_blocked_sessions{{{sel},datname="{db}"}}') == [INCIDENT_READERS + 1]
        assert one(f'pg_blocked_sessions{{{sel},datname="postgres"}}') == [0]
        assert one(f'pg_blocking_chain_depth_max{{{sel},datname="{db}"}}') == [2]
        roots = prometheus.query(f'pg_blocking_root_sessions{{{sel},datname="{db}"}}')
        assert {(r["metric"]["state"], value_of(r)) for r in roots} == {("idle in transaction", 1)}
        blockers = prometheus.query(f'pg_blocking_root_blocked_sessions{{{sel},datname="{db}"}}')
        assert [(b["metric"]["pid"], b["metric"]["application_name"], b["metric"]["state"], value_of(b))
                for b in blockers] == [(str(incident.worker_pid), "worker", "idle in transaction",
                                        INCIDENT_READERS + 1)]
        assert one(f'pg_sessions{{{sel},datname="{db}",application_name="web",state="active"}}') == [INCIDENT_READERS]
        assert one(f'pg_sessions{{{sel},datname="{db}",application_name="worker",state="idle in transaction"}}') == [1]
        assert one(f'pg_setting_seconds{{{sel},name="idle_in_transaction_session_timeout"}}') == [0]
        assert one(f'pg_role_setting_seconds{{{sel},datname="{db}",usename="postgres",'
                   f'name="idle_in_transaction_session_timeout"}}') == [0]
        assert one(f'pg_blocking_root_idle_in_transaction_sessions{{{sel},datname="{db}"}}') == [1]
        assert one(f'pg_blocking_root_idle_in_transaction_sessions{{{sel},datname="postgres"}}') == [0]
        [age] = one(f'pg_blocking_root_idle_in_transaction_seconds_max{{{sel},datname="{db}"}}')
        [worker_age] = one(f'pg_blocking_root_state_seconds{{{sel},datname="{db}",pid="{incident.worker_pid}"}}')
        assert age == worker_age > 0

    eventually(check, timeout=15)
    # The pid label names the session pg_stat_activity reports as idle in transaction.
    assert livestack.psql(incident.dsn, f"SELECT state, application_name FROM pg_stat_activity "
                                        f"WHERE pid = {incident.worker_pid}") == [["idle in transaction", "worker"]]


def test_every_rule_file_loads_and_evaluates_cleanly(incident, prometheus, shipped_rule_files, rule_files):
    loaded = {}
    for group in prometheus.rule_groups():
        loaded[(group["file"], group["name"])] = group
        for rule in group["rules"]:
            assert rule["health"] == "ok", (group["name"], rule["name"], rule.get("lastError"))
            assert not rule.get("lastError"), (group["name"], rule["name"], rule["lastError"])
    for path in rule_files:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            got = loaded.get((str(path.resolve()), group["name"]))
            assert got is not None, f"Prometheus did not load group {group['name']} of {path}"
            assert [r["name"] for r in got["rules"]] == [r.get("alert") or r.get("record") for r in group["rules"]]
    # The shipped expressions, byte for byte as shipped, through the query API.
    for group, rule in shipped_rules(shipped_rule_files):
        prometheus.query(rule["expr"])


def test_time_scaled_alerts_fire_with_the_incident_labels(incident, exporter, prometheus, shipped_rule_files):
    expected = expected_firing(incident)
    all_names = {r["alert"] for _, r in shipped_rules(shipped_rule_files) if "alert" in r}
    assert {a for a, _ in expected} | set(QUIET) == all_names, "classify every alert as expected or QUIET"
    assert not {a for a, _ in expected} & set(QUIET)
    shipped_pairs = {(r["alert"], r["labels"]["severity"]) for _, r in shipped_rules(shipped_rule_files)
                     if r.get("alert") in {a for a, _ in expected}}
    assert shipped_pairs == set(expected), "every severity tier of an expected alert must be expected"

    base = {"instance": exporter.address, "job": EXPORTER_JOB, **OVERLAY}
    want = {frozen({**labels, **base, "alertname": name, "severity": sev})
            for (name, sev), sets in expected.items() for labels in sets}

    def scaled_alerts():
        return [a for a in prometheus.alerts() if a["labels"].get(OVERLAY_LABEL[0]) == OVERLAY_LABEL[1]
                and ours(a, incident, exporter)]

    def all_firing():
        got = {frozen(a["labels"]): a["state"] for a in scaled_alerts()}
        missing = want - {k for k, state in got.items() if state == "firing"}
        assert not missing, f"not firing yet: {sorted(dict(m)['alertname'] for m in missing)}"
        return got

    got = eventually(all_firing, timeout=FIRING_TIMEOUT)
    assert set(got) == want, f"unexpected alerts: {[dict(k) for k in set(got) - want]}"

    alerts = {frozen(a["labels"]): a for a in scaled_alerts()}
    for key, alert in alerts.items():
        for text in alert["annotations"].values():
            assert "error expanding template" not in text and "<no value>" not in text, (dict(key), text)
    by_name = {}
    for alert in alerts.values():
        by_name.setdefault((alert["labels"]["alertname"], alert["labels"]["severity"]), []).append(alert)
    [blocked] = by_name[("PostgresSessionsBlocked", "warning")]
    assert float(blocked["value"]) == INCIDENT_READERS + 1
    [blocker] = by_name[("PostgresBlockerIdleInTransaction", "critical")]
    description = blocker["annotations"]["description"]
    assert description.startswith(f"1 root blocker(s) in database {incident.datname} on {exporter.address} "), description
    assert f"with {INCIDENT_READERS + 1} session(s) waiting" in description
    assert f"pid {incident.worker_pid} (user postgres, application \"worker\", client local)" in description
    [wait] = by_name[("PostgresLockWaitTooLong", "critical")]
    assert f"Top root blocker: pid {incident.worker_pid} " in wait["annotations"]["description"]
    # --web.external-url reaches the alerts: each that names a root or a database links the page.
    assert blocker["annotations"]["tree_url"] == "https://pg-lock.example.com/tree"
    assert wait["annotations"]["tree_url"] == "https://pg-lock.example.com/tree"

    # Each alert with a `for` went through pending first (ALERTS keeps the history).
    pending = prometheus.query(f'max_over_time(ALERTS{{alertstate="pending",{OVERLAY_LABEL[0]}="{OVERLAY_LABEL[1]}",'
                               f'instance="{exporter.address}"}}[10m])')
    assert {(p["metric"]["alertname"], p["metric"]["severity"]) for p in pending} >= set(expected)

    # Nothing else is active: neither the quiet alerts (scaled or shipped) nor a tier not expected.
    for alert in prometheus.alerts():
        if ours(alert, incident, exporter):
            assert alert["labels"]["alertname"] not in QUIET, alert


def test_shipped_rules_raise_the_immediate_alerts_unmodified(incident, exporter, prometheus):
    """The shipped file, not the overlay: alerts whose condition holds from the incident's first
    second go pending (their `for:` is minutes, so they cannot have fired yet)."""
    base = {"instance": exporter.address, "job": EXPORTER_JOB}
    want = {
        frozen({**base, "alertname": "PostgresSessionsBlocked", "severity": "warning", "datname": incident.datname}),
        frozen({**base, "alertname": "PostgresIdleInTransactionTimeoutDisabled", "severity": "info",
                "datname": incident.datname, "usename": "postgres", "name": "idle_in_transaction_session_timeout"}),
    }

    def check():
        got = {frozen(a["labels"]): a for a in prometheus.alerts()
               if OVERLAY_LABEL[0] not in a["labels"] and ours(a, incident, exporter)}
        assert want <= set(got), f"shipped alerts active: {[dict(k) for k in got]}"
        for key in want:
            assert got[key]["state"] in ("pending", "firing")
        return got

    got = eventually(check, timeout=15)
    [blocked] = [a for k, a in got.items() if dict(k)["alertname"] == "PostgresSessionsBlocked"]
    assert float(blocked["value"]) == INCIDENT_READERS + 1


def test_every_rule_expression_selects_exactly_the_incident(incident, exporter, prometheus, rule_overlay,
                                                            shipped_rule_files):
    """Each time-scaled expression through /api/v1/query: the expected alerts' series, nothing
    for the quiet ones."""
    expected = expected_firing(incident)
    base = {"instance": exporter.address, "job": EXPORTER_JOB}
    rules = [r for group in yaml.safe_load(rule_overlay.read_text(encoding="utf-8"))["groups"] for r in group["rules"]]

    def check():
        for rule in rules:
            key = (rule["alert"], rule["labels"]["severity"])
            # a comparison without `bool` keeps the metric name; alerts drop it
            got = {frozen(s["metric"], drop=("__name__",)) for s in prometheus.query(rule["expr"])
                   if s["metric"].get("datname") in (None, incident.datname)
                   and s["metric"].get("instance") == exporter.address}
            if rule["alert"] in QUIET:
                assert got == set(), (key, QUIET[rule["alert"]], got)
            else:
                assert got == {frozen({**labels, **base}) for labels in expected[key]}, (key, got)

    eventually(check, timeout=FIRING_TIMEOUT)


# --------------------------------------------------------------------- the dashboards

def _checker():
    spec = importlib.util.spec_from_file_location("check_dashboards", REPO / "scripts" / "check_dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REASONS = _checker().MAY_BE_EMPTY_REASONS

# Queries that return nothing in this scenario, each with the checker's reason that applies:
# no remediator is scraped here, and the incident is one blocking episode still going on (no
# episode has ended, so a duration quantile has no observations). Any other query, including the ones the checker marks
# may_be_empty for reasons the incident does not meet (sessions, locks, blocking, firing
# alerts), must return data, so a panel that goes empty fails this test.
EMPTY_HERE = {
    ("pg-lock-overview", "Remediations", "A"): "no-remediator",
    ("pg-lock-overview", "Remediation decisions", "A"): "no-remediator",
    ("pg-lock-overview", "Terminations and failures", "A"): "no-remediator",
    ("pg-lock-overview", "Terminations and failures", "B"): "no-remediator",
    ("pg-lock-overview", "Webhook requests by result", "A"): "no-remediator",
    ("pg-lock-overview", "Last remediation action", "A"): "no-remediator",
    ("pg-lock-overview", "variable:remediator_job", "query"): "no-remediator",
    ("pg-lock-overview", "Episode duration quantiles", "A"): "no-ended-episode",
    ("pg-lock-overview", "Episode duration quantiles", "B"): "no-ended-episode",
    ("pg-lock-overview", "Episode duration quantiles", "C"): "no-ended-episode",
}
# Only on servers older than 14 (pg_stat_database lacks the session statistics).
EMPTY_BEFORE_PG14 = {
    ("pg-lock-overview", "Time spent idle in transaction", "A"),
    ("pg-lock-overview", "Deadlocks, killed and abandoned sessions", "B"),
    ("pg-lock-overview", "Deadlocks, killed and abandoned sessions", "C"),
}


def dashboard_exprs():
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "check_dashboards.py"), "--list-exprs",
                          "--rate-interval", "1m", "--range", "1h"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"check_dashboards.py --list-exprs failed:\n{out.stderr}"
    records = json.loads(out.stdout)
    assert records, "no dashboard expressions"
    return records


def evaluate(prometheus, record, now):
    """Series with at least one finite value, as Grafana would ask for them."""
    if record["instant"] or record["kind"] == "variable":
        series = [(s["metric"], [s["value"]]) for s in prometheus.query(record["expr"], at=now)]
    else:
        series = [(s["metric"], s["values"]) for s in prometheus.query_range(record["expr"], now - 60, now)]
    return [(m, vs) for m, vs in series if any(math.isfinite(float(v)) for _, v in vs)]


def test_every_dashboard_query_returns_data(incident, exporter, prometheus):
    records = dashboard_exprs()
    keys = {(r["uid"], r["panel"], r["refId"]): r for r in records}
    allowed_empty = dict(EMPTY_HERE)
    if pg_major(incident) < 14:
        allowed_empty.update({k: "before-pg14" for k in EMPTY_BEFORE_PG14})
    for key, reason in allowed_empty.items():
        assert key in keys, f"{key} is listed as empty here but the dashboard has no such query"
        assert REASONS[reason] in keys[key]["may_be_empty"], \
            f"{key}: check_dashboards.py does not list {reason!r} among its may_be_empty reasons"

    def check():
        now = time.time()
        empty, unexpected = [], []
        for key, record in keys.items():
            got = evaluate(prometheus, record, now)
            if key in allowed_empty and got:
                unexpected.append(f"{key} ({allowed_empty[key]}) returned {got[0][0]}")
            elif key not in allowed_empty and not got:
                empty.append(f"{key}: {record['expr']}")
        assert not empty, "queries without data:\n  " + "\n  ".join(empty)
        assert not unexpected, "queries listed as empty returned data:\n  " + "\n  ".join(unexpected)

    # The "Blocking alerts" annotation needs a firing alert: wait as long as the alerts may take.
    eventually(check, timeout=FIRING_TIMEOUT)

    # A few panels, value by value.
    now = time.time()
    last = lambda key: evaluate(prometheus, keys[key], now)  # noqa: E731
    [(_, values)] = last(("pg-lock-overview", "Blocked sessions", "A"))
    assert float(values[-1][1]) == INCIDENT_READERS + 1
    rows = last(("pg-lock-overview", "Current root blockers", "A"))
    assert [(m["pid"], m["application_name"], m["datname"], float(vs[-1][1])) for m, vs in rows] == \
        [(str(incident.worker_pid), "worker", incident.datname, INCIDENT_READERS + 1)]
    depth = {m["datname"]: float(vs[-1][1]) for m, vs in last(("pg-lock-overview", "Blocked sessions and root blockers",
                                                                "C"))}
    assert depth[incident.datname] == 2


# --------------------------------------------------------------------- /probe, every root, per-role guards
# These run last: they add sessions and change a role, which the exact checks above must not see.

def active(prometheus, **labels):
    """{(alertname, rule_set or 'shipped'): state} of the active alerts carrying these labels."""
    return {(a["labels"]["alertname"], a["labels"].get(OVERLAY_LABEL[0], "shipped")): a["state"]
            for a in prometheus.alerts() if all(a["labels"].get(k) == v for k, v in labels.items())}


def test_a_probe_target_whose_postgresql_is_stopped_fires_exporter_down(prometheus, probe_exporter):
    """Multi-target mode: the probe answers 200 (up 1) with pg_up 0; the /probe body's build_info
    is what lets the rule tell it from postgres_exporter's pg_up."""
    sel = f'job="{PROBE_JOB}",instance="{STOPPED_TARGET}"'

    def check():
        assert [value_of(s) for s in prometheus.query(f"up{{{sel}}}")] == [1]
        assert [value_of(s) for s in prometheus.query(f"pg_up{{{sel}}}")] == [0]
        assert [s["metric"]["version"] for s in prometheus.query(f"pg_lock_exporter_build_info{{{sel}}}")]
        got = [a for a in prometheus.alerts() if a["labels"].get("instance") == STOPPED_TARGET]
        states = {(a["labels"]["alertname"], a["labels"].get(OVERLAY_LABEL[0], "shipped")): a["state"] for a in got}
        # Time-scaled: for 1m -> 0.5s, so firing; shipped: for 1m, pending or (after a minute) firing.
        assert states.get(("PostgresExporterDown", OVERLAY_LABEL[1])) == "firing", states
        assert states.get(("PostgresExporterDown", "shipped")) in ("pending", "firing"), states
        assert set(states) == {("PostgresExporterDown", OVERLAY_LABEL[1]), ("PostgresExporterDown", "shipped")}, states
        return got

    got = eventually(check, timeout=15)
    [scaled] = [a for a in got if a["labels"].get(OVERLAY_LABEL[0]) == OVERLAY_LABEL[1]]
    assert scaled["labels"]["job"] == PROBE_JOB and scaled["labels"]["severity"] == "critical"
    assert scaled["annotations"]["description"] == (
        f"pg_lock_exporter at {STOPPED_TARGET} (job {PROBE_JOB}) answers but cannot collect from PostgreSQL (pg_up is 0): "
        "the server is down, restarting, or refusing the exporter's connection.")


SEVEN = 7


def test_seven_idle_in_transaction_roots_one_alert_and_the_remediator_ends_all_seven(
        incident, exporter, prometheus, pg_server, exporter_bin, workdir):
    """Seven sessions idle in transaction, each the root of an ALTER TABLE on its own table. The
    exporter names the top 5 roots of the server (the seed incident's and 4 of these); the
    per-database gauge counts all 7, the remediation alert fires once for the database, and
    `remediate --listen --execute` (cap 10) ends all seven."""
    db, directory = "seven_roots", workdir / "seven-roots"
    directory.mkdir(exist_ok=True)
    livestack.psql(pg_server.dsn, f'CREATE DATABASE "{db}"')
    dsn = pg_server.dsn_for(db)
    livestack.psql(dsn, "; ".join(f"CREATE TABLE t{i} (id int)" for i in range(SEVEN)))
    held = []
    try:
        roots = [livestack.HeldSession(dsn, f"forgotten{i}", f"BEGIN; SELECT count(*) FROM t{i};",
                                       directory / f"root{i}.log") for i in range(SEVEN)]
        held += roots
        livestack.wait_until("seven sessions idle in transaction", lambda: livestack.psql(
            dsn, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'idle in transaction'")
            == [[str(SEVEN)]], timeout=10)
        migrations = [livestack.HeldSession(dsn, f"migration{i}", f"ALTER TABLE t{i} ADD COLUMN c int;",
                                            directory / f"migration{i}.log") for i in range(SEVEN)]
        held += migrations
        livestack.wait_until("seven ALTER TABLEs waiting", lambda: livestack.psql(
            dsn, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND wait_event_type = 'Lock'")
            == [[str(SEVEN)]], timeout=10)
        root_pids = {int(p) for [p] in livestack.psql(
            dsn, f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND state = 'idle in transaction'")}
        sel = f'job="{EXPORTER_JOB}",instance="{exporter.address}",datname="{db}"'

        def fired():
            count = [value_of(s) for s in prometheus.query(f"pg_blocking_root_idle_in_transaction_sessions{{{sel}}}")]
            assert count == [SEVEN], count
            # The top 5 of the whole server: the seed incident's worker (4 waiters) and 4 of the 7.
            named = prometheus.query(f'pg_blocking_root_blocked_sessions{{job="{EXPORTER_JOB}",instance="{exporter.address}"}}')
            assert len(named) == 5, named
            here = {int(s["metric"]["pid"]) for s in named if s["metric"]["datname"] == db}
            assert len(here) == 4 and here < root_pids, named
            alerts = [a for a in prometheus.alerts() if a["labels"].get("datname") == db
                      and a["labels"]["alertname"] == "PostgresBlockerIdleInTransaction"]
            scaled = [a for a in alerts if a["labels"].get(OVERLAY_LABEL[0]) == OVERLAY_LABEL[1]]
            assert [a["state"] for a in scaled] == ["firing"], alerts
            return scaled[0]

        alert = eventually(fired, timeout=20)
        assert alert["annotations"]["description"].startswith(f"{SEVEN} root blocker(s) in database {db} ")
        assert f"with {SEVEN} session(s) waiting" in alert["annotations"]["description"]

        # The alert as Alertmanager would deliver it, to the remediator with a cap of 10.
        token = directory / "token"
        token.touch(mode=0o600)
        token.write_text(secrets.token_urlsafe(32))
        remediator = livestack.start_remediator(exporter_bin, dsn, directory / "remediator.log", [
            "--webhook.token-file", token, "--execute", "--min-idle", "1s", "--max-terminations", "10",
            "--max-terminations-per-minute", "10"])
        held.append(remediator)
        status, body = livestack.http_post_json(remediator.webhook_url, livestack.alertmanager_webhook(
            [(alert["labels"], alert["activeAt"])]), {"Authorization": f"Bearer {token.read_text()}"})
        assert status == 202, body
        wait_until = livestack.wait_until
        wait_until("the remediator to end seven sessions", lambda: livestack.sample(
            remediator.metrics(), "pg_lock_remediator_terminations_total") == SEVEN, timeout=15)
        metrics = remediator.metrics()
        assert livestack.sample(metrics, "pg_lock_remediator_passes_total") == 1
        assert livestack.sample(metrics, "pg_lock_remediator_termination_failures_total") == 0

        def done():
            rows = livestack.psql(dsn, f"SELECT pid, application_name, state FROM pg_stat_activity WHERE datname = '{db}' "
                                       "AND application_name ~ '^(forgotten|migration)'")
            assert {int(pid) for pid, _, _ in rows} & root_pids == set(), rows
            assert sorted((app, state) for _, app, state in rows) == [(f"migration{i}", "idle") for i in range(SEVEN)]
        eventually(done, timeout=10)
        # Every ALTER TABLE went through.
        assert livestack.psql(dsn, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'c'") \
            == [[str(SEVEN)]]
    finally:
        for process in reversed(held):
            process.stop()
        livestack.psql(pg_server.dsn, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_a_role_setting_shows_per_role_and_silences_the_guard_alert_for_that_role(
        incident, exporter, prometheus, pg_server, workdir):
    """`ALTER ROLE app SET idle_in_transaction_session_timeout = '30s'` while the server has none:
    pg_role_setting_seconds says 30 for role app, the disabled-guard alert goes for that role and
    stays for the incident's role postgres in the same database."""
    db, name = incident.datname, "idle_in_transaction_session_timeout"
    livestack.psql(pg_server.dsn, "DO $$BEGIN CREATE ROLE app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
    session = livestack.HeldSession(livestack.dsn_with(pg_server.dsn_for(db), user="app"), "app-api", "SELECT 1;",
                                    workdir / "app-session.log")
    sel = f'job="{EXPORTER_JOB}",instance="{exporter.address}",datname="{db}",name="{name}"'
    try:
        def guard(usename):
            return [value_of(s) for s in prometheus.query(f'pg_role_setting_seconds{{{sel},usename="{usename}"}}')]

        def disabled():
            assert guard("app") == [0]
            states = active(prometheus, alertname="PostgresIdleInTransactionTimeoutDisabled", datname=db, usename="app")
            assert states.get(("PostgresIdleInTransactionTimeoutDisabled", OVERLAY_LABEL[1])) == "firing", states
        eventually(disabled, timeout=20)

        livestack.psql(pg_server.dsn, f"ALTER ROLE app SET {name} = '30s'")

        def guarded():
            assert guard("app") == [30]
            assert guard("postgres") == [0]
            assert [value_of(s) for s in prometheus.query(
                f'pg_setting_seconds{{job="{EXPORTER_JOB}",instance="{exporter.address}",name="{name}"}}')] == [0]
            assert active(prometheus, alertname="PostgresIdleInTransactionTimeoutDisabled", datname=db, usename="app") == {}
            assert active(prometheus, alertname="PostgresIdleInTransactionTimeoutDisabled", datname=db,
                          usename="postgres").get(("PostgresIdleInTransactionTimeoutDisabled", OVERLAY_LABEL[1])) == "firing"
        eventually(guarded, timeout=15)
        # What a login of role app really gets now.
        assert livestack.psql(livestack.dsn_with(pg_server.dsn_for(db), user="app"), f"SHOW {name}") == [["30s"]]
    finally:
        session.stop()
        livestack.psql(pg_server.dsn, f"ALTER ROLE app RESET {name}")
