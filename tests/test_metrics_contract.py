"""docs/metrics.md against what the binary really exports, in both directions.

Real processes against the session's sandbox PostgreSQL, with the seed incident running (so the
per-root, transaction and lock families have samples whose labels can be compared):
  one         `serve --dsn ... --sample.interval 1s`, its /metrics
  probe       `serve --config.file ... --sample.interval 1s` with one target, /probe?target=main
  self        the same process's own /metrics
  remediator  `remediate --listen` (dry run), /metrics after one webhook-triggered pass
For each, the metric families (from `# TYPE`) must be exactly the table's rows that list it, with
the table's type, and every sample's label names must be exactly the row's labels. A family
exported but undocumented fails, and so does a documented one that is not exported.
"""

import re
import secrets
import sys
import time

import pytest

import livestack
from livestack import REPO, wait_until

DOC = REPO / "docs" / "metrics.md"
ENDPOINTS = ("one", "probe", "self", "remediator")
_ROW = re.compile(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|")
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.M)


def documented():
    """{metric: (type, frozenset(labels), frozenset(where), needs)} from the table of docs/metrics.md."""
    rows = {}
    in_metrics = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_metrics = line.strip() == "## Metrics"
            continue
        m = _ROW.match(line) if in_metrics else None
        if not m:
            continue
        name, kind, labels, where, needs = (g.strip() for g in m.groups())
        assert name not in rows, f"docs/metrics.md lists {name} twice"
        where_set = frozenset(w.strip() for w in where.split(",") if w.strip())
        assert where_set and where_set <= set(ENDPOINTS), f"{name}: unknown 'where' {where!r}"
        assert kind in ("gauge", "counter", "histogram"), f"{name}: type {kind!r}"
        rows[name] = (kind, frozenset(re.findall(r"`([a-z_]+)`", labels)), where_set, needs)
    assert len(rows) > 30, "the metric table of docs/metrics.md was not found"
    return rows


def exported(body):
    """{family: (type, set of label-name sets of its samples)} of one exposition body."""
    text = body.decode()
    families = {name: (kind, set()) for name, kind in _TYPE.findall(text)}
    for (name, labels), _ in livestack.parse_metrics(text).items():
        keys = frozenset(k for k, _ in labels)
        # A histogram's samples are NAME_bucket (with `le`), NAME_sum and NAME_count.
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and families.get(base, ("",))[0] == "histogram":
                assert (suffix == "_bucket") == ("le" in keys), f"histogram sample {name} with labels {sorted(keys)}"
                name, keys = base, keys - {"le"}
                break
        assert name in families, f"sample {name} has no # TYPE line"
        families[name][1].add(keys)
    return families


