#!/usr/bin/env python3
"""What ties docker-compose.yml's pieces together, which no schema, linter or tool checks.

Checked elsewhere, by the ecosystems' own tools (`make test-packaging`): the compose file's
structure (`check-jsonschema --builtin-schema vendor.compose-spec`), the Dockerfiles (hadolint),
the Prometheus and Alertmanager configurations (promtool, amtool: run here, on the files as the
containers see them) and the shipped PgBouncer configuration and entrypoint, run natively by
tests/test_compose_pgbouncer.py. Left to this script, one line per problem (exit status 1):

  mounts   bind mounts exist in the repo and are read-only; named volumes and secrets are
           declared; a secret's file, or the .example of a generated one, exists; the generated
           ones are gitignored and their examples are not
  ours     the exporter and the remediator build this repo's image, not as root, read-only; their
           DSN connects as lock_monitor / lock_remediator with the password from a mounted secret;
           every subcommand and --flag exists in Sources/pg_lock_exporter; the files they keep
           (--episodes.path, --audit-log) sit on a named volume in a directory the Dockerfile makes
           the image user's; the webhook has a token file
  secrets  no password literal in environment values or commands; every /run/secrets/NAME used is
           mounted; postgres and the remediator are never published, other ports only on loopback
  wiring   Prometheus targets name services on the ports they listen on; the scrape jobs match the
           rules' job selectors; Alertmanager's webhook reaches the remediator's --listen port and
           path with the token file the remediator reads; Grafana's data source and dashboards
           resolve through its mounts to the repo's dashboards/
  image    the Dockerfile's build stage installs the apt packages Package.swift names, its runtime
           stage the runtime package of every library a Sources/*/module.modulemap links

The file uses compose's short syntax for volumes, ports and secrets; anything else is reported.
Usage: scripts/check_compose.py [--compose FILE]. Needs PyYAML, promtool and amtool.
"""

import argparse
import glob
import re
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path, PurePosixPath

import yaml

REPO = Path(__file__).resolve().parent.parent
OURS = {"exporter": ("lock_monitor", "serve", ["--episodes.path"]),
        "remediator": ("lock_remediator", "remediate", ["--audit-log"])}  # DSN user, subcommand, kept files
NEVER_PUBLISHED = {"postgres", "remediator"}
DEFAULT_PORTS = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000, "postgres": 5432}
# Library a module map links -> its Debian 12 runtime package.
RUNTIME_PACKAGES = {"pq": "libpq5", "microhttpd": "libmicrohttpd12", "gnutls": "libgnutls30", "crypt": "libcrypt1",
                    "yaml": "libyaml-0-2", "pg_query": "libpg-query1504.0", "sqlite3": "libsqlite3-0", "curl": "libcurl4"}
