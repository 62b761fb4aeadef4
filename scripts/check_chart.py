#!/usr/bin/env python3
"""Check the Helm chart in deploy/helm/pg-lock-exporter with the tools Kubernetes users trust:

  * files/ holds alerts/*.rules.yml and dashboards/*.json byte for byte (`make chart-sync`);
  * each ci/*-values.yaml case passes `helm lint --strict`, and its `helm template` output: core kinds
    pass kubernetes-validate --strict (Kubernetes 1.33); the PrometheusRule holds alerts/'s groups
    (check_alerts.sh runs them through promtool), the dashboard ConfigMap dashboards/ byte for byte;
    the chart's promises hold (no secret in args or env, securityContext defaults, --execute only when
    asked, the job the alerts select, poolers' flags and password files, the episode store on a
    writable volume, one pod per claim); every container starts as the real binary
    ($PG_LOCK_EXPORTER_BIN or .build/debug/pg_lock_exporter) with its rendered arguments and files,
    creates its episode store, passes its probes as the kubelet runs them, enforces a client CA;
  * strings YAML would misread reach arguments, monitoring objects and Secrets exactly; big counts
    render as integers; each deploy/helm/tests/bad-values/*.yaml fails `helm lint` and `helm template`
    naming what its "# expect:" line says; kubernetes-validate rejects a broken Deployment.

helm: $HELM, else scripts/install-deps' copy (~/.cache/pg_lock_exporter/k8s-tools), else PATH.
Needs PyYAML and kubernetes-validate. One line per problem; exit 1.
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
ALERTS = os.path.join(REPO, "alerts", "pg_lock_exporter.rules.yml")
TOOLS = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pg_lock_exporter", "k8s-tools")
KUBERNETES_VERSION = "1.33.0"
CORE_API_GROUPS = ("v1", "apps/v1", "networking.k8s.io/v1", "policy/v1", "rbac.authorization.k8s.io/v1")
RELEASE, NAMESPACE = "ci", "monitoring-ci"
PLACEHOLDER = "__RUNBOOK_BASE_URL__"
MOUNT_ROOTS = ("/etc/pg-lock-exporter/", "/etc/pg-lock-remediator/", "/var/lib/pg_lock_exporter/")
problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def expect(ok, where, text):
    if not ok:
        problem(where, text)


def run(args, timeout=60):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def container(docs, name):
    return next(((c, pod_spec(w)) for w in workloads(docs) for c in pod_spec(w)["containers"] if c["name"] == name), (None, None))


def flag_values(args, flag):
    return [a.split("=", 1)[1] for a in args if isinstance(a, str) and a.startswith(flag + "=")]


def mounted_secret_paths(spec):
    return {item["path"] for v in spec.get("volumes") or [] for s in (v.get("projected") or {}).get("sources") or []
            for item in (s.get("secret") or {}).get("items") or []}


def merge(base, over):
    """`over` merged into `base` as Helm merges a values file into the chart's values.yaml."""
    out = dict(base)
    for key, value in (over or {}).items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


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


def render(helm, values, where=None):
    """The documents `helm template` renders from the values file, or None after reporting why not."""
    out = run([helm, "template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", values])
    if out.returncode != 0:
        problem(os.path.relpath(values, REPO), f"helm template failed: {out.stderr.strip()}")
        if where:
            problem(where, "did not render (see above)")
        return None
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_values(helm, tmp, name, where, values):
    """Renders `values` written as JSON (YAML every parser reads alike: PyYAML would leave 1e3 unquoted)."""
    return render(helm, write(os.path.join(tmp, f"{name}-values.yaml"), json.dumps(values)), where)


def kubernetes_validate(docs, where, tmp):
    core = [d for d in docs if d.get("apiVersion") in CORE_API_GROUPS]
    out = run(["kubernetes-validate", "--strict", "--quiet", "--no-warn", "-k", KUBERNETES_VERSION,
               write(os.path.join(tmp, "core.yaml"), yaml.safe_dump_all(core))])
    expect(out.returncode == 0, where, f"kubernetes-validate: {(out.stdout + out.stderr).strip()}")
    return len(core)


