#!/bin/sh
# Check the bundled alerting rules, their unit tests, the example Alertmanager
# configuration and the Grafana dashboards. Exits non-zero if any check fails.
#
# Needs promtool (Debian package prometheus, 2.42+), amtool (prometheus-alertmanager,
# 0.25+) and python3 with PyYAML (python3-yaml).
#
#   scripts/check_alerts.sh

set -u
cd "$(dirname "$0")/.." || exit 2

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

for tool in promtool amtool python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check_alerts: $tool not found (apt-get install prometheus prometheus-alertmanager python3-yaml)" >&2
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

RUNBOOK = "https://github.com/pg-lock-exporter/pg_lock_exporter/blob/main/docs/runbooks.md#"
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

fires, silent = {}, set()
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
for name, sevs in sorted(alerts.items()):
    if name not in silent:
        problems.append(f"alerts/tests: no test where {name} stays silent (exp_alerts: [])")
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
print(f"    {len(alerts)} alerts, {sum(len(s) for s in alerts.values())} alert/severity pairs, all tested and documented")
PY
}

route_remediation() {
    # The remediation alert must reach the remediator's webhook and the humans.
    amtool config routes test --config.file=alerts/alertmanager-inhibit.example.yml \
        --verify.receivers=pg-lock-remediator,oncall \
        alertname=PostgresBlockerIdleInTransaction severity=critical instance=pg-main:9817 datname=shop 2>/dev/null
}

run "promtool check rules" promtool check rules --lint-fatal alerts/*.rules.yml
run "promtool test rules" promtool test rules alerts/tests/*.yml
run "alert conventions and test coverage" lint_alerts
run "amtool check-config" amtool check-config alerts/alertmanager-inhibit.example.yml
run "amtool routing of the remediation alert" route_remediation
run "dashboards" python3 scripts/check_dashboards.py

if [ -n "$failed" ]; then
    echo "check_alerts: FAILED:$failed" >&2
    exit 1
fi
echo "check_alerts: all checks passed"
