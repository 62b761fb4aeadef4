#!/usr/bin/env python3
"""Check the Grafana dashboards in dashboards/*.json.

Conventions enforced on every dashboard (one line per problem, exit status 1):
  * classic dashboard JSON with "id": null and a fixed "uid" of at most 40
    characters ([A-Za-z0-9_-]), unique across the files;
  * templating variables: "datasource" (type datasource, query prometheus) and the
    query variables "job", "instance", "datname", each multi-select with "All";
  * no hard-coded data source: every "datasource" is the $datasource variable;
  * every panel (rows excepted) has a title, a description and a unit
    (fieldConfig.defaults.unit), and at least one query;
  * every metric selector names a metric family the binary really exposes (read from a live
    scrape of `serve` during the seed incident on a scripts/pg-sandbox server, and of
    `remediate --listen`; a family's datname label is read off its series; a histogram's
    NAME_bucket, NAME_sum and NAME_count are its samples), is a row of the metric table of
    docs/metrics.md (the page tests/test_metrics_contract.py holds the binary to), and filters on
    the template variables: job=~"$job" and instance=~"$instance" (the remediator's
    metrics: job=~"$remediator_job"), plus datname=~"$datname" where the metric
    has a datname label;
  * range selectors use $__rate_interval ($__range is allowed for increase() in
    "over the selected range" panels); rate()/irate() always use $__rate_interval;
    counters (*_total) are only used inside a range function;
  * every expression parses: the template variables are replaced by valid values
    and all expressions go, as recording rules in one temporary rule file, through
    a single `promtool check rules` call.

--list-exprs prints every expression (panels, annotations, variable queries) after
substitution, as JSON, with the reasons it may legitimately return nothing; the
live-Prometheus test evaluates that list.

Usage:
  scripts/check_dashboards.py [--promtool PATH] [--exporter BINARY] [DASHBOARD.json ...]
  scripts/check_dashboards.py --list-exprs [--rate-interval 1m] [--range 1h] [DASHBOARD.json ...]

Needs the built binary (.build/debug/pg_lock_exporter or --exporter), PostgreSQL's server and
psql for the sandbox, tests/livestack.py's harness (PyYAML), promtool for the parse check, and
PyPI's promql-parser, which reads each expression's selectors and ranges (no PromQL is parsed
here by hand).
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The metric contract is the binary's real output, not a table kept by hand: live_contract()
# scrapes `serve` during the seed incident (so every per-database family has series to read
# its labels from) and `remediate --listen`. The incident's database is named here.
CONTRACT_DATABASE = "dashboard_contract"


class Contract:
    """Metric families the binary exposes. exporter: name -> carries a datname label (None when
    the scrape had no series of it to tell); remediator: the remediator's family names."""

    def __init__(self, exporter, remediator, documented=None):
        self.exporter = exporter
        self.remediator = remediator
        # docs/metrics.md's table: {metric: type}.
        self.documented = documented_metrics() if documented is None else documented


def families(body):
    """{series name PromQL selects: None when the scrape had no sample of it, else the label names
    seen}, read by prometheus_client's parser (a histogram NAME gives NAME_bucket, NAME_sum and
    NAME_count; the parser names a counter family without its _total)."""
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for family in text_string_to_metric_families(body):
        suffixes = HISTOGRAM_SUFFIXES if family.type == "histogram" else ("_total",) if family.type == "counter" else ("",)
        for suffix in suffixes:
            out.setdefault(family.name + suffix, None)
        for s in family.samples:
            out[s.name] = (out.get(s.name) or set()) | set(s.labels)
    return out