SECRET_NAME = re.compile(r"(?i)pass|secret|token|credential|private|api_?key")
PASSWORD_LITERAL = re.compile(r"(?i)(^|\s)password\s*=|://[^/@\s:]*:[^/@\s]*@")

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def flag(args, name):
    """The value of --name=V or --name V, else None."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None


def port_of(address):
    m = re.search(r":(\d+)$", address or "")
    return int(m.group(1)) if m else None


def run(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    text = (out.stdout + out.stderr).strip().splitlines()
    return out.returncode, (text or ["(no output)"])[-1]


class Service:
    """One service: its command, environment, bind mounts (container path -> repo path), named
    volumes (container path -> (name, read-only)) and secrets (/run/secrets path -> name)."""

    def __init__(self, name, spec, doc):
        self.name, self.spec, self.where = name, spec or {}, f"service {name}"
        self.command = [str(a) for a in self.spec.get("command") or []]
        self.entrypoint = [str(a) for a in self.spec.get("entrypoint") or []]
        self.env = {str(k): "" if v is None else str(v) for k, v in (self.spec.get("environment") or {}).items()}
        self.binds, self.volumes, self.secrets = {}, {}, {}
        for item in self.spec.get("volumes") or []:
            parts = item.split(":") if isinstance(item, str) else []
            if len(parts) < 2:
                problem(self.where, f"volume {item!r}: short syntax SOURCE:TARGET[:ro] expected")
                continue
            source, target, read_only = parts[0], PurePosixPath(parts[1]), "ro" in parts[2:]
            if not source.startswith((".", "/")):
                if source not in (doc.get("volumes") or {}):
                    problem(self.where, f"named volume {source!r} is not declared under top-level volumes:")
                self.volumes[target] = (source, read_only)
                continue
            host = (REPO / source).resolve()
            if REPO not in host.parents and host != REPO:
                problem(self.where, f"bind mount {source} is outside the repository")
            elif not host.exists():
                problem(self.where, f"bind-mounted {source} does not exist")
            if not read_only:
                problem(self.where, f"bind mount {source} -> {target} is not read-only (add :ro)")
            self.binds[target] = host
        for secret in self.spec.get("secrets") or []:
            if not isinstance(secret, str) or secret not in (doc.get("secrets") or {}):
                problem(self.where, f"secret {secret!r} is not a name declared at the top level")
            else:
                self.secrets[f"/run/secrets/{secret}"] = secret

    def resolve(self, container_path):
        """The repo path a container path comes from, through the deepest bind mount, else None."""
        path = PurePosixPath(container_path)
        for target in sorted(self.binds, key=lambda t: -len(t.parts)):
            if path == target or target in path.parents:
                return self.binds[target].joinpath(*path.parts[len(target.parts):])
        return None

    def mirror(self, root):
        """Symlinks under root for every bind mount, so root + a container path works here."""
        for target in sorted(self.binds, key=lambda t: len(t.parts)):
            link = Path(root, *target.parts[1:])
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(self.binds[target])
        return lambda container_path: str(Path(root, *PurePosixPath(container_path).parts[1:]))


def dockerfile_stages(path):
    """[(apt packages installed, directories made by `install -d -o USER`, USER)] per stage."""
    text = re.sub(r"\\\n", " ", re.sub(r"(?m)^\s*#.*\n", "", Path(path).read_text(encoding="utf-8")))
    stages = []
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            stages.append([set(), {}, None])
        elif word.upper() == "RUN" and stages:
            for m in re.finditer(r"apt-get install ([^&;|]*)", rest):
                stages[-1][0].update(t for t in m.group(1).split() if not t.startswith("-"))
            for m in re.finditer(r"install -d((?:\s+-[ogm]\s+\S+)*)((?:\s+/[^\s&;|]+)+)", rest):
                owner = re.search(r"-o\s+(\S+)", m.group(1))
                for d in m.group(2).split():
                    stages[-1][1][PurePosixPath(d)] = owner.group(1) if owner else "0"
        elif word.upper() == "USER" and stages:
            stages[-1][2] = rest.split(":")[0]
    return stages


def check_image():
    stages = dockerfile_stages(REPO / "Dockerfile")
    if len(stages) < 2:
        problem("Dockerfile", "expected a build stage and a runtime stage")
        return {}
    package = (REPO / "Package.swift").read_text(encoding="utf-8")
    wanted = {p for m in re.finditer(r"\.apt\(\[([^\]]*)\]\)", package) for p in re.findall(r'"([^"]+)"', m.group(1))}
    for pkg in sorted(wanted - set().union(*(s[0] for s in stages[:-1]))):
        problem("Dockerfile", f"build stage does not install {pkg} (Package.swift names it)")
    for modulemap in glob.glob(str(REPO / "Sources" / "*" / "module.modulemap")):
        for lib in re.findall(r'link\s+"([^"]+)"', Path(modulemap).read_text(encoding="utf-8")):
            if RUNTIME_PACKAGES.get(lib) not in stages[-1][0]:
                problem("Dockerfile", f"runtime stage does not install the package of lib{lib} "
                                      f"({RUNTIME_PACKAGES.get(lib, 'unknown: add it to RUNTIME_PACKAGES')})")
    runtime = stages[-1]
    return {d for d, owner in runtime[1].items() if owner == runtime[2]}  # the image user's directories


def cli_flags():
    """The long flags of pg_lock_exporter's subcommands, from their sources."""
    flags = {"help", "version"}
    for path in glob.glob(str(REPO / "Sources" / "pg_lock_exporter" / "*.swift")):
        flags.update(re.findall(r'customLong\("([^"]+)"', Path(path).read_text(encoding="utf-8")))
    return flags