@pytest.fixture(scope="module")
def bodies(exporter_bin, pg_server, incident, workdir):
    """{endpoint: exposition body} of the four ways the binary serves metrics."""
    directory = workdir / "contract"
    directory.mkdir(exist_ok=True)
    processes = []
    # A PgBouncer in front of the server, named by both exporters: its families and labels are
    # part of the contract too.
    bouncer = livestack.PgBouncer(directory / "pgbouncer", pg_server, "postgres")
    processes.append(bouncer)
    livestack.psql(bouncer.dsn(), "SELECT 1")  # the pool exists once a client has used it
    try:
        one = livestack.start_exporter(exporter_bin, pg_server.dsn, directory / "one.log",
                                       extra_args=["--sample.interval", "1s", "--web.external-url", "https://pg.example.com/locks",
                                                   "--pgbouncer.dsn", bouncer.admin_dsn(),
                                                   "--pgbouncer.password-file", bouncer.password_file])
        processes.append(one)
        config = directory / "targets.yml"
        config.write_text(f'targets:\n  main:\n    dsn: "{pg_server.dsn}"\n    pgbouncers:\n'
                          f'      - dsn: "{bouncer.admin_dsn()}"\n        password_file: {bouncer.password_file}\n')
        multi = livestack.ManagedProcess("pg_lock_exporter multi-target", [
            exporter_bin, "serve", "--config.file", config, "--web.listen-address", "127.0.0.1:0", "--sample.interval", "1s",
            "--web.external-url", "https://pg.example.com/locks/"],
            directory / "multi.log")
        processes.append(multi)
        multi_address = livestack.wait_listening(multi, "the multi-target exporter")
        token = directory / "token"
        token.touch(mode=0o600)
        token.write_text(secrets.token_urlsafe(32))
        remediator = livestack.start_remediator(exporter_bin, incident.dsn, directory / "remediator.log",
                                                ["--webhook.token-file", token, "--min-idle", "0s"])
        processes.append(remediator)

        # One dry-run pass, so the decisions family has samples.
        alert = {"alertname": "PostgresBlockerIdleInTransaction", "datname": incident.datname, "severity": "critical"}
        status, body = livestack.http_post_json(remediator.webhook_url, livestack.alertmanager_webhook(
            [(alert, "2026-01-01T00:00:00Z")]), {"Authorization": f"Bearer {token.read_text()}"})
        assert status == 202, body
        wait_until("the remediator's dry-run pass",
                   lambda: (livestack.sample(remediator.metrics(), "pg_lock_remediator_passes_total") or 0) >= 1,
                   timeout=15)
        # A background sample in before the scrape (--sample.interval 1s).
        time.sleep(1.2)

        def get(url):
            status, body = livestack.http_get(url)
            assert status == 200, f"GET {url}: HTTP {status}"
            return body

        out = {
            "one": get(one.url),
            "probe": get(f"http://{multi_address}/probe?target=main"),
            "self": get(f"http://{multi_address}/metrics"),
            "remediator": get(f"http://{remediator.address}/metrics"),
        }
        assert livestack.sample(livestack.parse_metrics(out["one"]), "pg_up") == 1
        assert livestack.sample(livestack.parse_metrics(out["probe"]), "pg_up") == 1
        for endpoint in ("one", "probe"):
            assert livestack.sample(livestack.parse_metrics(out[endpoint]), "pg_pgbouncer_up", pgbouncer=bouncer.name) == 1, endpoint
        for endpoint, tree in (("one", "tree"), ("probe", "tree?target=main")):
            assert livestack.sample(livestack.parse_metrics(out[endpoint]), "pg_lock_exporter_web_info",
                                    external_url="https://pg.example.com/locks/",
                                    tree_url=f"https://pg.example.com/locks/{tree}") == 1, endpoint
        yield out
    finally:
        for p in reversed(processes):
            p.stop()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_exported_families_are_exactly_the_documented_ones(bodies, endpoint):
    doc = {name: row for name, row in documented().items() if endpoint in row[2]}
    got = exported(bodies[endpoint])
    undocumented = sorted(set(got) - set(doc))
    missing = sorted(set(doc) - set(got))
    assert not undocumented, f"{endpoint}: exported but not in docs/metrics.md: {undocumented}"
    assert not missing, f"{endpoint}: in docs/metrics.md but not exported: {missing}"
    for name, (kind, label_sets) in got.items():
        assert kind == doc[name][0], f"{endpoint}: {name} is a {kind}, documented as {doc[name][0]}"
        for labels in label_sets:
            assert labels == doc[name][1], \
                f"{endpoint}: {name} has labels {sorted(labels)}, documented {sorted(doc[name][1])}"


def test_the_incident_gives_the_label_comparison_something_to_compare(bodies):
    """Families whose labels are only checked when they have samples: the incident provides them."""
    for endpoint, families in (("one", ["pg_blocking_root_blocked_sessions", "pg_blocking_root_state_seconds",
                                         "pg_transaction_age_seconds_max", "pg_locks", "pg_role_setting_seconds",
                                         "pg_blocked_session_seconds_total", "pg_pgbouncer_clients_waiting"]),
                               ("probe", ["pg_blocking_root_blocked_sessions", "pg_role_setting_seconds",
                                          "pg_lock_exporter_build_info"]),
                               ("remediator", ["pg_lock_remediator_decisions_total",
                                               "pg_lock_remediator_webhook_requests_total"])):
        got = exported(bodies[endpoint])
        for name in families:
            assert got[name][1], f"{endpoint}: {name} has no samples"


def test_a_wrong_document_fails_the_comparison(bodies, tmp_path, monkeypatch):
    """The check itself can fail: drop a row, add one, change a type."""
    original = DOC.read_text(encoding="utf-8")
    for broken, expect in [
        (original.replace("| `pg_up` | gauge |", "| `pg_up_renamed` | gauge |"), "exported but not in"),
        (original.replace("| `pg_max_connections` | gauge |", "| `pg_max_connections` | counter |"), "documented as"),
        (original.replace("| `pg_lock_remediator_dry_run` |", "| `pg_made_up` | gauge | | one | | nothing |\n"
                                                                  "| `pg_lock_remediator_dry_run` |", 1), "not exported"),
    ]:
        path = tmp_path / "metrics.md"
        path.write_text(broken, encoding="utf-8")
        monkeypatch.setattr(sys.modules[__name__], "DOC", path)
        with pytest.raises(AssertionError, match=expect):
            test_exported_families_are_exactly_the_documented_ones(bodies, "one")
