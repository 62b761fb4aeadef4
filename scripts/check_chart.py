#!/usr/bin/env python3
"""Check the Helm chart in deploy/helm/pg-lock-exporter with the tools Kubernetes users trust.

  * the chart's copies of alerts/ and dashboards/ (files/) are identical to the originals
    (`make chart-sync` copies them);
  * `helm lint --strict` passes for every ci/*-values.yaml case;
  * `helm template` of each case: the core kinds pass kubernetes-validate --strict (Kubernetes
    1.33 schemas); the PrometheusRule's groups are the ones in alerts/ (which check_alerts.sh
    runs through promtool and the rule tests), runbook links filled in; the dashboard
    ConfigMap holds dashboards/*.json byte for byte; the chart's promises hold (no secret in
    args or env values, the securityContext defaults, --execute only when asked, the job the
    alerts select, the episode store on a writable volume and one pod per claim, ...); and every
    rendered container starts (and creates its episode store): the real binary
    (.build/debug/pg_lock_exporter, or $PG_LOCK_EXPORTER_BIN) with its rendered arguments and
    mounted files (the targets file and web config as Helm's toYaml wrote them, the TLS Secrets
    as certificates made with openssl), its rendered liveness and readiness probes succeed as
    the kubelet runs them, and a client CA in its web config is enforced;
  * user strings that YAML would misread, rendered into the remediator's arguments, parse back
    exactly (ODD_STRINGS), and counts above a million render as integers;
  * every deploy/helm/tests/bad-values/*.yaml fails `helm lint` and `helm template` with the
    message its "# expect:" line names (the field), and kubernetes-validate rejects a broken
    Deployment (the validator is not a no-op).

helm: $HELM, else the copy scripts/install-deps unpacks (~/.cache/pg_lock_exporter/k8s-tools),
else PATH. Needs PyYAML and kubernetes-validate. One line per problem; exit 1.
"""

import glob
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(REPO, "deploy", "helm", "pg-lock-exporter")
BAD_VALUES = os.path.join(REPO, "deploy", "helm", "tests", "bad-values")
TOOLS = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pg_lock_exporter", "k8s-tools")
KUBERNETES_VERSION = "1.33.0"
CORE_API_GROUPS = ("v1", "apps/v1", "networking.k8s.io/v1", "policy/v1", "rbac.authorization.k8s.io/v1")
RELEASE, NAMESPACE = "ci", "monitoring-ci"
problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def tool(name, env):
    path = os.environ.get(env) or (os.path.join(TOOLS, name) if os.access(os.path.join(TOOLS, name), os.X_OK) else None) \
        or shutil.which(name)
    if not path:
        sys.exit(f"check_chart: {name} not found (scripts/install-deps installs it into {TOOLS})")
    return path


def run(args, timeout=60):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def check_copies():
    """files/ holds exactly alerts/*.rules.yml and dashboards/*.json, byte for byte."""
    for src_dir, pattern, dst_dir in (("alerts", "*.rules.yml", "files/alerts"), ("dashboards", "*.json", "files/dashboards")):
        originals = {os.path.basename(p): p for p in glob.glob(os.path.join(REPO, src_dir, pattern))}
        copies = {os.path.basename(p): p for p in glob.glob(os.path.join(CHART, dst_dir, pattern))}
        for name in sorted(set(originals) | set(copies)):
            where = f"deploy/helm/pg-lock-exporter/{dst_dir}/{name}"
            if name not in copies:
                problem(where, f"missing copy of {src_dir}/{name}; run make chart-sync")
            elif name not in originals:
                problem(where, f"no longer in {src_dir}/; run make chart-sync")
            elif open(originals[name], "rb").read() != open(copies[name], "rb").read():
                problem(where, f"differs from {src_dir}/{name}; run make chart-sync")


def render(helm, values):
    out = run([helm, "template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", values])
    if out.returncode != 0:
        problem(os.path.relpath(values, REPO), f"helm template failed: {out.stderr.strip()}")
        return None, []
    return out.stdout, [d for d in yaml.safe_load_all(out.stdout) if d]


def render_values(helm, tmp, name, values, where):
    """Renders `values` written as JSON (YAML that every parser reads alike: PyYAML would leave
    1e3 unquoted) to tmp/NAME-values.yaml; the documents, or None after reporting the failure."""
    path = os.path.join(tmp, f"{name}-values.yaml")
    with open(path, "w") as f:
        json.dump(values, f)
    text, docs = render(helm, path)
    if text is None:
        problem(where, "did not render (see above)")
        return None
    return docs