def check_secrets_and_ports(s):
    for key, value in s.env.items():
        if PASSWORD_LITERAL.search(value):
            problem(s.where, f"environment {key} carries a password literal")
        elif SECRET_NAME.search(key) and not key.upper().endswith("FILE") and value and not value.startswith("/"):
            problem(s.where, f"environment {key} looks like an inline secret (use a *_FILE variable and a secret)")
    for arg in s.entrypoint + s.command:
        if PASSWORD_LITERAL.search(arg):
            problem(s.where, f"an argument carries a password literal: {arg.split('=')[0]}=…")
    for text in list(s.env.values()) + s.entrypoint + s.command:
        for path in re.findall(r"/run/secrets/[\w.-]+", text):
            if path not in s.secrets:
                problem(s.where, f"uses {path} but does not mount that secret")
    for port in s.spec.get("ports") or []:
        if s.name in NEVER_PUBLISHED:
            problem(s.where, f"publishes port {port}; it should only be reachable inside the compose network")
        elif not str(port).startswith("127.0.0.1:"):
            problem(s.where, f"publishes {port} on all interfaces (prefix it with 127.0.0.1:)")


def check_ours(s, services, image_dirs, flags):
    user, subcommand, kept = OURS[s.name]
    if s.spec.get("build") != ".":
        problem(s.where, "must build this repository's Dockerfile (build: .)")
    if str(s.spec.get("user", "")).split(":")[0] in ("0", "root"):
        problem(s.where, "runs as root")
    if s.spec.get("read_only") is not True:
        problem(s.where, "read_only: true missing (the binary writes nothing but its episode store and audit log)")
    dsn = dict(re.findall(r"(\w+)=(\S+)", s.env.get("DATA_SOURCE_NAME", "")))
    if dsn.get("user") != user:
        problem(s.where, f"DATA_SOURCE_NAME must connect as user={user} (has {dsn.get('user')!r})")
    if dsn.get("host") not in services:
        problem(s.where, f"DATA_SOURCE_NAME host {dsn.get('host')!r} is not a compose service")
    if s.env.get("DATA_SOURCE_PASS_FILE") not in s.secrets:
        problem(s.where, "the password must come from a mounted secret (DATA_SOURCE_PASS_FILE=/run/secrets/...)")
    if s.command[:1] != [subcommand]:
        problem(s.where, f"must run `{subcommand}`")
    for arg in s.command[1:]:
        if arg.startswith("--") and arg[2:].split("=", 1)[0] not in flags:
            problem(s.where, f"flag {arg.split('=', 1)[0]} does not exist in Sources/pg_lock_exporter")
    for name in kept:
        path = flag(s.command, name)
        if path is None:
            problem(s.where, f"{name} missing: what it keeps would be lost at every restart")
            continue
        directory = PurePosixPath(path).parent
        volume = s.volumes.get(directory)
        if volume is None or volume[1]:
            problem(s.where, f"{name}={path}: {directory} is not a writable named volume's mount point "
                             "(the root filesystem is read-only, a tmpfs is lost)")
        if directory not in image_dirs:
            problem(s.where, f"{name}={path}: the Dockerfile does not make {directory} the image user's "
                             "(a named volume mounted there would be root's)")
    if s.name == "remediator":
        if port_of(flag(s.command, "--listen")) is None:
            problem(s.where, "remediate needs --listen=:PORT to receive webhooks")
        if flag(s.command, "--webhook.token-file") not in s.secrets:
            problem(s.where, "--webhook.token-file must be a mounted secret (else webhooks are unauthenticated)")