def check_rules_and_dashboards(docs, values, where):
    """The PrometheusRule's groups are alerts/'s, the dashboards dashboards/'s byte for byte, runbook links filled in."""
    base = values["runbookBaseURL"]
    for rule in [d for d in docs if d["kind"] == "PrometheusRule"][:1]:
        groups = rule["spec"]["groups"]
        expect(groups == yaml.safe_load(read(ALERTS).replace(PLACEHOLDER, base or PLACEHOLDER))["groups"], where,
               "PrometheusRule groups differ from alerts/pg_lock_exporter.rules.yml")
        expect(not (base and PLACEHOLDER in json.dumps(groups)), where,
               f"runbookBaseURL is set but the PrometheusRule still carries {PLACEHOLDER}")
    originals = {os.path.basename(p) for p in glob.glob(os.path.join(REPO, "dashboards", "*.json"))}
    for cm in (d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")):
        expect(set(cm["data"]) == originals, where, f"dashboard ConfigMap keys {sorted(cm['data'])} are not dashboards/ {sorted(originals)}")
        for key, text in cm["data"].items():
            path = os.path.join(REPO, "dashboards", key)
            if os.path.exists(path) and text != read(path).replace(PLACEHOLDER, base or PLACEHOLDER):
                problem(where, f"rendered dashboard {key} is not byte-identical to dashboards/{key} (runbook link aside)")


def check_promises(docs, values, where):
    """What the chart promises that no schema checks (`values`: merged with the chart's)."""
    remediator = values["remediator"]
    for workload in workloads(docs):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = pod_spec(workload)
        pod_sc = spec.get("securityContext") or {}
        expect(pod_sc.get("runAsNonRoot") and (pod_sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", where,
               f"{name}: pod securityContext must set runAsNonRoot and seccomp RuntimeDefault")
        for c in spec["containers"]:
            sc = c.get("securityContext") or {}
            expect(sc.get("readOnlyRootFilesystem") and sc.get("runAsNonRoot") and sc.get("allowPrivilegeEscalation") is False
                   and (sc.get("capabilities") or {}).get("drop") == ["ALL"], where,
                   f"{name}: container {c['name']} must be non-root, read-only, no privilege escalation, drop ALL")
            for e in c.get("env") or []:
                expect("value" not in e, where, f"{name}: env {e['name']} carries a literal value; use secretKeyRef")
            for a in c.get("args") or []:
                # A pooler's admin-console DSN is in argv by design (the schema refuses a password in it).
                pooler_dsn = a.startswith("--pgbouncer.dsn=") and not re.search(r"password", a, re.I)
                secret_file = re.match(r"--(pg\.password|pgbouncer\.password|webhook\.token)-file=/etc/", a)
                expect(pooler_dsn or secret_file or not re.search(r"password|dsn=|token=", a, re.I), where,
                       f"{name}: argument {a!r} may carry a secret")
            expect(c["name"] != "remediator" or ("--execute" in c["args"]) == bool(remediator.get("execute")), where,
                   f"{name}: --execute must appear exactly when remediator.execute is true")
    if remediator.get("enabled"):
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        expect(len(policies) == 1 and len(policies[0]["spec"]["ingress"]) == 1, where,
               "the remediator needs one NetworkPolicy admitting Alertmanager only")
    else:
        expect(not any(d["kind"] in ("NetworkPolicy", "AlertmanagerConfig") or d["metadata"]["name"].endswith("-remediator") for d in docs),
               where, "remediator objects rendered although remediator.enabled is false")
    targets = values["config"].get("targets") or []
    probes = [d for d in docs if d["kind"] == "Probe"]
    expect(not values["probe"].get("enabled") or sorted(p["spec"]["targets"]["staticConfig"]["static"][0] for p in probes)
           == sorted(t["name"] for t in targets), where, "one Probe per config.targets entry expected")
    for p in probes if values["sharding"].get("enabled") else []:
        relabel = p["spec"]["targets"]["staticConfig"]["relabelingConfigs"][0]
        expect(relabel.get("action") == "hashmod" and relabel.get("modulus") == values["replicaCount"], where,
               f"Probe {p['metadata']['name']}: sharding needs hashmod with modulus replicaCount")
    # The job label every scrape gets must be one the alerts select (PostgresExporterDown).
    exprs = " ".join(r["expr"] for g in yaml.safe_load(read(ALERTS))["groups"] for r in g["rules"])
    selectors = set(re.findall(r'job=~"(pg_lock_exporter[^"]*)"', exprs))
    for d in (d for d in docs if d["kind"] in ("Probe", "ServiceMonitor", "PodMonitor")):
        endpoints = d["spec"].get("endpoints") or d["spec"].get("podMetricsEndpoints") or []
        jobs = [d["spec"].get("jobName")] if d["kind"] == "Probe" else \
            [r.get("replacement") for e in endpoints for r in e.get("relabelings") or [] if r.get("targetLabel") == "job"]
        expect(jobs and all(j and any(re.fullmatch(s, j) for s in selectors) for j in jobs), where,
               f"{d['kind']} {d['metadata']['name']}: job {jobs} is not selected by the alerts' job=~ {sorted(selectors)}")
    secret = next((d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == f"{RELEASE}-pg-lock-exporter"), None)
    if targets and secret:
        # The targets file must be what the binary reads: every target, with its poolers.
        parsed = yaml.safe_load(secret["stringData"]["targets.yml"])["targets"]
        expect(sorted(parsed) == sorted(t["name"] for t in targets), where, "targets.yml does not list config.targets")
        for t in targets:
            want = [p["dsn"] for p in t.get("pgbouncers") or []]
            got = [p.get("dsn") for p in (parsed.get(t["name"]) or {}).get("pgbouncers") or []]
            expect(want == got, where, f"targets.yml: target {t['name']}: pgbouncers {got} instead of {want}")


def check_poolers(docs, values, where):
    """The PgBouncers named reach the exporter and remediator: --pgbouncer.dsn flags (single-target mode),
    --pgbouncer.timeout whenever one is named, password files mounted where the flag or targets file says."""
    config, pgbouncer = values["config"], values["config"]["pgbouncer"]
    targets = config.get("targets") or []
    expected = {"exporter": [] if targets else list(pgbouncer.get("dsns") or []),
                "remediator": list(values["remediator"]["config"]["pgbouncer"].get("dsns") or [])}
    for name, root in (("exporter", "/etc/pg-lock-exporter/"), ("remediator", "/etc/pg-lock-remediator/")):
        c, pod = container(docs, name)
        dsns = flag_values(c["args"], "--pgbouncer.dsn") if c else expected[name]
        expect(dsns == expected[name], where, f"{name}: --pgbouncer.dsn {dsns} instead of {expected[name]}")
        for flag in flag_values(c["args"], "--pgbouncer.password-file") if c else []:
            expect(flag.removeprefix(root) in mounted_secret_paths(pod), where, f"{name}: --pgbouncer.password-file {flag} is not mounted")
    exporter, spec = container(docs, "exporter")
    if exporter is None:
        return
    named = bool(expected["exporter"]) or any(t.get("pgbouncers") for t in targets)
    timeouts = [a for a in exporter["args"] if a.startswith("--pgbouncer.timeout=")]
    expect(timeouts == ([f"--pgbouncer.timeout={pgbouncer['timeout']}"] if named else []), where,
           f"exporter: {timeouts} with poolers named: {named}")
    password_flags = flag_values(exporter["args"], "--pgbouncer.password-file")
    has_password = bool(expected["exporter"]) and bool(pgbouncer.get("password") or pgbouncer.get("passwordSecret"))
    expect(len(password_flags) == int(has_password), where,
           f"exporter: --pgbouncer.password-file {password_flags}; a password was given: {has_password}")
    mounted = mounted_secret_paths(spec)
    for t in targets:
        for index, pooler in enumerate(t.get("pgbouncers") or []):
            path = f"pgbouncers/{t['name']}-{index}"
            expect(bool(pooler.get("password") or pooler.get("passwordSecret")) == (path in mounted), where,
                   f"target {t['name']}: pooler {index}'s password file mounted: {path in mounted}")


def check_episodes(docs, values, where):
    """--sample.interval always rendered; unless 0 (then no episode flags or volume) the --episodes.* flags carry the
    values, the store is on a writable volume the fsGroup may write, one pod owns each claim (Recreate or per shard)."""
    episodes = values["episodes"]
    persistence, storage_class = episodes["persistence"], episodes["persistence"]["storageClass"]
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for workload in (w for w in workloads(docs) if not w["metadata"]["name"].endswith("-remediator")):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = pod_spec(workload)
        exporter = next(c for c in spec["containers"] if c["name"] == "exporter")
        pairs = [a.partition("=")[::2] for a in exporter["args"] if a.startswith(("--sample.interval=", "--episodes."))]
        flags = dict(pairs)
        for flag in sorted({f for f, _ in pairs if [g for g, _ in pairs].count(f) > 1}):
            problem(where, f"{name}: {flag} given twice")
        interval = flags.pop("--sample.interval", None)
        expect(interval == str(values["config"]["sampleInterval"]), where,
               f"{name}: --sample.interval={interval}, config.sampleInterval is {values['config']['sampleInterval']!r}")
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        templates = {t["metadata"]["name"]: t for t in workload["spec"].get("volumeClaimTemplates") or []}
        if interval in ("0", "0s"):
            expect(not (flags or "episodes" in volumes or templates or claims), where,
                   f"{name}: sampling is off, yet episode flags {sorted(flags)} or an episodes volume or claim rendered")
            continue
        want = {"--episodes.path": "/var/lib/pg_lock_exporter/episodes.db", "--episodes.query-text": episodes["queryText"],
                "--episodes.retention": episodes["retention"], "--episodes.retention.count": str(episodes["retentionCount"]),
                "--episodes.log-after": episodes["logAfter"]}
        expect(flags == want, where, f"{name}: episode flags {flags}, expected {want}")
        directory = os.path.dirname(flags.get("--episodes.path") or "/")
        mount = next((m for m in exporter.get("volumeMounts") or [] if m["mountPath"] == directory), None)
        if mount is None or mount.get("readOnly"):
            problem(where, f"{name}: --episodes.path is not on a writable volume mounted at {directory}")
            continue
        expect((spec.get("securityContext") or {}).get("fsGroup"), where,
               f"{name}: no pod fsGroup: the non-root user may not write the episodes volume")
        volume, template = volumes.get(mount["name"]), templates.get(mount["name"])
        if not persistence["enabled"]:
            expect(volume and "emptyDir" in volume and volume["emptyDir"].get("sizeLimit") == episodes["emptyDir"]["sizeLimit"], where,
                   f"{name}: the episodes volume should be an emptyDir of {episodes['emptyDir']['sizeLimit']}, is {volume}")
        elif workload["kind"] == "StatefulSet":
            expect(volume is None and template and template["spec"]["resources"]["requests"]["storage"] == persistence["size"], where,
                   f"{name}: each shard needs its own claim (volumeClaimTemplates {mount['name']}, {persistence['size']})")
        else:
            claim = ((volume or {}).get("persistentVolumeClaim") or {}).get("claimName")
            expect((workload["spec"].get("strategy") or {}).get("type") == "Recreate", where,
                   f"{name}: episodes on a claim need strategy Recreate (two pods must not open one SQLite file)")
            if persistence["existingClaim"]:
                expect(claim == persistence["existingClaim"] and not claims, where,
                       f"{name}: the episodes volume should be the existing claim {persistence['existingClaim']!r}, is {claim!r}")
            elif claim not in claims or claims[claim]["spec"]["resources"]["requests"]["storage"] != persistence["size"]:
                problem(where, f"{name}: the episodes volume's claim {claim!r} is not the chart's claim of {persistence['size']}")
            elif (claims[claim]["spec"].get("storageClassName"), storage_class) not in \
                    ((None, ""), ("", "-"), (storage_class, storage_class)):
                problem(where, f"{name}: claim {claim} storageClassName {claims[claim]['spec'].get('storageClassName')!r} "
                               f"for storageClass {storage_class!r}")


def tls_fixture(tmp):
    """(directory, Secrets the ci cases name): CA, server and client certificates as Support/TLSFixture.swift makes them."""
    directory = os.path.join(tmp, "tls-fixture")
    os.makedirs(directory)
    script = """set -e
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -subj /CN=test-ca -days 2
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
        printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext
        openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=prometheus
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2"""
    out = subprocess.run(["/bin/sh", "-c", script], cwd=directory, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        sys.exit(f"check_chart: openssl failed: {out.stderr.strip()}")
    pem = {name: read(os.path.join(directory, name)) for name in ("server.crt", "server.key", "ca.crt")}
    return directory, {"pg-lock-exporter-tls": {"tls.crt": pem["server.crt"], "tls.key": pem["server.key"], "ca.crt": pem["ca.crt"]},
                       "prometheus-client-ca": {"ca.crt": pem["ca.crt"]}}


def relocate(text, root, before=""):
    """`text` with the container's mount roots moved under `root` (only where `before` precedes them)."""
    for prefix in MOUNT_ROOTS:
        text = text.replace(before + prefix, before + os.path.join(root, prefix.lstrip("/")))
    return text


def check_containers_start(docs, where, tmp, binary, fixture):
    """Every container starts as the binary with its rendered arguments on 127.0.0.1:0, its Secrets under `tmp`
    (rendered, from `fixture`, or stand-ins) and no database; then its probes pass and a client CA is enforced."""
    fixture_dir, fixture_secrets = fixture
    secrets = {d["metadata"]["name"]: d.get("stringData") or {} for d in docs if d["kind"] == "Secret"}
    for workload in workloads(docs):
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for c in spec["containers"]:
            root = os.path.join(tmp, c["name"])
            for mount in c.get("volumeMounts") or []:
                base = os.path.join(root, mount["mountPath"].lstrip("/"))
                os.makedirs(base, exist_ok=True)
                for source in (volumes.get(mount["name"], {}).get("projected") or {}).get("sources") or []:
                    secret = source.get("secret") or {}
                    for item in secret.get("items") or []:
                        text = secrets.get(secret["name"], {}).get(item["key"]) \
                            or fixture_secrets.get(secret["name"], {}).get(item["key"], "stand-in-secret\n")
                        write(os.path.join(base, item["path"]), relocate(text, root))
            args = [re.sub(r"^(--web\.listen-address|--listen)=.*", r"\1=127.0.0.1:0", relocate(a, root, "=")) for a in c["args"]]
            web_config = next((yaml.safe_load(read(path)) or {} for path in flag_values(args, "--web.config.file")), {})
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATA_SOURCE_NAME"}
            if any(e["name"] == "DATA_SOURCE_NAME" for e in c.get("env") or []):
                env["DATA_SOURCE_NAME"] = "host=/nonexistent dbname=x"  # the rendered one names a cluster host
            name = f"{workload['kind']}/{workload['metadata']['name']} container {c['name']}"
            proc, port, output = start_until_listening([binary, *args], env)
            try:
                if port is None:
                    problem(where, f"{name}: pg_lock_exporter {' '.join(args[:1])} did not start with the rendered arguments: {output}")
                    continue
                store = next(iter(flag_values(args, "--episodes.path")), None)
                expect(not store or os.path.isfile(store), where, f"{name}: listening, but the episode store {store} was not created")
                for kind in ("livenessProbe", "readinessProbe"):
                    result = kubelet_probe(c.get(kind) or {}, port)
                    expect(result is None, where, f"{name}: the rendered {kind} would fail: {result}")
                server = web_config.get("tls_server_config") or {}
                if server.get("client_ca_file"):  # enforced: no client certificate gets 403, the fixture's 200
                    auth = server.get("client_auth_type") or "RequireAndVerifyClientCert"
                    context = ssl.create_default_context(cafile=os.path.join(fixture_dir, "ca.crt"))
                    without = get_status(port, "/-/healthy", context)
                    expect(auth not in ("RequireAnyClientCert", "RequireAndVerifyClientCert") or without == 403, where,
                           f"{name}: client_auth_type {auth}, but GET /-/healthy without a client certificate got {without}, not 403")
                    context.load_cert_chain(os.path.join(fixture_dir, "client.crt"), os.path.join(fixture_dir, "client.key"))
                    status = get_status(port, "/-/healthy", context)
                    expect(status == 200, where, f"{name}: GET /-/healthy with the client certificate the CA signed got {status}, not 200")
            finally:
                proc.terminate()  # a no-op once it has exited
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_until_listening(argv, env, timeout=15):
    """(process, port, None) once it logs msg=listening, else (process, None, what it printed)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    output, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        address = re.search(r"address=\S*:(\d+)", line) if "msg=listening" in line else None
        if address:
            return proc, int(address.group(1)), None
        if not line and proc.poll() is not None:
            break
        output.append(line)
    return proc, None, "".join(output).strip() or f"no msg=listening within {timeout}s"


def get_status(port, path, context=None, timeout=5):
    """The status of GET path on 127.0.0.1:port (HTTPS over `context` unless None), or the error as a string."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout) if context is None \
        else http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return str(error)
    finally:
        conn.close()


def kubelet_probe(probe, port):
    """None if the probe passes as the kubelet runs it (no client certificate, server unverified, 2xx/3xx), else why not."""
    if "httpGet" in probe:
        get, context = probe["httpGet"], None
        if get.get("scheme", "HTTP") == "HTTPS":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        status = get_status(port, get["path"], context)
        if isinstance(status, int) and 200 <= status < 400:
            return None
        return f"httpGet {get.get('scheme', 'HTTP')} {get['path']}: " + (f"status {status}" if isinstance(status, int) else status)
    if "tcpSocket" in probe:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return None
        except OSError as error:
            return f"tcpSocket: {error}"
    return f"neither httpGet nor tcpSocket: {sorted(probe)}"


def check_case(helm, values, tmp, binary, fixture):
    where = os.path.relpath(values, REPO)
    out = run([helm, "lint", "--strict", CHART, "--namespace", NAMESPACE, "-f", values])
    expect(out.returncode == 0, where, f"helm lint: {(out.stdout + out.stderr).strip()}")
    docs = render(helm, values)
    if docs is None:
        return 0
    case_tmp = os.path.join(tmp, os.path.basename(values))
    count = kubernetes_validate(docs, where, case_tmp)
    merged = merge(yaml.safe_load(read(os.path.join(CHART, "values.yaml"))), yaml.safe_load(read(values)))
    for check in (check_rules_and_dashboards, check_promises, check_episodes, check_poolers):
        check(docs, merged, where)
    check_containers_start(docs, where, case_tmp, binary, fixture)
    return count


def check_refusals(helm, tmp):
    """Each bad-values case is refused naming what its "# expect:" line says; kubernetes-validate is no no-op."""
    broken = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
              "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}},
                       "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "imagee": "x"}]}}}}
    out = run(["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION,
               write(os.path.join(tmp, "broken.yaml"), yaml.safe_dump(broken))])
    expect(out.returncode != 0, "kubernetes-validate", "accepted a Deployment with replicas: two and a misspelt field")
    cases = sorted(glob.glob(os.path.join(REPO, "deploy", "helm", "tests", "bad-values", "*.yaml")))
    expect(cases, "deploy/helm/tests/bad-values", "no cases")
    for path in cases:
        where, text = os.path.relpath(path, REPO), read(path)
        wanted = re.search(r"^# expect: (.+)$", text, re.M)
        if not wanted:
            problem(where, "no '# expect: MESSAGE' line")
            continue
        only = re.search(r"^# only: (\w+)", text, re.M)
        for command in (only.group(1),) if only else ("lint", "template"):
            out = run([helm, command, *(["ci"] if command == "template" else []), CHART, "-f", path])
            output = (out.stdout + out.stderr).strip()
            expect(out.returncode != 0, where, f"helm {command} accepted it")
            expect(out.returncode == 0 or wanted.group(1) in output, where,
                   f"helm {command} failed without naming {wanted.group(1)!r}: {output}")
    return len(cases)


# Strings YAML or a template could misread: a comment, a mapping, quotes, a newline, flow syntax, YAML 1.1
# booleans and numbers, a tag, an anchor, block indicators, Go template braces, surrounding spaces, non-ASCII.
ODD_STRINGS = ["pg_dump #nightly", "etl: nightly", "it's \"quoted\"", "line one\nline two", "[a, b]", "{a: b}",
               "- dash", "yes", "no", "on", "0x10", "1e3", "null", "~", "!tag", "&anchor", "*alias", "| pipe", "> fold",
               "%directive", "@at", "`tick`", "{{ .Values }}", "  padded  ", "tab\there", "naïve ☃", "a,b", "back\\slash",
               "bell\a", "\u2028separator"]
# Integers that Helm reads from a values file as float64: %v of them prints 2e+07.
BIG_COUNTS = {"topRoots": ("--collector.top-roots=", 10_000_000), "maxUserAppPairs": ("--collector.max-user-app-pairs=", 20_000_000)}
BIG_REMEDIATOR_COUNTS = {"maxTerminations": ("--max-terminations=", 30_000_000),
                         "maxTerminationsPerMinute": ("--max-terminations-per-minute=", 1_000_000)}
# Free-form strings of the monitoring objects (the schema only fixes how they start).
ODD_MONITORING = {"serviceMonitor": {"job": "pg_lock_exporter #prod: eu", "telemetryPath": "/metrics #a: b"},
                  "podMonitor": {"job": "pg_lock_exporter 'pods' \"x\""}, "probe": {"job": "pg_lock_exporter: {probe} [1]"}}
ODD_SECRETS = ODD_STRINGS + [" leading space\nsecond line", "no newline\nat the end", "ends in a newline\n", " ", "\n"]


def check_odd_values(helm, tmp):
    """Odd strings reach the remediator's arguments (one each), monitoring objects and Secrets exactly; big counts stay integers."""
    lists = {"excludeApplications": "--exclude-application", "excludeUsers": "--exclude-user",
             "excludeDatabases": "--exclude-database", "onlyDatabases": "--only-database"}
    where = "odd strings and big counts in arguments"
    docs = render_values(helm, tmp, "odd-strings", where, {
        "config": {"datasource": {"host": "db"}, **{key: n for key, (_, n) in BIG_COUNTS.items()}},
        "remediator": {"enabled": True, "webhookToken": {"value": "t"}, "config": {"datasource": {"host": "db"}},
                       "extraArgs": ODD_STRINGS, **{key: ODD_STRINGS for key in lists},
                       **{key: n for key, (_, n) in BIG_REMEDIATOR_COUNTS.items()}}})
    if docs is not None:
        deployments = {d["metadata"]["name"].endswith("-remediator"): d for d in docs if d["kind"] == "Deployment"}
        args, exporter_args = (pod_spec(deployments[remediator])["containers"][0]["args"] for remediator in (True, False))
        for key, flag in lists.items():
            got = flag_values(args, flag)
            wrong = [(want, have) for want, have in zip(ODD_STRINGS, got) if want != have]
            expect(got == ODD_STRINGS, where, f"remediator.{key}: {len(got)} {flag}=... arguments for {len(ODD_STRINGS)} values, "
                                              f"first differences {wrong[:3]}")
        expect(args[-len(ODD_STRINGS):] == ODD_STRINGS, where, f"remediator.extraArgs: rendered as {args[-len(ODD_STRINGS):][:3]}...")
        for counts, rendered in ((BIG_COUNTS, exporter_args), (BIG_REMEDIATOR_COUNTS, args)):
            for key, (flag, n) in counts.items():
                expect(f"{flag}{n}" in rendered, where, f"{key}: {n} rendered as {[a for a in rendered if str(a).startswith(flag)]}")
        not_strings = [a for a in args + exporter_args if not isinstance(a, str)]
        expect(not not_strings, where, f"arguments that are not strings: {not_strings}")
        kubernetes_validate(docs, where, tmp)
    where = "odd strings in the monitoring objects"
    docs = render_values(helm, tmp, "odd-monitoring", where, {"config": {"targets": [{"name": "orders", "dsn": "host=db"}]},
                                                              **{s: {"enabled": True, **fields} for s, fields in ODD_MONITORING.items()}})
    if docs is not None:
        spec = {d["kind"]: d["spec"] for d in docs if "spec" in d}
        endpoint = (spec.get("ServiceMonitor") or {}).get("endpoints", [{}])[0]
        job = lambda e: next((r.get("replacement") for r in e.get("relabelings") or [] if r.get("targetLabel") == "job"), None)
        got = {"serviceMonitor.job": job(endpoint), "serviceMonitor.telemetryPath": endpoint.get("path"),
               "podMonitor.job": job((spec.get("PodMonitor") or {}).get("podMetricsEndpoints", [{}])[0]),
               "probe.job": (spec.get("Probe") or {}).get("jobName")}
        for key, want in ((f"{s}.{field}", text) for s, fields in ODD_MONITORING.items() for field, text in fields.items()):
            expect(got[key] == want, where, f"{key}: {want!r} rendered as {got[key]!r}")
    where = "odd strings in the Secrets"
    docs = render_values(helm, tmp, "odd-secrets", where, {
        "config": {"targets": [{"name": f"t{i}", "dsn": "host=db", "password": text} for i, text in enumerate(ODD_SECRETS)]},
        "remediator": {"enabled": True, "webhookToken": {"value": ODD_SECRETS[0]},
                       "config": {"datasource": {"host": "db", "password": ODD_SECRETS[-5]}}}})
    if docs is not None:
        data = {d["metadata"]["name"]: d.get("stringData") or {} for d in docs if d["kind"] == "Secret"}
        own, remediator = data.get(f"{RELEASE}-pg-lock-exporter", {}), data.get(f"{RELEASE}-pg-lock-exporter-remediator", {})
        for i, want in enumerate(ODD_SECRETS):
            expect(own.get(f"password-t{i}") == want, where, f"config.targets[{i}].password {want!r} rendered as {own.get(f'password-t{i}')!r}")
        for key, want in (("token", ODD_SECRETS[0]), ("password", ODD_SECRETS[-5])):
            expect(remediator.get(key) == want, where, f"remediator {key} {want!r} rendered as {remediator.get(key)!r}")


def main():
    helm = os.environ.get("HELM") or shutil.which("helm", path=TOOLS) or shutil.which("helm")
    if not helm:
        sys.exit(f"check_chart: helm not found (scripts/install-deps installs it into {TOOLS})")
    if not shutil.which("kubernetes-validate"):
        sys.exit("check_chart: kubernetes-validate not found (scripts/install-deps installs it)")
    binary = os.environ.get("PG_LOCK_EXPORTER_BIN") or os.path.join(REPO, ".build", "debug", "pg_lock_exporter")
    if not os.access(binary, os.X_OK):
        sys.exit(f"check_chart: {binary} not found; build it (swift build) or set PG_LOCK_EXPORTER_BIN")
    version = run([helm, "version", "--short"]).stdout.strip()
    check_copies()
    cases = sorted(glob.glob(os.path.join(CHART, "ci", "*-values.yaml")))
    expect(cases, "deploy/helm/pg-lock-exporter/ci", "no *-values.yaml cases")
    with tempfile.TemporaryDirectory(prefix="check_chart.") as tmp:
        fixture = tls_fixture(tmp)
        objects = sum(check_case(helm, values, tmp, binary, fixture) for values in cases)
        bad = check_refusals(helm, tmp)
        check_odd_values(helm, tmp)
    if problems:
        print("\n".join(problems))
        print(f"check_chart: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_chart: helm {version}: {len(cases)} value cases linted and rendered, {objects} core objects valid for "
          f"Kubernetes {KUBERNETES_VERSION}, {bad} bad-values cases refused naming the field")
    return 0


if __name__ == "__main__":
    sys.exit(main())