def kubernetes_validate(docs, where, tmp):
    core = [d for d in docs if d.get("apiVersion") in CORE_API_GROUPS]
    path = os.path.join(tmp, "core.yaml")
    with open(path, "w") as f:
        yaml.safe_dump_all(core, f)
    out = run(["kubernetes-validate", "--strict", "--quiet", "--no-warn", "-k", KUBERNETES_VERSION, path])
    if out.returncode != 0:
        problem(where, f"kubernetes-validate: {(out.stdout + out.stderr).strip()}")
    return len(core)


PLACEHOLDER = "__RUNBOOK_BASE_URL__"


def with_runbooks(text, values):
    """The repo's file as the chart renders it: the placeholder replaced by runbookBaseURL."""
    base = (values or {}).get("runbookBaseURL") or ""
    return text.replace(PLACEHOLDER, base) if base else text


def check_rules(docs, where, values=None):
    """The PrometheusRule holds the groups of alerts/pg_lock_exporter.rules.yml, equal once parsed
    (so scripts/check_alerts.sh's promtool checks and rule tests hold for it), the runbook links
    filled in from runbookBaseURL."""
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    if not rules:
        return
    groups = rules[0]["spec"]["groups"]
    original = yaml.safe_load(with_runbooks(open(os.path.join(REPO, "alerts", "pg_lock_exporter.rules.yml")).read(), values))["groups"]
    if groups != original:
        problem(where, "PrometheusRule groups differ from alerts/pg_lock_exporter.rules.yml")
    if (values or {}).get("runbookBaseURL") and PLACEHOLDER in json.dumps(groups):
        problem(where, f"runbookBaseURL is set but the PrometheusRule still carries {PLACEHOLDER}")