def live_contract(binary):
    """Scrape the real binary: `serve --sample.interval 100ms` against a scripts/pg-sandbox
    server with the seed incident running, and `remediate --listen` (a dry run) beside it."""
    if not os.access(binary, os.X_OK):
        sys.exit(f"check_dashboards: {binary} not found or not executable; build it (swift build) or pass --exporter")
    sys.path.insert(0, os.path.join(REPO, "tests"))
    import livestack  # the harness the live tests use: pg-sandbox, the incident, the binary

    work = tempfile.mkdtemp(prefix="check_dashboards.")
    os.chmod(work, 0o755)  # the sandbox's server runs as an unprivileged user when we are root
    pg = incident = exporter = remediator = None
    try:
        pg = livestack.start_pg_sandbox(os.path.join(work, "pg"))
        incident = livestack.start_incident(pg, CONTRACT_DATABASE, 1, os.path.join(work, "incident"))
        exporter = livestack.start_exporter(binary, pg.dsn, os.path.join(work, "exporter.log"),
                                            ["--sample.interval", "100ms", "--web.external-url", "https://pg.example.com/"])

        def scraped():
            body = livestack.http_get(exporter.url)[1].decode()
            seen = families(body)
            # Wait for the sampler's first counts and the incident's root blocker.
            return seen if "datname" in (seen.get("pg_blocking_episodes_total") or set()) \
                and seen.get("pg_blocking_root_blocked_sessions") else None
        exporter_families = livestack.wait_until("a scrape with the sampler's counters", scraped, timeout=15)

        token = os.path.join(work, "token")
        with open(token, "w") as f:
            f.write("dashboard-contract-token\n")
        remediator = livestack.ManagedProcess("remediator", [binary, "remediate", "--dsn", pg.dsn, "--listen", "127.0.0.1:0",
                                                             "--webhook.token-file", token], os.path.join(work, "remediator.log"))
        address = livestack.wait_listening(remediator, "the remediator")
        remediator_families = families(livestack.http_get(f"http://{address}/metrics")[1].decode())
    finally:
        for stop in (remediator, exporter, incident, pg):
            if stop is not None:
                stop.stop()
        shutil.rmtree(work, ignore_errors=True)
    return Contract(
        exporter={name: None if labels is None else "datname" in labels for name, labels in exporter_families.items()},
        remediator=set(remediator_families) - set(exporter_families))


HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRICS_DOC = os.path.join(REPO, "docs", "metrics.md")