def listen_ports(services):
    ports = dict(DEFAULT_PORTS)
    if "exporter" in services:
        ports["exporter"] = port_of(flag(services["exporter"].command, "--web.listen-address") or ":9817")
    if "remediator" in services:
        ports["remediator"] = port_of(flag(services["remediator"].command, "--listen"))
    return ports


def check_target(where, target, what, services, ports):
    host, _, port = target.rpartition(":")
    if host not in services:
        problem(where, f"{what} {target}: {host!r} is not a compose service")
    elif ports.get(host) is not None and str(ports[host]) != port:
        problem(where, f"{what} {target}: service {host} listens on {ports[host]}")


def config_of(s, default):
    """(path in the container, repo file, parsed YAML) of the service's --config.file."""
    container = flag(s.command, "--config.file") or default
    host = s.resolve(container)
    if host is None or not host.is_file():
        problem(s.where, f"{container} is not a mounted file of the repo")
        return None
    return container, host, yaml.safe_load(host.read_text(encoding="utf-8")) or {}


def check_prometheus(s, services, ports):
    found = config_of(s, "/etc/prometheus/prometheus.yml")
    if found is None:
        return
    container, host, cfg = found
    where = host.relative_to(REPO)
    jobs = {}
    for sc in cfg.get("scrape_configs") or []:
        jobs[sc.get("job_name")] = [t for st in sc.get("static_configs") or [] for t in st.get("targets") or []]
        for t in jobs[sc.get("job_name")]:
            check_target(where, t, f"job {sc.get('job_name')} target", services, ports)
    for am in (cfg.get("alerting") or {}).get("alertmanagers") or []:
        for t in [t for st in am.get("static_configs") or [] for t in st.get("targets") or []]:
            check_target(where, t, "alertmanager target", services, ports)
    for job, service in (("pg_lock_exporter", "exporter"), ("pg_lock_remediator", "remediator")):
        if not any(t.startswith(service + ":") for t in jobs.get(job, [])):
            problem(where, f"no scrape job {job} of service {service}")
    rules = [r for path in glob.glob(str(REPO / "alerts" / "*.rules.yml"))
             for g in yaml.safe_load(open(path, encoding="utf-8"))["groups"] for r in g["rules"]]
    for value in sorted({v for r in rules for v in re.findall(r'\bjob=~"([^"$]*)"', r["expr"])}):
        if not any(re.fullmatch(value, j) for j in jobs if j):
            problem("alerts", f'selector job=~"{value}" matches no scrape job of {where} ({", ".join(sorted(jobs))})')
    with tempfile.TemporaryDirectory(prefix="check_compose.") as root:
        at = s.mirror(root)
        rule_files = []
        for pattern in cfg.get("rule_files") or []:
            full = pattern if pattern.startswith("/") else str(PurePosixPath(container).parent / pattern)
            matched = sorted(glob.glob(at(full)))
            if not matched:
                problem(where, f"rule_files {pattern!r} matches no file in the container")
            rule_files += matched
        if not rule_files:
            problem(where, "loads no rule files")
        for argv in (["promtool", "check", "config", at(container)], ["promtool", "check", "rules", *rule_files]):
            code, last = run(argv)
            if code != 0:
                problem(where, f"{' '.join(argv[:3])}: {last}")


