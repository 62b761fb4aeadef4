#!/bin/sh
# Check the bundled alerting rules, their unit tests, the example Alertmanager
# configuration and the Grafana dashboards. Exits non-zero if any check fails.
#
# Needs promtool (Debian package prometheus, 2.42+), amtool (prometheus-alertmanager,
# 0.25+) and python3 with PyYAML (python3-yaml).
#
#   scripts/check_alerts.sh                      the repo: rules, tests, runbooks, dashboards
#   scripts/check_alerts.sh --installed FILE...  rule files as installed (scripts/render-mixin):
#                                                fails while a runbook_url still carries the
#                                                __RUNBOOK_BASE_URL__ placeholder

set -u
repo=$(cd "$(dirname "$0")/.." && pwd) || exit 2

if [ "${1:-}" = "--installed" ]; then
    shift
    if [ $# -eq 0 ]; then
        echo "check_alerts: --installed needs the installed rule files" >&2
        exit 2
    fi
    for f in "$@"; do
        [ -f "$f" ] || { echo "check_alerts: $f: no such file" >&2; exit 2; }
    done
    promtool check rules --lint-fatal "$@" >/dev/null || exit 1
    exec python3 - "$@" <<'PY'
import re, sys, yaml
problems = []
for path in sys.argv[1:]:
    for g in yaml.safe_load(open(path, encoding="utf-8")).get("groups", []):
        for r in g.get("rules", []):
            if "alert" not in r:
                continue
            url = (r.get("annotations") or {}).get("runbook_url", "")
            if "__RUNBOOK_BASE_URL__" in url:
                problems.append(f"{path}: {r['alert']}: runbook_url still has the placeholder __RUNBOOK_BASE_URL__; "
                                "render with scripts/render-mixin --runbook-base-url URL DIR")
            elif not re.match(r"^https?://[^\s#]+#" + re.escape(r["alert"].lower()) + "$", url):
                problems.append(f"{path}: {r['alert']}: runbook_url {url!r} is not http(s)://...#{r['alert'].lower()}")
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
fi
cd "$repo" || exit 2

failed=""
run() {
    name=$1
    shift
    echo "==> $name"
    if "$@"; then
        echo "    ok"
    else
        echo "    FAILED: $name"
        failed="$failed
  - $name"
    fi
}

for tool in promtool amtool python3 jsonnet; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check_alerts: $tool not found (apt-get install prometheus prometheus-alertmanager python3-yaml jsonnet)" >&2
        exit 2
    fi
done

# Mixin-style conventions promtool does not check, and test coverage of every alert.
lint_alerts() {
    python3 - alerts/*.rules.yml <<'PY'
import glob, re, sys
try:
    import yaml
except ImportError:
    print("PyYAML is missing (apt-get install python3-yaml)")
    sys.exit(1)

# In the repo every runbook_url is the placeholder plus the alert's anchor in docs/runbooks.md;
# scripts/render-mixin --runbook-base-url replaces it where the rules are installed.
RUNBOOK = "__RUNBOOK_BASE_URL__#"
problems = []

def anchors(path):
    out = set()
    in_code = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out

doc_anchors = anchors("docs/runbooks.md")
alerts = {}  # alertname -> set of severities
for path in sys.argv[1:]:
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    for g in doc.get("groups", []):
        gname = g.get("name", "")
        rules = g.get("rules", [])
        if len(rules) > 20:
            problems.append(f"{path}: group {gname!r} has {len(rules)} rules (at most 20)")
        if len(gname) > 40:
            problems.append(f"{path}: group name {gname!r} is longer than 40 characters")
        for r in rules:
            name = r.get("alert")
            if not name:
                continue
            where = f"{path}: {name}"
            if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name) or len(name) > 40:
                problems.append(f"{where}: alert name must be CamelCase, at most 40 characters")
            sev = (r.get("labels") or {}).get("severity")
            if sev not in ("critical", "warning", "info"):
                problems.append(f"{where}: severity label must be critical, warning or info (is {sev!r})")
            alerts.setdefault(name, set()).add(sev)
            ann = r.get("annotations") or {}
            summary, desc, url = ann.get("summary", ""), ann.get("description", ""), ann.get("runbook_url", "")
            if not summary:
                problems.append(f"{where}: summary annotation missing")
            elif "{{" in summary or not summary[0].isupper() or not summary.endswith("."):
                problems.append(f"{where}: summary must be a plain sentence (no templates, capital first, final period)")
            if "{{" not in desc:
                problems.append(f"{where}: description annotation missing or not templated")
            elif "$labels.instance" not in desc:
                problems.append(f"{where}: description must name the instance")
            if not url.startswith(RUNBOOK):
                problems.append(f"{where}: runbook_url must start with {RUNBOOK}")
            elif url[len(RUNBOOK):] != name.lower():
                problems.append(f"{where}: runbook_url anchor must be #{name.lower()}")
            elif name.lower() not in doc_anchors:
                problems.append(f"{where}: docs/runbooks.md has no section #{name.lower()}")

# Every alert must also fire on series shaped as the multi-target exporter's /probe
# (alerts/tests/multi-target.test.yml); the other files use the single-target shape.
MULTI_TARGET = "alerts/tests/multi-target.test.yml"
fires, silent, fires_multi = {}, set(), set()
for path in sorted(glob.glob("alerts/tests/*.yml")):
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    for t in doc.get("tests", []):
        for a in t.get("alert_rule_test", []):
            name = a.get("alertname")
            exp = a.get("exp_alerts") or []
            if not exp:
                silent.add(name)
            for e in exp:
                fires.setdefault(name, set()).add((e.get("exp_labels") or {}).get("severity"))
                if path == MULTI_TARGET:
                    fires_multi.add(name)
for name, sevs in sorted(alerts.items()):
    if name not in silent:
        problems.append(f"alerts/tests: no test where {name} stays silent (exp_alerts: [])")
    if name not in fires_multi:
        problems.append(f"{MULTI_TARGET}: no test where {name} fires on /probe-shaped series")
    for sev in sorted(s for s in sevs if s):
        if sev not in fires.get(name, set()):
            problems.append(f"alerts/tests: no test where {name} fires with severity {sev}")
for name in sorted(set(fires) | silent):
    if name not in alerts:
        problems.append(f"alerts/tests: tests name an unknown alert {name}")

for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"    {len(alerts)} alerts, {sum(len(s) for s in alerts.values())} alert/severity pairs, all tested (both modes) and documented")
PY
}

route_remediation() {
    # The remediation alert must reach the remediator's webhook and the humans.
    amtool config routes test --config.file=alerts/alertmanager-inhibit.example.yml \
        --verify.receivers=pg-lock-remediator,oncall \
        alertname=PostgresBlockerIdleInTransaction severity=critical instance=pg-main:9817 datname=shop 2>/dev/null
}

# The mixin formatted by jsonnetfmt; alerts/ and dashboards/ its rendering with its defaults, byte
# for byte.
mixin_current() {
    tmp=$(mktemp -d) || return 1
    ok=0
    if ! jsonnetfmt --test mixin/*.libsonnet mixin/*/*.libsonnet mixin/*.jsonnet tests/rules/*.jsonnet; then
        echo "    mixin/ is not formatted as jsonnetfmt formats it: run make mixin"; ok=1
    fi
    if ! scripts/render-mixin "$tmp" >/dev/null; then
        echo "    render-mixin failed"; ok=1
    else
        for f in "$tmp"/*.rules.yml "$tmp"/*.json; do
            case "$f" in *.json) repo_file=dashboards/$(basename "$f") ;; *) repo_file=alerts/$(basename "$f") ;; esac
            if ! cmp -s "$f" "$repo_file"; then
                echo "    $repo_file differs from what mixin/ renders: run make mixin"; ok=1
            fi
        done
    fi
    rm -rf "$tmp"
    return $ok
}

# A user's _config reaches what it names: the runbook links (then --installed accepts the rules),
# the thresholds, the data source, and the extra selector in every series selector of every rule
# and dashboard query (read by promql-parser). Bad overrides get one line and write nothing.
mixin_config() {
    tmp=$(mktemp -d) || return 1
    ok=0
    base=https://git.example.com/ops/pg_lock_exporter/blob/main/docs/runbooks.md
    cat >"$tmp/overrides.libsonnet" <<'JSONNET'
{ selector: 'cluster="prod-eu"', lockWaitSeconds+: { warning: 45 }, datasource: 'Prometheus EU', datasourceRegex: '/EU/' }
JSONNET
    if ! scripts/render-mixin --config "$tmp/overrides.libsonnet" --runbook-base-url "$base" "$tmp/out" >/dev/null; then
        echo "    render-mixin with overrides failed"; ok=1
    elif ! scripts/check_alerts.sh --installed "$tmp"/out/*.rules.yml; then
        echo "    rendered rules rejected by --installed"; ok=1
    elif ! python3 - "$tmp/out" "$base" <<'PY'
import json, subprocess, sys, yaml
sys.path.insert(0, "scripts")
from check_dashboards import selectors  # promql-parser's tree, walked
out, base = sys.argv[1], sys.argv[2]
rules = [r for g in yaml.safe_load(open(f"{out}/pg_lock_exporter.rules.yml"))["groups"] for r in g["rules"]]
dash = json.load(open(f"{out}/pg-lock-overview.json"))
listed = json.loads(subprocess.run([sys.executable, "scripts/check_dashboards.py", "--list-exprs", f"{out}/pg-lock-overview.json"],
                                   check=True, capture_output=True, text=True).stdout)
exprs = [r["expr"] for r in rules] + [e["expr"] for e in listed]
problems = []
count = 0
for expr in exprs:
    found = selectors(expr)
    if not found:
        problems.append(f"no series selector read in {expr!r}")
    for metric, matchers, _, _ in found:
        count += 1
        if matchers.get("cluster") != ("=", "prod-eu"):
            problems.append(f"no cluster=\"prod-eu\" on {metric} in {expr!r}")
if [r["runbook_url"] for r in (x["annotations"] for x in rules) if not r["runbook_url"].startswith(base + "#")]:
    problems.append("a runbook_url does not start with the base URL")
if [l["url"] for l in dash["links"]] != [base]:
    problems.append("the dashboard's Runbooks link is not the base URL")
warning = [r for r in rules if r["alert"] == "PostgresLockWaitTooLong" and r["labels"]["severity"] == "warning"]
if [r["expr"] for r in warning] != ['pg_lock_wait_seconds_max{cluster="prod-eu"} > 45']:
    problems.append(f"lock wait threshold not applied: {[r['expr'] for r in warning]}")
ds = dash["templating"]["list"][0]
if ds.get("current", {}).get("value") != "Prometheus EU" or ds.get("regex") != "/EU/":
    problems.append(f"data source not applied: {ds}")
for p in problems:
    print("    " + p)
if not problems:
    print(f"    {len(exprs)} expressions, {count} series selectors, all with the extra selector")
sys.exit(1 if problems else 0)
PY
    then
        ok=1
    fi
    if scripts/check_alerts.sh --installed alerts/*.rules.yml 2>/dev/null; then
        echo "    --installed accepted rules that still carry the placeholder"; ok=1
    fi
    # The README's jsonnet-bundler example: the mixin vendored under its package name.
    mkdir -p "$tmp/vendor" && ln -s "$repo/mixin" "$tmp/vendor/pg-lock-exporter-mixin"
    rules=$(jsonnet -S -J "$tmp/vendor" -e "local pgLocks = (import 'pg-lock-exporter-mixin/mixin.libsonnet') + {
        _config+:: { selector: 'cluster=\"prod-eu\"', runbookURLBase: 'https://wiki.example.com/pg/runbooks' } };
      std.manifestYamlDoc(pgLocks.prometheusAlerts)") || rules=""
    case "$rules" in
        *'pg_blocked_sessions{cluster=\"prod-eu\"} > 0'*) ;;
        *) echo "    the README's jsonnet-bundler import does not render"; ok=1 ;;
    esac
    for bad in "--runbook-base-url ftp://x/runbooks.md" "--runbook-base-url https://x/runbooks.md#a"; do
        # shellcheck disable=SC2086
        if scripts/render-mixin $bad "$tmp/bad" 2>"$tmp/err" || [ -e "$tmp/bad" ] || [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
            echo "    render-mixin accepted $bad, or said more than one line"; ok=1
        fi
    done
    echo "{ selector: '{cluster=\"x\"}' }" >"$tmp/bad.libsonnet"
    if scripts/render-mixin --config "$tmp/bad.libsonnet" "$tmp/bad" 2>/dev/null || [ -e "$tmp/bad" ]; then
        echo "    render-mixin accepted a selector with braces"; ok=1
    fi
    rm -rf "$tmp"
    return $ok
}

run "promtool check rules" promtool check rules --lint-fatal alerts/*.rules.yml
run "promtool test rules" promtool test rules alerts/tests/*.yml
run "alert conventions and test coverage" lint_alerts
run "alerts/ and dashboards/ are the mixin's output" mixin_current
run "the mixin's _config reaches selectors, thresholds, links, data source" mixin_config
run "amtool check-config" amtool check-config alerts/alertmanager-inhibit.example.yml
run "amtool routing of the remediation alert" route_remediation
run "dashboards" python3 scripts/check_dashboards.py

if [ -n "$failed" ]; then
    echo "check_alerts: FAILED:$failed" >&2
    exit 1
fi
echo "check_alerts: all checks passed"