def documented_metrics(path=METRICS_DOC):
    """{metric: type} of the table under "## Metrics" in docs/metrics.md, read as
    tests/test_metrics_contract.py reads it (first column the name in backticks, then the type)."""
    rows, in_metrics = {}, False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("## "):
                in_metrics = line.strip() == "## Metrics"
                continue
            m = re.match(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|([^|]*)\|", line) if in_metrics else None
            if m:
                rows[m.group(1)] = m.group(2).strip()
    return rows


def documented_family(metric, documented):
    """The docs/metrics.md row a selected metric belongs to (a histogram's NAME_bucket -> NAME), or None."""
    if metric in documented:
        return metric
    for suffix in HISTOGRAM_SUFFIXES:
        base = metric[:-len(suffix)]
        if metric.endswith(suffix) and documented.get(base) == "histogram":
            return base
    return None


# Prometheus' own series the dashboards may use; they carry the alert's labels.
PROMETHEUS_METRICS = {"ALERTS": True}

REQUIRED_VARIABLES = ("job", "instance", "datname")
KNOWN_UNITS = {
    "none", "short", "string", "locale", "percent", "percentunit", "s", "ms", "µs", "ns", "m", "h", "d",
    "dtdurations", "dtdurationms", "dthms", "dtdhms", "dateTimeAsIso", "dateTimeAsUS", "dateTimeFromNow",
    "cps", "cpm", "ops", "opm", "reqps", "rps", "wps", "iops", "bytes", "decbytes", "Bps",
}
# Expressions that may legitimately return nothing, keyed by (dashboard uid, panel
# title, refId); "variable:<name>" and "annotation:<name>" stand for those queries.
MAY_BE_EMPTY_REASONS = {
    "blocking": "nothing is blocked (these series exist only while some session waits on a lock)",
    "no-transaction": "no client session has a transaction open",
    "no-sessions": "the server has no client sessions besides the exporter's (session groups are 0-filled otherwise)",
    "no-locks": "no client session holds or waits for a heavyweight lock",
    "no-remediator": "no remediator (pg_lock_exporter remediate --listen) is scraped",
    "no-remediation-activity": "the remediator has not decided, acted or received a webhook yet",
    "no-alerts": "no blocking alert is firing (or no rules are loaded)",
    "before-pg14": "the server is older than PostgreSQL 14 (pg_stat_database has no session statistics)",
    "no-ended-episode": "no blocking episode ended in the interval (a quantile of no observations is NaN)",
    "no-external-url": "the exporter runs without --web.external-url (no page to link)",
}
MAY_BE_EMPTY = {
    ("pg-lock-overview", "Connections used", "A"): ["no-sessions"],
    ("pg-lock-overview", "Oldest idle in transaction", "A"): ["no-sessions"],
    ("pg-lock-overview", "Oldest transaction", "A"): ["no-transaction"],
    ("pg-lock-overview", "Remediations", "A"): ["no-remediator"],
    ("pg-lock-overview", "Blocked sessions and root blockers", "B"): ["blocking"],
    ("pg-lock-overview", "Current root blockers", "A"): ["blocking"],
    ("pg-lock-overview", "Current root blockers", "B"): ["blocking"],
    ("pg-lock-overview", "Current root blockers", "C"): ["no-external-url"],
    ("pg-lock-overview", "Guard settings by database and role", "A"): ["no-sessions"],
    ("pg-lock-overview", "Sessions by state", "A"): ["no-sessions"],
    ("pg-lock-overview", "Sessions by application", "A"): ["no-sessions"],
    ("pg-lock-overview", "Sessions by user", "A"): ["no-sessions"],
    ("pg-lock-overview", "Idle-in-transaction sessions by application", "A"): ["no-sessions"],
    ("pg-lock-overview", "Idle-in-transaction age by group", "A"): ["no-sessions"],
    ("pg-lock-overview", "Oldest transaction by state", "A"): ["no-transaction"],
    ("pg-lock-overview", "Time spent idle in transaction", "A"): ["before-pg14"],
    ("pg-lock-overview", "Deadlocks, killed and abandoned sessions", "B"): ["before-pg14"],
    ("pg-lock-overview", "Deadlocks, killed and abandoned sessions", "C"): ["before-pg14"],
    ("pg-lock-overview", "Granted locks by mode", "A"): ["no-locks"],
    ("pg-lock-overview", "Waiting locks by mode", "A"): ["blocking"],
    ("pg-lock-overview", "Remediation decisions", "A"): ["no-remediator", "no-remediation-activity"],
    ("pg-lock-overview", "Terminations and failures", "A"): ["no-remediator"],
    ("pg-lock-overview", "Terminations and failures", "B"): ["no-remediator"],
    ("pg-lock-overview", "Webhook requests by result", "A"): ["no-remediator", "no-remediation-activity"],
    ("pg-lock-overview", "Last remediation action", "A"): ["no-remediator", "no-remediation-activity"],
    ("pg-lock-overview", "Episode duration quantiles", "A"): ["no-ended-episode"],
    ("pg-lock-overview", "Episode duration quantiles", "B"): ["no-ended-episode"],
    ("pg-lock-overview", "Episode duration quantiles", "C"): ["no-ended-episode"],
    ("pg-lock-overview", "annotation:Blocking alerts", "expr"): ["no-alerts"],
    ("pg-lock-overview", "variable:remediator_job", "query"): ["no-remediator"],
}

VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
LABEL_VALUES_RE = re.compile(r"^\s*label_values\s*\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)
QUERY_RESULT_RE = re.compile(r"^\s*query_result\s*\((.*)\)\s*$", re.S)
UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class Problems:
    def __init__(self):
        self.lines = []

    def add(self, where, message):
        self.lines.append(f"{where}: {message}")


# --------------------------------------------------------------------- PromQL, by a real parser

# Grafana's range variables are not PromQL: each becomes a duration no dashboard writes, which the
# parser accepts and the walk below turns back into the variable.
RANGE_VARIABLES = {"$__rate_interval": 1001, "${__rate_interval}": 1001, "$__range": 1002, "${__range}": 1002,
                   "$__interval": 1003, "${__interval}": 1003}
SENTINELS = {1001: "$__rate_interval", 1002: "$__range", 1003: "$__interval"}
MATCH_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def parse_promql(expr):
    """The expression's syntax tree, by promql-parser (PyPI: the Rust promql-parser crate, which
    follows Prometheus's grammar); ValueError when it is not PromQL."""
    import promql_parser
    text = expr
    for variable, milliseconds in RANGE_VARIABLES.items():
        text = text.replace(f"[{variable}", f"[{milliseconds}ms").replace(f":{variable}]", f":{milliseconds}ms]")
    try:
        return promql_parser.parse(text)
    except Exception as e:  # noqa: BLE001 - the parser raises its own error types
        raise ValueError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def range_text(delta):
    """A range as the dashboard wrote it: the variable it stood for, else a plain duration."""
    milliseconds = round(delta.total_seconds() * 1000)
    if milliseconds in SENTINELS:
        return SENTINELS[milliseconds]
    return f"{milliseconds // 60000}m" if milliseconds % 60000 == 0 else f"{milliseconds / 1000:g}s"


def _walk(node, enclosing, selectors_out, ranges_out):
    kind = type(node).__name__

    def matchers(vector):
        return {m.name: (MATCH_OPS[str(m.op).split(".")[-1]], m.value) for m in vector.matchers.matchers}

    if kind == "VectorSelector":
        selectors_out.append((node.name or "", matchers(node), None, enclosing))
    elif kind == "MatrixSelector":
        vector, rng = node.vector_selector, range_text(node.range)
        selectors_out.append((vector.name or "", matchers(vector), rng, enclosing))
        ranges_out.append((enclosing, rng))
    elif kind == "SubqueryExpr":
        _walk(node.expr, enclosing, selectors_out, ranges_out)
        ranges_out.append((enclosing, range_text(node.range)))
    elif kind == "Call":
        for arg in node.args:
            _walk(arg, node.func.name, selectors_out, ranges_out)
    elif kind == "AggregateExpr":
        _walk(node.expr, enclosing, selectors_out, ranges_out)
        if node.param is not None:
            _walk(node.param, enclosing, selectors_out, ranges_out)
    elif kind == "BinaryExpr":
        _walk(node.lhs, enclosing, selectors_out, ranges_out)
        _walk(node.rhs, enclosing, selectors_out, ranges_out)
    elif kind in ("ParenExpr", "UnaryExpr"):
        _walk(node.expr, enclosing, selectors_out, ranges_out)


def selectors(expr):
    """(metric, {label: (op, value)}, range or None, enclosing function) for each selector;
    metric '' for a selector without a name."""
    out = []
    _walk(parse_promql(expr), None, out, [])
    return out


def range_functions(expr):
    """(function, range) for every range selector and subquery, with the function around it."""
    out = []
    _walk(parse_promql(expr), None, [], out)
    return out


# --------------------------------------------------------------------- dashboard walking

def is_var_ref(value, name="datasource"):
    return value in (f"${name}", f"${{{name}}}")


def walk_datasources(node, path, problems, where):
    """Every data source in the dashboard is the $datasource variable (Grafana's built-in
    annotation source excepted)."""
    if isinstance(node, list):
        for n, value in enumerate(node):
            walk_datasources(value, f"{path}[{n}]", problems, where)
    if not isinstance(node, dict):
        return
    value = node.get("datasource")
    if value is not None and not (node.get("builtIn") == 1) and not (
            isinstance(value, dict) and is_var_ref(value.get("uid")) and value.get("type") in (None, "prometheus")):
        problems.add(where, f"{path}.datasource is {value!r}; use {{\"type\": \"prometheus\", \"uid\": \"${{datasource}}\"}}")
    for key, value in node.items():
        walk_datasources(value, f"{path}.{key}", problems, where)


def all_panels(panels):
    for p in panels or []:
        yield p
        if p.get("type") == "row":
            yield from all_panels(p.get("panels"))


def duration_seconds(d):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return int(sum(int(num) * units[unit] for num, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", d)))


def substitute(expr, variables, rate_interval, range_, problems, where):
    """The expression with Grafana's variables replaced by values PromQL accepts."""
    builtins = {"__rate_interval": rate_interval, "__range": range_, "__interval": rate_interval,
                "__range_s": str(duration_seconds(range_)), "__range_ms": str(1000 * duration_seconds(range_)),
                "__interval_ms": str(1000 * duration_seconds(rate_interval))}

    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if m.group(3):
            problems.add(where, f"deprecated [[{name}]] syntax; use ${name}")
        if re.fullmatch(r"\d+", name):  # $1 in label_replace replacements
            return m.group(0)
        if name not in builtins and name not in variables:
            problems.add(where, f"unknown template variable ${name}")
        return builtins.get(name) or variables.get(name, ".+")
    return VAR_RE.sub(repl, expr)


def check_selectors(expr, where, problems, multi_vars, contract, is_variable_query=False):
    try:
        sels = selectors(expr)
        ranges = range_functions(expr)
    except ValueError as e:
        problems.add(where, f"cannot read expression: {e}")
        return
    for metric, matchers, rng, enclosing in sels:
        if not metric:
            problems.add(where, "selector without a metric name")
            continue
        for label, (op, value) in matchers.items():
            m = VAR_RE.fullmatch(value)
            if m:
                name = m.group(1) or m.group(2) or m.group(3)
                if name in multi_vars and op != "=~":
                    problems.add(where, f"{metric}: {label}{op}\"{value}\" uses the multi-value variable ${name}; use =~")
        if contract is None:  # --list-exprs: listing only, no contract at hand
            continue
        if metric in contract.remediator:
            required = {"job": "remediator_job"}
        elif metric in contract.exporter:
            required = {"job": "job", "instance": "instance"}
            if contract.exporter[metric] is None:
                problems.add(where, f"{metric}: the live scrape had no series of it, so its labels are unknown")
            elif contract.exporter[metric]:
                required["datname"] = "datname"
        elif metric in PROMETHEUS_METRICS:
            required = {"job": "job", "instance": "instance"}
        else:
            problems.add(where, f"unknown metric {metric} (the binary's serve and remediate --listen do not expose it)")
            continue
        if metric not in PROMETHEUS_METRICS and documented_family(metric, contract.documented) is None:
            problems.add(where, f"{metric} is not in the metric table of docs/metrics.md")
        if not is_variable_query:
            for label, var in required.items():
                op, value = matchers.get(label, (None, None))
                if op != "=~" or not is_var_ref(value, var):
                    problems.add(where, f"{metric} must filter on {label}=~\"${var}\"")
        if metric.endswith("_total") and rng is None and not is_variable_query:
            problems.add(where, f"counter {metric} used without a range function (rate/increase)")
    for fn, rng in ranges:
        if fn in ("rate", "irate") and rng != "$__rate_interval":
            problems.add(where, f"{fn}() over [{rng}]: use [$__rate_interval]")
        elif rng not in ("$__rate_interval", "$__range"):
            problems.add(where, f"range [{rng}]: use [$__rate_interval] (or [$__range] for a total over the time range)")
        elif rng == "$__range" and fn not in ("increase", "changes", "max_over_time", "min_over_time",
                                              "avg_over_time", "sum_over_time", "count_over_time", "last_over_time"):
            problems.add(where, f"{fn}() over [$__range]: use [$__rate_interval]")


def check_dashboard(path, problems, uids, rate_interval, range_, contract):
    """Return the list of expression records of this dashboard."""
    rel = os.path.relpath(path, REPO) if path.startswith(REPO + os.sep) else path
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
        assert isinstance(dash, dict) and "panels" in dash, "not a classic dashboard object"
    except (OSError, ValueError, AssertionError) as e:
        problems.add(rel, f"cannot read the dashboard: {e}")
        return []
    if "__inputs" in dash:
        problems.add(rel, "has __inputs (\"export for sharing externally\"): provisioning needs the $datasource variable instead")
    if "id" not in dash or dash["id"] is not None:
        problems.add(rel, f"\"id\" must be null (is {dash.get('id', 'missing')!r})")
    uid = dash.get("uid")
    if not isinstance(uid, str) or not UID_RE.match(uid):
        problems.add(rel, f"\"uid\" must be 1-40 characters of [A-Za-z0-9_-] (is {uid!r})")
    elif uid in uids:
        problems.add(rel, f"uid {uid!r} is also used by {uids[uid]}")
    uids[uid] = rel
    if not dash.get("title") or not isinstance(dash.get("schemaVersion"), int):
        problems.add(rel, "dashboard has no title or no schemaVersion")
    walk_datasources(dash, "dashboard", problems, rel)

    # ---- templating: the data source, then query variables, each multi-select with All
    tlist = (dash.get("templating") or {}).get("list") or []
    by_name = {v.get("name"): v for v in tlist}
    ds = by_name.get("datasource") or {}
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.add(rel, "templating variable \"datasource\" must exist, with type datasource and query prometheus")
    for name in REQUIRED_VARIABLES:
        if name not in by_name:
            problems.add(rel, f"templating variable \"{name}\" is missing")
    variables, var_records = {}, []
    for v in tlist:
        name, where = v.get("name"), f"{rel}: variable ${v.get('name')}"
        if v.get("type") == "datasource":
            continue
        if v.get("type") != "query" or not v.get("multi") or not v.get("includeAll") or v.get("allValue") in (None, ""):
            problems.add(where, "must be a multi-select query variable with includeAll and an allValue (\".+\" or \".*\")")
        variables[name] = v.get("allValue") or ".+"
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = LABEL_VALUES_RE.match(q or "") or QUERY_RESULT_RE.match(q or "")
        inner = m.group(1) if m else (q if q and not q.strip().startswith("label_values") else None)
        if not q:
            problems.add(where, "has no query")
        elif inner:
            var_records.append({"kind": "variable", "panel": f"variable:{name}", "panel_id": None, "refId": "query",
                                "raw": inner, "instant": True, "where": where})
    multi_vars = set(variables)

    # ---- panels
    records = []
    seen_ids, seen_titles = {}, set()
    for p in all_panels(dash.get("panels")):
        pid, title, ptype = p.get("id"), p.get("title") or "", p.get("type")
        where = f"{rel}: panel {title!r} (id {pid})"
        if pid in seen_ids:
            problems.add(where, f"duplicate panel id (also {seen_ids[pid]!r})")
        seen_ids[pid] = title
        if "gridPos" not in p:
            problems.add(where, "has no gridPos")
        if ptype == "row":
            continue
        if title in seen_titles:
            problems.add(where, "duplicate panel title (titles name the expressions in --list-exprs)")
        seen_titles.add(title)
        if not title.strip() or not (p.get("description") or "").strip():
            problems.add(where, "has no title or no description")
        unit = ((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if unit not in KNOWN_UNITS:
            problems.add(where, f"unit {unit!r} (fieldConfig.defaults.unit) is missing or not a Grafana unit this "
                                "checker knows (add it to KNOWN_UNITS if it is)")
        targets = p.get("targets") or []
        if not targets:
            problems.add(where, "has no queries")
        refs = [t.get("refId") for t in targets]
        if None in refs or len(set(refs)) != len(refs):
            problems.add(where, f"query refIds {refs} missing or repeated")
        for t in targets:
            if not (t.get("expr") or "").strip():
                problems.add(f"{where} query {t.get('refId')}", "has no expr")
                continue
            records.append({"kind": "panel", "panel": title, "panel_id": pid, "refId": t.get("refId"), "raw": t["expr"],
                            "instant": bool(t.get("instant")) and not t.get("range", False),
                            "where": f"{where} query {t.get('refId')}"})
        # The root-blocker table links each pid to its target's page: the link reads the tree_url
        # that pg_lock_exporter_web_info carries (--web.external-url), merged into the rows.
        if title == "Current root blockers":
            if not any("pg_lock_exporter_web_info" in t.get("expr", "") and "tree_url" in t.get("expr", "") for t in targets):
                problems.add(where, "no query of pg_lock_exporter_web_info by tree_url: the pid links have no URL")
            links = [link for o in (p.get("fieldConfig") or {}).get("overrides") or []
                     if (o.get("matcher") or {}).get("options") == "pid"
                     for prop in o.get("properties") or [] if prop.get("id") == "links" for link in prop.get("value") or []]
            if not any(link.get("url") == "${__data.fields.tree_url}" for link in links):
                problems.add(where, "the pid column has no data link to ${__data.fields.tree_url}")
    for a in (dash.get("annotations") or {}).get("list") or []:
        if a.get("builtIn") != 1 and a.get("expr"):
            name = a.get("name") or "?"
            records.append({"kind": "annotation", "panel": f"annotation:{name}", "panel_id": None, "refId": "expr",
                            "raw": a["expr"], "instant": False, "where": f"{rel}: annotation {name!r}"})

    for r in records:
        check_selectors(r["raw"], r["where"], problems, multi_vars, contract)
    for r in var_records:
        check_selectors(r["raw"], r["where"], problems, multi_vars, contract, is_variable_query=True)
    records += var_records
    for r in records:
        r.update(dashboard=rel, uid=uid, expr=substitute(r["raw"], variables, rate_interval, range_, problems, r["where"]),
                 may_be_empty=[MAY_BE_EMPTY_REASONS[k] for k in MAY_BE_EMPTY.get((uid, r["panel"], r["refId"]), [])])
    known = {(uid, r["panel"], r["refId"]) for r in records}
    for key in MAY_BE_EMPTY:
        if key[0] == uid and key not in known:
            problems.add(rel, f"MAY_BE_EMPTY in check_dashboards.py names {key[1]!r} query {key[2]}, which the dashboard lacks")
    return records


def promtool_check(records, promtool, problems):
    """Every expression through one `promtool check rules`, as recording rules of one file."""
    if not records:
        return
    with tempfile.TemporaryDirectory(prefix="check_dashboards.") as tmp:
        rule_file = os.path.join(tmp, "dashboard_exprs.rules.yml")
        with open(rule_file, "w", encoding="utf-8") as f:
            f.write("groups:\n  - name: dashboard-expressions\n    rules:\n")
            f.writelines(f"      - record: dashboard_check:expr_{n}\n        expr: {json.dumps(r['expr'])}\n"
                         for n, r in enumerate(records, 1))
        try:
            proc = subprocess.run([promtool, "check", "rules", rule_file], capture_output=True, text=True, timeout=60)
        except OSError as e:
            problems.add("promtool", f"{promtool!r}: {e} (install the prometheus package or pass --promtool)")
            return
    output = (proc.stdout + proc.stderr).splitlines()
    for line in output if proc.returncode != 0 else []:
        m = re.search(r"rule (\d+), \"[^\"]*\": (.*)$", line)
        if m:
            r = records[int(m.group(1)) - 1]
            problems.add(r["where"], f"promtool: {m.group(2)} -- {r['expr']!r}")
    if proc.returncode != 0 and not any(re.search(r"rule \d+, ", line) for line in output):
        problems.add("promtool", "check rules failed: " + " | ".join(l.strip() for l in output if l.strip()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dashboards", nargs="*", help="dashboard files (default: dashboards/*.json)")
    ap.add_argument("--list-exprs", action="store_true",
                    help="print every expression after substitution as JSON and exit")
    ap.add_argument("--rate-interval", default="1m", help="value for $__rate_interval and $__interval (default 1m)")
    ap.add_argument("--range", default="1h", help="value for $__range (default 1h)")
    ap.add_argument("--promtool", default="promtool", help="promtool executable (default: promtool on PATH)")
    ap.add_argument("--exporter", default=os.environ.get("PG_LOCK_EXPORTER_BIN") or os.path.join(REPO, ".build", "debug", "pg_lock_exporter"),
                    help="the pg_lock_exporter binary whose metrics are the contract (default: $PG_LOCK_EXPORTER_BIN, "
                         "else .build/debug/pg_lock_exporter)")
    args = ap.parse_args()
    contract = None if args.list_exprs else live_contract(args.exporter)

    files = args.dashboards or sorted(glob.glob(os.path.join(REPO, "dashboards", "*.json")))
    problems = Problems()
    if not files:
        problems.add("dashboards", "no dashboards/*.json found")
    uids, records = {}, []
    for path in files:
        records += check_dashboard(os.path.abspath(path), problems, uids, args.rate_interval, args.range, contract)

    if args.list_exprs:
        json.dump([{k: r[k] for k in ("dashboard", "uid", "kind", "panel", "panel_id", "refId", "expr", "instant",
                                      "may_be_empty")} for r in records], sys.stdout, indent=2)
        sys.stdout.write("\n")
        for line in problems.lines:
            print(line, file=sys.stderr)
        return 1 if problems.lines else 0

    promtool_check(records, args.promtool, problems)
    for line in problems.lines:
        print(line)
    if problems.lines:
        print(f"check_dashboards: {len(problems.lines)} problem(s) in {len(files)} dashboard(s)", file=sys.stderr)
        return 1
    print(f"check_dashboards: {len(files)} dashboard(s), {len(records)} expressions OK against the "
          f"{len(contract.exporter)} + {len(contract.remediator)} metric families the binary exposes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