def check_dashboards(docs, where, values=None):
    for cm in (d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")):
        originals = {os.path.basename(p) for p in glob.glob(os.path.join(REPO, "dashboards", "*.json"))}
        if set(cm["data"]) != originals:
            problem(where, f"dashboard ConfigMap keys {sorted(cm['data'])} are not dashboards/ {sorted(originals)}")
        for key, text in cm["data"].items():
            path = os.path.join(REPO, "dashboards", key)
            if os.path.exists(path) and text != with_runbooks(open(path, encoding="utf-8").read(), values):
                problem(where, f"rendered dashboard {key} is not byte-identical to dashboards/{key} (runbook link aside)")


def check_promises(docs, values, where):
    """What the chart promises that no schema checks."""
    pods = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    for workload in pods:
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = workload["spec"]["template"]["spec"]
        pod_sc = spec.get("securityContext") or {}
        if not pod_sc.get("runAsNonRoot") or (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problem(where, f"{name}: pod securityContext must set runAsNonRoot and seccomp RuntimeDefault")
        for c in spec["containers"]:
            sc = c.get("securityContext") or {}
            if not (sc.get("readOnlyRootFilesystem") and sc.get("runAsNonRoot") and sc.get("allowPrivilegeEscalation") is False
                    and (sc.get("capabilities") or {}).get("drop") == ["ALL"]):
                problem(where, f"{name}: container {c['name']} must be non-root, read-only, no privilege escalation, drop ALL")
            for e in c.get("env") or []:
                if "value" in e:
                    problem(where, f"{name}: env {e['name']} carries a literal value; use secretKeyRef")
            for a in c.get("args") or []:
                # A pooler's admin-console DSN is in argv by design (the schema refuses a password in it).
                if re.match(r"--pgbouncer\.dsn=", a) and not re.search(r"password", a, re.I):
                    continue
                if re.search(r"password|dsn=|token=", a, re.I) and not re.match(r"--(pg\.password|pgbouncer\.password|webhook\.token)-file=/etc/", a):
                    problem(where, f"{name}: argument {a!r} may carry a secret")
            if c["name"] == "remediator":
                execute = "--execute" in c["args"]
                if execute != bool(((values.get("remediator") or {}).get("execute"))):
                    problem(where, f"{name}: --execute must appear exactly when remediator.execute is true")
    remediator_on = bool((values.get("remediator") or {}).get("enabled"))
    kinds = {d["kind"] for d in docs}
    if remediator_on:
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        if len(policies) != 1 or len(policies[0]["spec"]["ingress"]) != 1:
            problem(where, "the remediator needs one NetworkPolicy admitting Alertmanager only")
    elif kinds & {"NetworkPolicy", "AlertmanagerConfig"} or any(d["metadata"]["name"].endswith("-remediator") for d in docs):
        problem(where, "remediator objects rendered although remediator.enabled is false")
    targets = (values.get("config") or {}).get("targets") or []
    probes = [d for d in docs if d["kind"] == "Probe"]
    if (values.get("probe") or {}).get("enabled") and sorted(p["spec"]["targets"]["staticConfig"]["static"][0] for p in probes) \
            != sorted(t["name"] for t in targets):
        problem(where, "one Probe per config.targets entry expected")
    if (values.get("sharding") or {}).get("enabled"):
        for p in probes:
            relabel = p["spec"]["targets"]["staticConfig"]["relabelingConfigs"][0]
            if relabel.get("action") != "hashmod" or relabel.get("modulus") != values.get("replicaCount", 1):
                problem(where, f"Probe {p['metadata']['name']}: sharding needs hashmod with modulus replicaCount")
    # The job label every scrape gets must be one the alerts select (PostgresExporterDown).
    rules = yaml.safe_load(open(os.path.join(REPO, "alerts", "pg_lock_exporter.rules.yml")))
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    selectors = set(re.findall(r'job=~"(pg_lock_exporter[^"]*)"', exprs))
    for d in docs:
        if d["kind"] == "Probe":
            jobs = [d["spec"].get("jobName")]
        elif d["kind"] in ("ServiceMonitor", "PodMonitor"):
            endpoints = d["spec"].get("endpoints") or d["spec"].get("podMetricsEndpoints")
            jobs = [r.get("replacement") for e in endpoints for r in e.get("relabelings") or [] if r.get("targetLabel") == "job"]
        else:
            continue
        if not jobs or not all(j and any(re.fullmatch(s, j) for s in selectors) for j in jobs):
            problem(where, f"{d['kind']} {d['metadata']['name']}: job {jobs} is not selected by the alerts' job=~ {sorted(selectors)}")
    check_episodes(docs, values, where)
    secret = next((d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == f"{RELEASE}-pg-lock-exporter"), None)
    if targets and secret:
        # The targets file must be what the binary reads: every target, with its password file.
        parsed = yaml.safe_load(secret["stringData"]["targets.yml"])["targets"]
        if sorted(parsed) != sorted(t["name"] for t in targets):
            problem(where, "targets.yml does not list config.targets")
        for t in targets:
            want = [p["dsn"] for p in t.get("pgbouncers") or []]
            got = [p.get("dsn") for p in (parsed.get(t["name"]) or {}).get("pgbouncers") or []]
            if want != got:
                problem(where, f"targets.yml: target {t['name']}: pgbouncers {got} instead of {want}")
    check_poolers(docs, values, where)


def check_poolers(docs, values, where):
    """The PgBouncers named in the values reach the exporter: one --pgbouncer.dsn per entry of
    config.pgbouncer.dsns in single-target mode, a password file mounted where the flag or the
    targets file says, --pgbouncer.timeout whenever some pooler is named."""
    config = chart_values(values)["config"]
    exporter = next((c for d in docs if d["kind"] in ("Deployment", "StatefulSet")
                     for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "exporter"), None)
    if exporter is None:
        return
    args = exporter["args"]
    multi = bool(config.get("targets"))
    dsns = [a.split("=", 1)[1] for a in args if a.startswith("--pgbouncer.dsn=")]
    expected = [] if multi else list(config["pgbouncer"].get("dsns") or [])
    if dsns != expected:
        problem(where, f"exporter: --pgbouncer.dsn {dsns} instead of {expected}")
    named = bool(expected) or any(t.get("pgbouncers") for t in config.get("targets") or [])
    timeouts = [a for a in args if a.startswith("--pgbouncer.timeout=")]
    if timeouts != ([f"--pgbouncer.timeout={config['pgbouncer']['timeout']}"] if named else []):
        problem(where, f"exporter: {timeouts} with poolers named: {named}")
    workload = next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet")
                    and any(c["name"] == "exporter" for c in d["spec"]["template"]["spec"]["containers"]))
    mounted = {item["path"] for v in workload["spec"]["template"]["spec"].get("volumes") or []
               for s in (v.get("projected") or {}).get("sources") or [] for item in (s.get("secret") or {}).get("items") or []}
    password_flags = [a.split("=", 1)[1] for a in args if a.startswith("--pgbouncer.password-file=")]
    has_password = bool(expected) and bool(config["pgbouncer"].get("password") or config["pgbouncer"].get("passwordSecret"))
    if len(password_flags) != (1 if has_password else 0):
        problem(where, f"exporter: --pgbouncer.password-file {password_flags}; a password was given: {has_password}")
    for flag in password_flags:
        if flag.removeprefix("/etc/pg-lock-exporter/") not in mounted:
            problem(where, f"exporter: --pgbouncer.password-file {flag} is not mounted")
    remediator = next((c for d in docs if d["kind"] == "Deployment"
                       for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "remediator"), None)
    if remediator is not None:
        pb = chart_values(values)["remediator"]["config"]["pgbouncer"]
        got = [a.split("=", 1)[1] for a in remediator["args"] if a.startswith("--pgbouncer.dsn=")]
        if got != list(pb.get("dsns") or []):
            problem(where, f"remediator: --pgbouncer.dsn {got} instead of {pb.get('dsns')}")
        workload = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-remediator"))
        paths = {item["path"] for v in workload["spec"]["template"]["spec"].get("volumes") or []
                 for src in (v.get("projected") or {}).get("sources") or [] for item in (src.get("secret") or {}).get("items") or []}
        for flag in (a.split("=", 1)[1] for a in remediator["args"] if a.startswith("--pgbouncer.password-file=")):
            if flag.removeprefix("/etc/pg-lock-remediator/") not in paths:
                problem(where, f"remediator: --pgbouncer.password-file {flag} is not mounted")
    for t in config.get("targets") or []:
        for index, pooler in enumerate(t.get("pgbouncers") or []):
            path = f"pgbouncers/{t['name']}-{index}"
            if bool(pooler.get("password") or pooler.get("passwordSecret")) != (path in mounted):
                problem(where, f"target {t['name']}: pooler {index}'s password file mounted: {path in mounted}")


def chart_values(values):
    """The values Helm renders with: the chart's values.yaml under the case's (maps merged)."""
    def merge(base, over):
        out = dict(base)
        for key, value in (over or {}).items():
            out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        return out
    return merge(yaml.safe_load(open(os.path.join(CHART, "values.yaml"))), values)


def check_episodes(docs, values, where):
    """The episode store: --sample.interval always rendered (the chart's default, not the
    binary's); while it is not 0, --episodes.path names a file directly on a writable volume
    mounted for it (never the read-only root filesystem), the pod's fsGroup lets the non-root
    user write it, the --episodes.* flags carry the values exactly, and with persistence one pod
    owns each claim (a Deployment recreates, a StatefulSet gives each pod its own). When it is 0:
    no episode flags and no episodes volume."""
    merged = chart_values(values)
    episodes = merged["episodes"]
    persistence = episodes["persistence"]
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for workload in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet") and not d["metadata"]["name"].endswith("-remediator")):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = workload["spec"]["template"]["spec"]
        container = next(c for c in spec["containers"] if c["name"] == "exporter")
        flags = {}
        for a in container["args"]:
            if a.startswith(("--sample.interval=", "--episodes.")):
                flag, _, value = a.partition("=")
                if flag in flags:
                    problem(where, f"{name}: {flag} given twice")
                flags[flag] = value
        interval = flags.pop("--sample.interval", None)
        if interval != str(merged["config"]["sampleInterval"]):
            problem(where, f"{name}: --sample.interval={interval}, config.sampleInterval is {merged['config']['sampleInterval']!r}")
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        templates = {t["metadata"]["name"]: t for t in workload["spec"].get("volumeClaimTemplates") or []}
        if interval in ("0", "0s"):
            if flags or "episodes" in volumes or templates or claims:
                problem(where, f"{name}: sampling is off, yet episode flags {sorted(flags)} or an episodes volume or claim rendered")
            continue
        want = {"--episodes.path": "/var/lib/pg_lock_exporter/episodes.db", "--episodes.query-text": episodes["queryText"],
                "--episodes.retention": episodes["retention"], "--episodes.retention.count": str(episodes["retentionCount"]),
                "--episodes.log-after": episodes["logAfter"]}
        if flags != want:
            problem(where, f"{name}: episode flags {flags}, expected {want}")
        directory = os.path.dirname(flags.get("--episodes.path") or "/")
        mount = next((m for m in container.get("volumeMounts") or [] if m["mountPath"] == directory), None)
        if mount is None or mount.get("readOnly"):
            problem(where, f"{name}: --episodes.path is not on a writable volume mounted at {directory}")
            continue
        if not (spec.get("securityContext") or {}).get("fsGroup"):
            problem(where, f"{name}: no pod fsGroup: the non-root user may not write the episodes volume")
        volume, template = volumes.get(mount["name"]), templates.get(mount["name"])
        if not persistence["enabled"]:
            if not (volume and "emptyDir" in volume and volume["emptyDir"].get("sizeLimit") == episodes["emptyDir"]["sizeLimit"]):
                problem(where, f"{name}: the episodes volume should be an emptyDir of {episodes['emptyDir']['sizeLimit']}, is {volume}")
        elif workload["kind"] == "StatefulSet":
            if volume is not None or template is None or template["spec"]["resources"]["requests"]["storage"] != persistence["size"]:
                problem(where, f"{name}: each shard needs its own claim (volumeClaimTemplates {mount['name']}, {persistence['size']})")
        else:
            claim = ((volume or {}).get("persistentVolumeClaim") or {}).get("claimName")
            if (workload["spec"].get("strategy") or {}).get("type") != "Recreate":
                problem(where, f"{name}: episodes on a claim need strategy Recreate (two pods must not open one SQLite file)")
            if persistence["existingClaim"]:
                if claim != persistence["existingClaim"] or claims:
                    problem(where, f"{name}: the episodes volume should be the existing claim {persistence['existingClaim']!r}, is {claim!r}")
            elif claim not in claims or claims[claim]["spec"]["resources"]["requests"]["storage"] != persistence["size"]:
                problem(where, f"{name}: the episodes volume's claim {claim!r} is not the chart's claim of {persistence['size']}")
            elif (claims[claim]["spec"].get("storageClassName"), persistence["storageClass"]) not in \
                    ((None, ""), ("", "-"), (persistence["storageClass"], persistence["storageClass"])):
                problem(where, f"{name}: claim {claim} storageClassName {claims[claim]['spec'].get('storageClassName')!r} "
                               f"for storageClass {persistence['storageClass']!r}")


MOUNT_ROOTS = ("/etc/pg-lock-exporter/", "/etc/pg-lock-remediator/", "/var/lib/pg_lock_exporter/")


class TLSFixture:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (for
    Prometheus), made with openssl as Tests/PGLockExporterTests/Support/TLSFixture.swift makes
    them; `secrets` holds them as the Secrets the ci cases name (cert-manager's key names)."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "tls-fixture")
        os.makedirs(self.dir)
        script = """set -e
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -subj /CN=test-ca -days 2
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
            printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext
            openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=prometheus
            openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2"""
        out = subprocess.run(["/bin/sh", "-c", script], cwd=self.dir, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            sys.exit(f"check_chart: openssl failed: {out.stderr.strip()}")
        read = lambda name: open(self.path(name)).read()
        self.secrets = {
            "pg-lock-exporter-tls": {"tls.crt": read("server.crt"), "tls.key": read("server.key"), "ca.crt": read("ca.crt")},
            "prometheus-client-ca": {"ca.crt": read("ca.crt")},
        }

    def path(self, name):
        return os.path.join(self.dir, name)


def check_containers_start(docs, where, tmp, binary, fixture):
    """Every container the chart renders starts: the real binary with the rendered arguments,
    the files its projected Secrets would mount (the chart's own with their rendered content:
    the targets file and web config from Helm's toYaml, read by libyaml; the TLS Secrets the ci
    cases name from `fixture`, real certificates; others as stand-ins) under `tmp`, listening on
    127.0.0.1:0, and a database that is not there (the exporter serves pg_up 0; the remediator
    waits for webhooks). It must log msg=listening; then its rendered liveness and readiness
    probes must succeed as the kubelet runs them, and a client CA in its web config must be
    enforced (no client certificate: 403; the fixture's: 200)."""
    secrets = {d["metadata"]["name"]: d.get("stringData") or {} for d in docs if d["kind"] == "Secret"}
    for workload in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        spec = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for c in spec["containers"]:
            root = os.path.join(tmp, c["name"])
            for mount in c.get("volumeMounts") or []:
                base = os.path.join(root, mount["mountPath"].lstrip("/"))
                os.makedirs(base, exist_ok=True)
                for source in (volumes.get(mount["name"], {}).get("projected") or {}).get("sources") or []:
                    secret = source.get("secret") or {}
                    for item in secret.get("items") or []:
                        path = os.path.join(base, item["path"])
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        text = secrets.get(secret["name"], {}).get(item["key"]) \
                            or fixture.secrets.get(secret["name"], {}).get(item["key"], "stand-in-secret\n")
                        for prefix in MOUNT_ROOTS:
                            text = text.replace(prefix, os.path.join(root, prefix.lstrip("/")))
                        with open(path, "w") as f:
                            f.write(text)
            args = []
            web_config = None
            for a in c["args"]:
                for prefix in MOUNT_ROOTS:
                    a = a.replace("=" + prefix, "=" + os.path.join(root, prefix.lstrip("/")))
                a = re.sub(r"^(--web\.listen-address|--listen)=.*", r"\1=127.0.0.1:0", a)
                if a.startswith("--web.config.file="):
                    web_config = yaml.safe_load(open(a.split("=", 1)[1])) or {}
                args.append(a)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATA_SOURCE_NAME"}
            if any(e["name"] == "DATA_SOURCE_NAME" for e in c.get("env") or []):
                env["DATA_SOURCE_NAME"] = "host=/nonexistent dbname=x"  # the rendered one names a cluster host
            name = f"{workload['kind']}/{workload['metadata']['name']} container {c['name']}"
            proc, port, output = start_until_listening([binary, *args], env)
            try:
                if port is None:
                    problem(where, f"{name}: pg_lock_exporter {' '.join(args[:1])} did not start with the rendered arguments: {output}")
                    continue
                store = next((a.split("=", 1)[1] for a in args if a.startswith("--episodes.path=")), None)
                if store and not os.path.isfile(store):
                    problem(where, f"{name}: listening, but the episode store {store} was not created")
                for kind in ("livenessProbe", "readinessProbe"):
                    result = kubelet_probe(c.get(kind) or {}, port)
                    if result is not None:
                        problem(where, f"{name}: the rendered {kind} would fail: {result}")
                server = (web_config or {}).get("tls_server_config") or {}
                if server.get("client_ca_file"):
                    check_client_certificates_enforced(name, where, port, server, fixture)
            finally:
                stop(proc)


def start_until_listening(argv, env, timeout=15):
    """(process, port, None) once it logs msg=listening, else (process, None, what it printed)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    output = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "msg=listening" in line:
            address = re.search(r"address=\S*:(\d+)", line)
            if address:
                return proc, int(address.group(1)), None
        if not line and proc.poll() is not None:
            break
        output.append(line)
    return proc, None, "".join(output).strip() or f"no msg=listening within {timeout}s"


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def https_get(port, path, context, timeout=5):
    """The status of GET path on 127.0.0.1:port over `context` (None: plain HTTP)."""
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def kubelet_probe(probe, port):
    """None when the probe succeeds as the kubelet runs it, else why not. The kubelet's httpGet
    sends no credentials and no client certificate and does not verify the server's certificate;
    2xx and 3xx succeed. A tcpSocket probe succeeds when the port accepts a connection. The
    rendered port names the container's only port, here the listening `port`."""
    if "httpGet" in probe:
        get = probe["httpGet"]
        context = None
        if get.get("scheme", "HTTP") == "HTTPS":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            status = https_get(port, get["path"], context)
        except (OSError, http.client.HTTPException) as error:
            return f"httpGet {get.get('scheme', 'HTTP')} {get['path']}: {error}"
        return None if 200 <= status < 400 else f"httpGet {get.get('scheme', 'HTTP')} {get['path']}: status {status}"
    if "tcpSocket" in probe:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return None
        except OSError as error:
            return f"tcpSocket: {error}"
    return f"neither httpGet nor tcpSocket: {sorted(probe)}"


def check_client_certificates_enforced(name, where, port, server, fixture):
    """With a client CA the web config must refuse a scrape without a client certificate and
    answer one with a certificate the CA signed (when the CA is the fixture's)."""
    auth = server.get("client_auth_type") or "RequireAndVerifyClientCert"
    context = ssl.create_default_context(cafile=fixture.path("ca.crt"))
    try:
        without = https_get(port, "/-/healthy", context)
    except (OSError, http.client.HTTPException) as error:
        without = str(error)
    if auth in ("RequireAnyClientCert", "RequireAndVerifyClientCert") and without != 403:
        problem(where, f"{name}: client_auth_type {auth}, but GET /-/healthy without a client certificate got {without}, not 403")
    context.load_cert_chain(fixture.path("client.crt"), fixture.path("client.key"))
    try:
        status = https_get(port, "/-/healthy", context)
    except (OSError, http.client.HTTPException) as error:
        status = str(error)
    if status != 200:
        problem(where, f"{name}: GET /-/healthy with the client certificate the CA signed got {status}, not 200")


def check_case(helm, values, tmp, binary, fixture):
    where = os.path.relpath(values, REPO)
    out = run([helm, "lint", "--strict", CHART, "--namespace", NAMESPACE, "-f", values])
    if out.returncode != 0:
        problem(where, f"helm lint: {(out.stdout + out.stderr).strip()}")
    text, docs = render(helm, values)
    if text is None:
        return 0
    case_tmp = os.path.join(tmp, os.path.basename(values))
    os.makedirs(case_tmp)
    count = kubernetes_validate(docs, where, case_tmp)
    case_values = yaml.safe_load(open(values)) or {}
    check_rules(docs, where, case_values)
    check_dashboards(docs, where, case_values)
    check_promises(docs, case_values, where)
    check_containers_start(docs, where, case_tmp, binary, fixture)
    return count


def check_bad_values(helm):
    cases = sorted(glob.glob(os.path.join(BAD_VALUES, "*.yaml")))
    if not cases:
        problem("deploy/helm/tests/bad-values", "no cases")
    for path in cases:
        where = os.path.relpath(path, REPO)
        expect = re.search(r"^# expect: (.+)$", open(path).read(), re.M)
        if not expect:
            problem(where, "no '# expect: MESSAGE' line")
            continue
        only = re.search(r"^# only: (\w+)", open(path).read(), re.M)
        for command in (only.group(1),) if only else ("lint", "template"):
            out = run([helm, command, *(["ci"] if command == "template" else []), CHART, "-f", path])
            output = out.stdout + out.stderr
            if out.returncode == 0:
                problem(where, f"helm {command} accepted it")
            elif expect.group(1) not in output:
                problem(where, f"helm {command} failed without naming {expect.group(1)!r}: {output.strip()}")
    return len(cases)


# Strings YAML or a template could misread: a comment, a mapping, quotes, a newline, flow
# syntax, YAML 1.1 booleans and numbers, a tag, an anchor, block indicators, Go template braces,
# surrounding spaces, non-ASCII.
ODD_STRINGS = ["pg_dump #nightly", "etl: nightly", "it's \"quoted\"", "line one\nline two", "[a, b]", "{a: b}",
               "- dash", "yes", "no", "on", "0x10", "1e3", "null", "~", "!tag", "&anchor", "*alias", "| pipe", "> fold",
               "%directive", "@at", "`tick`", "{{ .Values }}", "  padded  ", "tab\there", "naïve ☃", "a,b", "back\\slash",
               "bell\a", "\u2028separator"]
# Integers that Helm reads from a values file as float64: %v of them prints 2e+07.
BIG_COUNTS = {"topRoots": ("--collector.top-roots=", 10_000_000), "maxUserAppPairs": ("--collector.max-user-app-pairs=", 20_000_000)}
BIG_REMEDIATOR_COUNTS = {"maxTerminations": ("--max-terminations=", 30_000_000),
                         "maxTerminationsPerMinute": ("--max-terminations-per-minute=", 1_000_000)}


def check_odd_strings(helm, tmp):
    """Every user string the chart puts into a container's arguments arrives there exactly: each
    list of names, rendered with ODD_STRINGS, parses back to one argument per input, equal to it."""
    lists = {"excludeApplications": "--exclude-application=", "excludeUsers": "--exclude-user=",
             "excludeDatabases": "--exclude-database=", "onlyDatabases": "--only-database="}
    values = {"config": {"datasource": {"host": "db"}, **{key: n for key, (_, n) in BIG_COUNTS.items()}},
              "remediator": {"enabled": True, "webhookToken": {"value": "t"}, "config": {"datasource": {"host": "db"}},
                             "extraArgs": ODD_STRINGS, **{key: ODD_STRINGS for key in lists},
                             **{key: n for key, (_, n) in BIG_REMEDIATOR_COUNTS.items()}}}
    where = "odd strings and big counts in arguments"
    docs = render_values(helm, tmp, "odd-strings", values, where)
    if docs is None:
        return
    remediator = next((d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-remediator")), None)
    args = remediator["spec"]["template"]["spec"]["containers"][0]["args"]
    for key, flag in lists.items():
        got = [a[len(flag):] for a in args if isinstance(a, str) and a.startswith(flag)]
        if got != ODD_STRINGS:
            wrong = [(want, have) for want, have in zip(ODD_STRINGS, got) if want != have]
            problem(where, f"remediator.{key}: {len(got)} {flag}... arguments for {len(ODD_STRINGS)} values, "
                           f"first differences {wrong[:3]}")
    extra = args[-len(ODD_STRINGS):]
    if extra != ODD_STRINGS:
        problem(where, f"remediator.extraArgs: rendered as {extra[:3]}...")
    exporter = next(d for d in docs if d["kind"] == "Deployment" and not d["metadata"]["name"].endswith("-remediator"))
    exporter_args = exporter["spec"]["template"]["spec"]["containers"][0]["args"]
    for counts, rendered in ((BIG_COUNTS, exporter_args), (BIG_REMEDIATOR_COUNTS, args)):
        for key, (flag, n) in counts.items():
            if f"{flag}{n}" not in rendered:
                problem(where, f"{key}: {n} rendered as {[a for a in rendered if str(a).startswith(flag)]}")
    if any(not isinstance(a, str) for a in args + exporter_args):
        problem(where, f"arguments that are not strings: {[a for a in args + exporter_args if not isinstance(a, str)]}")
    kubernetes_validate(docs, where, tmp)


# Free-form strings of the monitoring objects (the schema only fixes how they start).
ODD_MONITORING = {"serviceMonitor.job": "pg_lock_exporter #prod: eu", "serviceMonitor.telemetryPath": "/metrics #a: b",
                  "podMonitor.job": "pg_lock_exporter 'pods' \"x\"", "probe.job": "pg_lock_exporter: {probe} [1]"}


def check_odd_monitoring_strings(helm, tmp):
    """The job names and the metrics path reach the ServiceMonitor, PodMonitor and Probe exactly."""
    values = {"config": {"targets": [{"name": "orders", "dsn": "host=db"}]}}
    for key, text in ODD_MONITORING.items():
        section, field = key.split(".")
        values.setdefault(section, {"enabled": True})[field] = text
    where = "odd strings in the monitoring objects"
    docs = render_values(helm, tmp, "odd-monitoring", values, where)
    if docs is None:
        return
    kinds = {d["kind"]: d["spec"] for d in docs if "spec" in d}
    endpoint = (kinds.get("ServiceMonitor") or {}).get("endpoints", [{}])[0]
    pod_endpoint = (kinds.get("PodMonitor") or {}).get("podMetricsEndpoints", [{}])[0]
    job = lambda e: next((r.get("replacement") for r in e.get("relabelings") or [] if r.get("targetLabel") == "job"), None)
    got = {"serviceMonitor.job": job(endpoint), "serviceMonitor.telemetryPath": endpoint.get("path"),
           "podMonitor.job": job(pod_endpoint), "probe.job": (kinds.get("Probe") or {}).get("jobName")}
    for key, want in ODD_MONITORING.items():
        if got[key] != want:
            problem(where, f"{key}: {want!r} rendered as {got[key]!r}")


ODD_SECRETS = ODD_STRINGS + [" leading space\nsecond line", "no newline\nat the end", "ends in a newline\n", " ", "\n"]


def check_odd_secret_values(helm, tmp):
    """Passwords and the webhook token reach the chart's Secrets exactly (stringData, parsed)."""
    values = {"config": {"targets": [{"name": f"t{i}", "dsn": "host=db", "password": text} for i, text in enumerate(ODD_SECRETS)]},
              "remediator": {"enabled": True, "webhookToken": {"value": ODD_SECRETS[0]},
                             "config": {"datasource": {"host": "db", "password": ODD_SECRETS[-5]}}}}
    where = "odd strings in the Secrets"
    docs = render_values(helm, tmp, "odd-secrets", values, where)
    if docs is None:
        return
    data = {d["metadata"]["name"]: d.get("stringData") or {} for d in docs if d["kind"] == "Secret"}
    own, remediator = data.get(f"{RELEASE}-pg-lock-exporter", {}), data.get(f"{RELEASE}-pg-lock-exporter-remediator", {})
    for i, want in enumerate(ODD_SECRETS):
        if own.get(f"password-t{i}") != want:
            problem(where, f"config.targets[{i}].password {want!r} rendered as {own.get(f'password-t{i}')!r}")
    for key, want in (("token", ODD_SECRETS[0]), ("password", ODD_SECRETS[-5])):
        if remediator.get(key) != want:
            problem(where, f"remediator {key} {want!r} rendered as {remediator.get(key)!r}")


def check_validator_rejects(tmp):
    broken = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
              "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}},
                       "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "imagee": "x"}]}}}}
    path = os.path.join(tmp, "broken.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(broken, f)
    out = run(["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, path])
    if out.returncode == 0:
        problem("kubernetes-validate", "accepted a Deployment with replicas: two and a misspelt field")


def main():
    helm = tool("helm", "HELM")
    for needed in ("kubernetes-validate",):
        if not shutil.which(needed):
            sys.exit(f"check_chart: {needed} not found (scripts/install-deps installs it)")
    binary = os.environ.get("PG_LOCK_EXPORTER_BIN") or os.path.join(REPO, ".build", "debug", "pg_lock_exporter")
    if not os.access(binary, os.X_OK):
        sys.exit(f"check_chart: {binary} not found; build it (swift build) or set PG_LOCK_EXPORTER_BIN")
    version = run([helm, "version", "--short"]).stdout.strip()
    check_copies()
    cases = sorted(glob.glob(os.path.join(CHART, "ci", "*-values.yaml")))
    if not cases:
        problem("deploy/helm/pg-lock-exporter/ci", "no *-values.yaml cases")
    objects = 0
    with tempfile.TemporaryDirectory(prefix="check_chart.") as tmp:
        fixture = TLSFixture(tmp)
        for values in cases:
            objects += check_case(helm, values, tmp, binary, fixture)
        bad = check_bad_values(helm)
        check_odd_strings(helm, tmp)
        check_odd_monitoring_strings(helm, tmp)
        check_odd_secret_values(helm, tmp)
        check_validator_rejects(tmp)
    for line in problems:
        print(line)
    if problems:
        print(f"check_chart: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_chart: helm {version}: {len(cases)} value cases linted and rendered, {objects} core objects valid for "
          f"Kubernetes {KUBERNETES_VERSION}, {bad} bad-values cases refused naming the field")
    return 0


if __name__ == "__main__":
    sys.exit(main())