def check_alertmanager(s, services, ports):
    found = config_of(s, "/etc/alertmanager/alertmanager.yml")
    if found is None:
        return
    container, host, cfg = found
    where = host.relative_to(REPO)
    remediator = services.get("remediator")
    token = remediator.secrets.get(flag(remediator.command, "--webhook.token-file")) if remediator else None
    hooks = [(r.get("name"), h) for r in cfg.get("receivers") or [] for h in r.get("webhook_configs") or []]
    to_remediator = 0
    for receiver, hook in hooks:
        u = urllib.parse.urlsplit(hook.get("url", ""))
        if u.hostname not in services:
            continue
        check_target(where, f"{u.hostname}:{u.port or 80}", f"receiver {receiver} webhook", services, ports)
        if u.hostname != "remediator":
            continue
        to_remediator += 1
        if u.path != "/webhook/alertmanager" or u.query or u.password:
            problem(where, f"webhook {hook['url']}: the remediator's path is /webhook/alertmanager, with no credentials in the URL")
        auth = (hook.get("http_config") or {}).get("authorization") or {}
        if auth.get("credentials") or s.secrets.get(auth.get("credentials_file")) != token:
            problem(where, f"webhook {hook['url']}: the bearer token must be authorization.credentials_file, "
                           "the secret the remediator reads")
    if not to_remediator:
        problem(where, "no webhook receiver points at the remediator")
    with tempfile.TemporaryDirectory(prefix="check_compose.") as root:
        mirrored = s.mirror(root)(container)
        code, last = run(["amtool", "check-config", mirrored])
        if code != 0:
            problem(where, f"amtool check-config: {last}")
        expected = ",".join(r for r in ("pg-lock-remediator", (cfg.get("route") or {}).get("receiver")) if r)
        code, last = run(["amtool", "config", "routes", "test", f"--config.file={mirrored}", f"--verify.receivers={expected}",
                          "alertname=PostgresBlockerIdleInTransaction", "severity=critical", "instance=exporter:9817", "datname=app"])
        if code != 0:
            problem(where, f"PostgresBlockerIdleInTransaction is not routed to {expected}: {last}")


def check_grafana(s, services, ports):
    sources = s.resolve("/etc/grafana/provisioning/datasources")
    urls = [urllib.parse.urlsplit(d.get("url", "")) for path in sorted((sources or Path("/nonexistent")).glob("*.y*ml"))
            for d in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("datasources") or [] if d.get("type") == "prometheus"]
    if not urls:
        problem(s.where, "no Prometheus data source provisioned at /etc/grafana/provisioning/datasources")
    for u in urls:
        check_target(s.where, f"{u.hostname}:{u.port}", "data source", services, ports)
    providers = s.resolve("/etc/grafana/provisioning/dashboards")
    paths = [(p.get("options") or {}).get("path", "") for path in sorted((providers or Path("/nonexistent")).glob("*.y*ml"))
             for p in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("providers") or []]
    if not paths or any(s.resolve(p) != REPO / "dashboards" for p in paths):
        problem(s.where, f"the dashboard providers {paths} must load the repo's dashboards/")
    home = s.env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home and not (s.resolve(home) or Path("/nonexistent")).is_file():
        problem(s.where, f"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} is not a mounted file")


def check_secret_files(doc):
    """Each top-level secret's file exists, or (generated by deploy/make-secrets.sh) its .example
    does; generated files are gitignored and their examples are not."""
    for name, spec in (doc.get("secrets") or {}).items():
        path = (REPO / (spec or {}).get("file", "")).resolve()
        if not path.is_file() and not path.with_name(path.name + ".example").is_file():
            problem("docker-compose.yml", f"secrets.{name}: {path.relative_to(REPO)} does not exist, nor its .example")
        for candidate, ignored in ((path, True), (path.with_name(path.name + ".example"), False)):
            code = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", str(candidate)]).returncode
            if (code == 0) != ignored and (ignored or candidate.exists()):
                problem(".gitignore", f"{candidate.relative_to(REPO)} (secret {name}) must {'' if ignored else 'not '}be ignored")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compose", default=str(REPO / "docker-compose.yml"))
    path = Path(parser.parse_args().compose)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        print(f"check_compose: {path}: {str(e).splitlines()[0]}")
        return 1
    image_dirs = check_image()
    flags = cli_flags()
    services = {name: Service(name, spec, doc) for name, spec in (doc.get("services") or {}).items()}
    ports = listen_ports(services)
    for s in services.values():
        check_secrets_and_ports(s)
        if s.name in OURS:
            check_ours(s, services, image_dirs, flags)
    for name, check in (("prometheus", check_prometheus), ("alertmanager", check_alertmanager), ("grafana", check_grafana)):
        if name in services:
            check(services[name], services, ports)
    check_secret_files(doc)
    for line in problems:
        print(line)
    print(f"check_compose: {len(problems)} problem(s)" if problems else "check_compose: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
