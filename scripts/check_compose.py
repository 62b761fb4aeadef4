#!/usr/bin/env python3
"""The docker-compose stack's wiring that no schema or linter covers. The file's structure is
checked by `check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml` and the
Dockerfile by hadolint (both in `make test-packaging`); this script checks what ties the
pieces together. No Docker engine is needed.

One line per problem on stdout, exit status 1 if there is any:
  mounts       every bind-mounted path exists in the repo and is mounted read-only; named
               volumes and secrets a service uses are declared; a secret's file exists or, for
               the generated ones, its .example does (and the generated ones are gitignored)
  roles        the exporter and the remediator build this repo's image, not as root, read-only;
               DATA_SOURCE_NAME connects as lock_monitor (exporter) and lock_remediator
               (remediator) with the password from a mounted secret; every subcommand and
               --flag they are given exists in Sources/pg_lock_exporter/*.swift; the files
               they write (serve's --episodes.path, given, and remediate's --audit-log) are
               directly on a named volume, not the image's read-only layer, a tmpfs or a bind
               mount, in a directory the Dockerfile makes the image user's
  secrets      no password literal in any environment value or command (libpq `password=`,
               `user:pass@` in URLs, secret-named variables holding more than a file path);
               every /run/secrets/NAME used is mounted; postgres and the remediator's webhook
               are never published, other ports only on loopback
  wiring       Prometheus targets name compose services on the ports they listen on; job names
               match the `job=~` selectors of alerts/*.rules.yml and dashboards/; Alertmanager's
               webhook reaches the remediator's --listen port with the token file the remediator
               reads; Grafana's datasource and dashboard paths resolve through its mounts
  tools        promtool check config and amtool check-config on the mounted files, in a temporary
               directory that mirrors the containers' paths (so relative rule_files resolve as in
               the container); promtool check rules on the rule files it loads; amtool config
               routes test for the remediation route
  image        the Dockerfile's build stage installs the apt packages Package.swift names, and its
               runtime stage the runtime package of every library Sources/*/module.modulemap links

Usage: scripts/check_compose.py [--compose FILE]   (PROMTOOL, AMTOOL override the tools)
Needs Python 3 with PyYAML, promtool and amtool (apt-get install prometheus prometheus-alertmanager).
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path, PurePosixPath

try:
    import yaml
except ImportError:
    print("check_compose: PyYAML is missing (apt-get install python3-yaml)")
    sys.exit(2)

REPO = Path(__file__).resolve().parent.parent

OUR_SERVICES = {"exporter": "lock_monitor", "remediator": "lock_remediator"}  # service -> DSN user
NEVER_PUBLISHED = {"postgres", "remediator"}
LOOPBACK = {"127.0.0.1", "::1", "[::1]", "localhost"}
# Default listen ports of the images we do not pass a listen flag to.
DEFAULT_PORTS = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000, "postgres": 5432}
# Library named by `link "..."` in Sources/*/module.modulemap -> Debian 12 runtime package.
RUNTIME_PACKAGES = {"pq": "libpq5", "microhttpd": "libmicrohttpd12", "gnutls": "libgnutls30", "crypt": "libcrypt1",
                    "yaml": "libyaml-0-2", "pg_query": "libpg-query1504.0",
                    "sqlite3": "libsqlite3-0", "curl": "libcurl4"}
SECRET_NAME_RE = re.compile(r"(?i)pass|secret|token|credential|private|api_?key")
DSN_PASSWORD_RE = re.compile(r"(?i)(^|\s)password\s*=")
URL_PASSWORD_RE = re.compile(r"://[^/@\s:]*:[^/@\s]*@")

problems = []
notes = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def rel(path):
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- small parsers

def env_dict(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): ("" if v is None else str(v)) for k, v in env.items()}


def as_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def parse_dsn(dsn):
    """libpq keyword/value string or URI -> dict of keywords."""
    if re.match(r"^postgres(ql)?://", dsn):
        u = urllib.parse.urlsplit(dsn)
        out = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query).items()}
        if u.username:
            out["user"] = urllib.parse.unquote(u.username)
        if u.password:
            out["password"] = "(set)"
        if u.hostname:
            out["host"] = u.hostname
        if u.path.strip("/"):
            out["dbname"] = u.path.strip("/")
        return out
    out = {}
    for m in re.finditer(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn):
        value = m.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[m.group(1)] = value
    return out


def flag_value(args, name):
    """Value of --name=V or --name V in args, else None."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None


def port_of(address):
    m = re.search(r":(\d+)$", address or "")
    return int(m.group(1)) if m else None


class Mounts:
    """A service's bind mounts and named volumes, container path -> repo path."""

    def __init__(self, name, service, compose_dir, declared_volumes):
        self.binds = []  # (container path, host path)
        self.volumes = {}  # container path -> (named volume, read-only)
        where = f"docker-compose.yml: service {name}"
        for item in service.get("volumes") or []:
            if isinstance(item, str):
                parts = item.split(":")
                if len(parts) == 1:
                    continue  # anonymous volume
                source, target = parts[0], parts[1]
                mode = parts[2] if len(parts) > 2 else ""
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
                read_only = "ro" in mode.split(",")
            else:
                kind, source, target = item.get("type", "volume"), item.get("source", ""), item.get("target", "")
                read_only = bool(item.get("read_only"))
            if kind == "volume":
                if source and source not in declared_volumes:
                    problem(where, f"named volume {source!r} is not declared under top-level volumes:")
                if source:
                    self.volumes[PurePosixPath(target)] = (source, read_only)
                continue
            if kind != "bind":
                continue
            host = (compose_dir / source).resolve()
            if not str(host).startswith(str(REPO) + os.sep) and host != REPO:
                problem(where, f"bind mount {source} is outside the repository")
            elif not host.exists():
                problem(where, f"bind-mounted {source} does not exist")
            if not read_only:
                problem(where, f"bind mount {source} -> {target} is not read-only (add :ro)")
            self.binds.append((PurePosixPath(target), host))

    def resolve(self, container_path):
        """Repo path a container path comes from (through the deepest bind), else None."""
        path = PurePosixPath(container_path)
        best = None
        for target, host in self.binds:
            if path == target or target in path.parents:
                if best is None or len(target.parts) > len(best[0].parts):
                    best = (target, host)
        if best is None:
            return None
        return best[1].joinpath(*path.parts[len(best[0].parts):])

    def mirror(self, root):
        """Symlink every bind target under root, so root + container path works on the host."""
        for target, host in sorted(self.binds, key=lambda b: len(b[0].parts)):
            link = Path(root, *target.parts[1:])
            if any(p.is_symlink() for p in [link, *link.parents] if str(p).startswith(str(root))):
                notes.append(f"mirror: {target} is inside another mount; not mirrored")
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(host)


def run(argv, timeout=20):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return out.returncode, (out.stdout + out.stderr).strip()


def first_line_of_failure(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    bad = [l for l in lines if re.search(r"(?i)fail|error|invalid|not |unknown|cannot", l)]
    return (bad or lines or ["(no output)"])[-1]


# --------------------------------------------------------------------------- Dockerfile

def dockerfile_instructions(path):
    """[(INSTRUCTION, text)] with continuations joined and comments dropped."""
    out, current = [], ""
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and current):
            continue
        if not line:
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def check_dockerfile(path, package_apt, linked_libraries):
    """The build stage installs what Package.swift's system libraries need; the runtime stage
    (the last) the shared library package of every library the module maps link."""
    where = rel(path)
    stages = []  # apt packages installed per stage, in order
    for word, text in dockerfile_instructions(path):
        if word == "FROM":
            stages.append(set())
        elif word == "RUN" and stages:
            for m in re.finditer(r"apt-get install ([^&;|]*)", text):
                stages[-1].update(t for t in m.group(1).split() if not t.startswith("-"))
    if len(stages) < 2:
        problem(where, "expected a build stage and a runtime stage")
        return
    for pkg in sorted(package_apt - set().union(*stages[:-1])):
        problem(where, f"build stage does not install {pkg} (Package.swift names it)")
    for lib in sorted(linked_libraries):
        pkg = RUNTIME_PACKAGES.get(lib)
        if pkg is None:
            problem(where, f"no runtime package known for library {lib!r} (module.modulemap links it): "
                           "install it in the runtime stage and add it to RUNTIME_PACKAGES in scripts/check_compose.py")
        elif pkg not in stages[-1]:
            problem(where, f"runtime stage does not install {pkg} (the binary links lib{lib})")


# Flags naming a file the service writes, which must be on a named volume.
WRITTEN_FILES = {"exporter": ("--episodes.path",), "remediator": ("--audit-log",)}


def dockerfile_user_dirs(path):
    """Directories the runtime stage creates owned by the uid it runs as (USER), from its
    `install -d -o UID` commands: where a named volume mounted on them is writable."""
    stage_runs, user = [], None
    for word, text in dockerfile_instructions(path):
        if word == "FROM":
            stage_runs, user = [], None
        elif word == "RUN":
            stage_runs.append(text)
        elif word == "USER":
            user = text.split(":")[0]
    dirs = set()
    for text in stage_runs:
        for m in re.finditer(r"install\s+-d\s+((?:-[^\s]+(?:\s+[^-/\s][^\s]*)?\s+)*)((?:/[^\s&;|]+\s*)+)", text):
            owner = re.search(r"-o\s+(\S+)", m.group(1))
            if owner and owner.group(1) == user:
                dirs.update(PurePosixPath(d) for d in m.group(2).split())
    return dirs


def check_written_file(sw, flag, path, mounts, image_dirs):
    """`path` (a file the binary writes and keeps) sits directly in the target directory of a
    writable named volume, a directory the image makes its user's (a fresh named volume copies
    that ownership); not on the read-only root filesystem, a tmpfs, or a bind mount."""
    directory = PurePosixPath(path).parent
    if not PurePosixPath(path).is_absolute():
        problem(sw, f"{flag}={path}: not an absolute path")
        return
    volume = mounts.volumes.get(directory)
    if volume is None:
        problem(sw, f"{flag}={path}: {directory} is not a named volume's mount point (the root filesystem is read-only, a tmpfs is lost)")
    elif volume[1]:
        problem(sw, f"{flag}={path}: volume {volume[0]} is mounted read-only")
    if directory not in image_dirs:
        problem(sw, f"{flag}={path}: the Dockerfile does not create {directory} owned by the user it runs as "
                    f"(a named volume mounted there would be root's); it makes {sorted(map(str, image_dirs))}")


# --------------------------------------------------------------------------- sources

def swift_cli():
    """(subcommands, long flags) of the pg_lock_exporter command, from its sources."""
    flags, subcommands = {"help", "version"}, set()
    for path in glob.glob(str(REPO / "Sources" / "pg_lock_exporter" / "*.swift")):
        text = Path(path).read_text(encoding="utf-8")
        flags.update(re.findall(r'customLong\("([^"]+)"', text))
        m = re.search(r"subcommands:\s*\[([^\]]*)\]", text)
        if m:
            subcommands.update(s.strip().removesuffix(".self").lower() for s in m.group(1).split(",") if s.strip())
    return subcommands, flags


def package_swift():
    """(apt packages of the system libraries, libraries their module maps link)."""
    text = (REPO / "Package.swift").read_text(encoding="utf-8")
    apt = set()
    for m in re.finditer(r"\.apt\(\[([^\]]*)\]\)", text):
        apt.update(re.findall(r'"([^"]+)"', m.group(1)))
    libs = set()
    for path in glob.glob(str(REPO / "Sources" / "*" / "module.modulemap")):
        libs.update(re.findall(r'link\s+"([^"]+)"', Path(path).read_text(encoding="utf-8")))
    return apt, libs


# --------------------------------------------------------------------------- compose

def check_compose(compose_path):
    where = rel(compose_path)
    try:
        doc = yaml.safe_load(compose_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        problem(where, f"cannot parse: {e}")
        return
    compose_dir = compose_path.parent
    services = doc.get("services") or {}
    declared_volumes = set((doc.get("volumes") or {}).keys())
    top_secrets = doc.get("secrets") or {}
    top_configs = doc.get("configs") or {}
    subcommands, known_flags = swift_cli()
    mounts, secret_targets = {}, {}

    # Top-level secrets/configs: the file, or for generated secrets their .example.
    not_generated = []
    for kind, table in (("secrets", top_secrets), ("configs", top_configs)):
        for name, spec in table.items():
            spec = spec or {}
            if "file" not in spec:
                problem(where, f"{kind}.{name}: only file-based {kind} are supported here (got {sorted(spec)})")
                continue
            path = (compose_dir / spec["file"]).resolve()
            if path.is_file():
                continue
            example = path.with_name(path.name + ".example")
            if kind == "secrets" and example.is_file():
                not_generated.append(name)
            else:
                problem(where, f"{kind}.{name}: {spec['file']} does not exist"
                               + (" (nor its .example)" if kind == "secrets" else ""))
    if not_generated:
        notes.append(f"secrets not generated here ({', '.join(not_generated)}): checked their .example files; "
                     "deploy/make-secrets.sh creates them")

    for name, service in services.items():
        sw = f"{where}: service {name}"
        service = service or {}
        # mounts and secrets
        mounts[name] = Mounts(name, service, compose_dir, declared_volumes)
        secret_targets[name] = {}
        for kind, table in (("secrets", top_secrets), ("configs", top_configs)):
            for item in service.get(kind) or []:
                source = item if isinstance(item, str) else item.get("source")
                target = (item if isinstance(item, str) else item.get("target")) or source
                if source not in table:
                    problem(sw, f"{kind[:-1]} {source!r} is not declared at the top level")
                if kind == "secrets":
                    path = target if target.startswith("/") else f"/run/secrets/{target}"
                    secret_targets[name][path] = source
        # ports
        for port in service.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else None
            if isinstance(port, str):
                parts = port.rsplit(":", 2)
                host_ip = parts[0] if len(parts) == 3 else None
            if name in NEVER_PUBLISHED:
                problem(sw, f"publishes port {port}; it should only be reachable inside the compose network")
            elif host_ip not in LOOPBACK:
                problem(sw, f"publishes {port} on all interfaces (prefix it with 127.0.0.1:)")

        # secrets must not be inline
        env = env_dict(service)
        args = as_list(service.get("entrypoint")) + as_list(service.get("command"))
        for key, value in env.items():
            if DSN_PASSWORD_RE.search(value) or URL_PASSWORD_RE.search(value):
                problem(sw, f"environment {key} carries a password literal")
            elif SECRET_NAME_RE.search(key) and not key.upper().endswith("FILE") and value and not value.startswith("/"):
                problem(sw, f"environment {key} looks like an inline secret (use a *_FILE variable and a secret)")
        for arg in args:
            if DSN_PASSWORD_RE.search(arg) or URL_PASSWORD_RE.search(arg):
                problem(sw, f"command/entrypoint argument carries a password literal: {arg.split('=')[0]}=…")
        for text in list(env.values()) + args:
            for m in re.finditer(r"/run/secrets/[\w.-]+", text):
                if m.group(0) not in secret_targets[name]:
                    problem(sw, f"uses {m.group(0)} but does not mount that secret")

    # exporter and remediator
    image_dirs = dockerfile_user_dirs(REPO / "Dockerfile")
    listen_ports = {}
    for name, dsn_user in OUR_SERVICES.items():
        service = services.get(name)
        if not service:
            continue
        sw = f"{where}: service {name}"
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        dockerfile = "Dockerfile" if isinstance(build, str) else (build or {}).get("dockerfile", "Dockerfile")
        if context is None or (compose_dir / context).resolve() != REPO or dockerfile != "Dockerfile":
            problem(sw, "must build this repository's Dockerfile (build: .)")
        if str(service.get("user", "")).split(":")[0] in ("0", "root"):
            problem(sw, "runs as root")
        if service.get("read_only") is not True:
            problem(sw, "read_only: true missing (the binary writes nothing but its episode store and audit log)")
        command = as_list(service.get("command"))
        env = env_dict(service)
        dsn = parse_dsn(env.get("DATA_SOURCE_NAME", ""))
        if dsn.get("user") != dsn_user:
            problem(sw, f"DATA_SOURCE_NAME must connect as user={dsn_user} (has {dsn.get('user')!r})")
        if dsn.get("host") and dsn["host"] not in services:
            problem(sw, f"DATA_SOURCE_NAME host {dsn['host']!r} is not a compose service")
        pass_file = env.get("DATA_SOURCE_PASS_FILE") or env.get("PGPASSFILE")
        if not pass_file or pass_file not in secret_targets[name] and "DATA_SOURCE_PASS_FILE" in env:
            problem(sw, "the password must come from a mounted secret (DATA_SOURCE_PASS_FILE=/run/secrets/...)")
        if command and command[0] not in subcommands:
            problem(sw, f"{command[0]!r} is not a subcommand ({', '.join(sorted(subcommands))})")
        for arg in command[1:]:
            if arg.startswith("--") and arg[2:].split("=", 1)[0] not in known_flags:
                problem(sw, f"flag {arg.split('=', 1)[0]} does not exist in Sources/pg_lock_exporter")
        for flag in WRITTEN_FILES[name]:
            path = flag_value(command, flag)
            if path is None and flag == "--episodes.path":
                problem(sw, "--episodes.path missing: the episodes would be in :memory:, lost at every restart")
            elif path is not None:
                check_written_file(sw, flag, path, mounts[name], image_dirs)
        if name == "exporter":
            if command[:1] != ["serve"]:
                problem(sw, "must run `serve`")
            listen_ports[name] = port_of(flag_value(command, "--web.listen-address") or ":9817")
        else:
            if command[:1] != ["remediate"]:
                problem(sw, "must run `remediate`")
            listen_ports[name] = port_of(flag_value(command, "--listen"))
            if listen_ports[name] is None:
                problem(sw, "remediate needs --listen=:PORT to receive webhooks")
            token = flag_value(command, "--webhook.token-file")
            if not token:
                problem(sw, "remediate --listen without --webhook.token-file accepts unauthenticated webhooks")
            elif token not in secret_targets[name]:
                problem(sw, f"--webhook.token-file {token} is not a mounted secret")
    for name, port in DEFAULT_PORTS.items():
        listen_ports.setdefault(name, port)

    def target_ok(sw, target, what):
        host, _, port = target.rpartition(":")
        if host not in services:
            problem(sw, f"{what} {target}: {host!r} is not a compose service")
        elif listen_ports.get(host) is not None and str(listen_ports[host]) != port:
            problem(sw, f"{what} {target}: service {host} listens on {listen_ports[host]}")

    check_prometheus(services, mounts, target_ok)
    check_alertmanager(services, mounts, secret_targets, top_secrets, compose_dir, target_ok)
    check_grafana(services, mounts, env_dict(services.get("grafana") or {}), target_ok)


def config_file_of(service, default):
    return flag_value(as_list(service.get("command")), "--config.file") or default


def mounted_config(services, mounts, name, default):
    """The service's config file as mounted from the repo: (service, path in the container, host
    path, its relative name, parsed YAML), or None when the service is absent or it is not mounted."""
    service = services.get(name)
    if not service:
        return None
    container_config = config_file_of(service, default)
    host_config = mounts[name].resolve(container_config)
    if host_config is None or not host_config.is_file():
        problem(f"service {name}", f"{container_config} is not a mounted file of the repo")
        return None
    return service, container_config, host_config, rel(host_config), yaml.safe_load(host_config.read_text(encoding="utf-8")) or {}


def check_prometheus(services, mounts, target_ok):
    found = mounted_config(services, mounts, "prometheus", "/etc/prometheus/prometheus.yml")
    if found is None:
        return
    service, container_config, host_config, where, cfg = found
    sw = "service prometheus"
    jobs = {}
    for sc in cfg.get("scrape_configs") or []:
        targets = [t for s in sc.get("static_configs") or [] for t in s.get("targets") or []]
        jobs[sc.get("job_name")] = targets
        for t in targets:
            target_ok(where, t, f"job {sc.get('job_name')} target")
    for am in (cfg.get("alerting") or {}).get("alertmanagers") or []:
        for s in am.get("static_configs") or []:
            for t in s.get("targets") or []:
                target_ok(where, t, "alertmanager target")
    for job, service_name in (("pg_lock_exporter", "exporter"), ("pg_lock_remediator", "remediator")):
        if job not in jobs:
            problem(where, f"no scrape job {job!r}")
        elif not any(t.startswith(service_name + ":") for t in jobs[job]):
            problem(where, f"job {job} does not scrape service {service_name}")

    # Job selectors in the shipped rules and dashboards must match a job here.
    selectors = set()
    for path in glob.glob(str(REPO / "alerts" / "*.rules.yml")) + glob.glob(str(REPO / "dashboards" / "*.json")):
        text = Path(path).read_text(encoding="utf-8").replace('\\"', '"')
        for op, value in re.findall(r'\bjob\s*(=~|=)\s*"([^"$]*)"', text):
            selectors.add((rel(path), op, value))
    for path, op, value in sorted(selectors):
        matcher = (lambda j, v=value: re.fullmatch(v, j)) if op == "=~" else (lambda j, v=value: j == v)
        if not any(matcher(j) for j in jobs if j):
            problem(path, f'selector job{op}"{value}" matches no scrape job of {where} ({", ".join(sorted(jobs))})')

    # promtool on a mirror of the container's file system.
    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not promtool:
        problem(sw, "promtool not found (apt-get install prometheus); cannot check the config")
        return
    with tempfile.TemporaryDirectory(prefix="check_compose.") as root:
        mounts["prometheus"].mirror(root)
        mirrored = Path(root, *PurePosixPath(container_config).parts[1:])
        rule_files = []
        for pattern in cfg.get("rule_files") or []:
            full = pattern if pattern.startswith("/") else str(PurePosixPath(container_config).parent / pattern)
            found = sorted(glob.glob(str(Path(root, *PurePosixPath(full).parts[1:]))))
            if not found:
                problem(where, f"rule_files {pattern!r} matches no file in the container ({full})")
            rule_files += found
        if not rule_files:
            problem(where, "loads no rule files")
        code, out = run([promtool, "check", "config", str(mirrored)])
        if code != 0:
            problem(where, f"promtool check config: {first_line_of_failure(out)}")
        if rule_files:
            code, out = run([promtool, "check", "rules", *rule_files])
            if code != 0:
                problem(where, f"promtool check rules: {first_line_of_failure(out)}")
        notes.append(f"promtool: config and {len(rule_files)} rule file(s) as mounted in the prometheus container")


def check_alertmanager(services, mounts, secret_targets, top_secrets, compose_dir, target_ok):
    found = mounted_config(services, mounts, "alertmanager", "/etc/alertmanager/alertmanager.yml")
    if found is None:
        return
    service, container_config, host_config, where, cfg = found
    sw = "service alertmanager"

    # The remediator's token: the secret file both containers get.
    remediator_cmd = as_list((services.get("remediator") or {}).get("command"))
    token_path = flag_value(remediator_cmd, "--webhook.token-file")
    token_secret = secret_targets.get("remediator", {}).get(token_path)
    token_file = ((top_secrets.get(token_secret) or {}).get("file")) if token_secret else None

    remediator_hooks = 0
    for receiver in cfg.get("receivers") or []:
        for hook in receiver.get("webhook_configs") or []:
            u = urllib.parse.urlsplit(hook.get("url", ""))
            if u.hostname not in services:
                continue
            target_ok(where, f"{u.hostname}:{u.port or 80}", f"receiver {receiver.get('name')} webhook")
            if u.hostname != "remediator":
                continue
            remediator_hooks += 1
            if u.path != "/webhook/alertmanager":
                problem(where, f"webhook {hook['url']}: the remediator's path is /webhook/alertmanager")
            if u.query or u.password:
                problem(where, f"webhook {hook['url']}: credentials in the URL (0.25 does not treat it as secret)")
            auth = (hook.get("http_config") or {}).get("authorization") or {}
            cred = auth.get("credentials_file")
            if auth.get("credentials"):
                problem(where, "webhook authorization.credentials is inline; use credentials_file")
            elif not cred:
                problem(where, f"webhook {hook['url']} sends no bearer token (authorization.credentials_file)")
            elif cred not in secret_targets.get("alertmanager", {}):
                problem(where, f"credentials_file {cred} is not a secret mounted into the alertmanager service")
            else:
                am_file = (top_secrets.get(secret_targets["alertmanager"][cred]) or {}).get("file")
                if token_file and am_file and (compose_dir / am_file).resolve() != (compose_dir / token_file).resolve():
                    problem(where, f"credentials_file {cred} is not the file the remediator reads ({token_path})")
    if remediator_hooks == 0:
        problem(where, "no webhook receiver points at the remediator")

    amtool = os.environ.get("AMTOOL") or shutil.which("amtool")
    if not amtool:
        problem(sw, "amtool not found (apt-get install prometheus-alertmanager); cannot check the config")
        return
    with tempfile.TemporaryDirectory(prefix="check_compose.") as root:
        mounts["alertmanager"].mirror(root)
        mirrored = str(Path(root, *PurePosixPath(container_config).parts[1:]))
        code, out = run([amtool, "check-config", mirrored])
        if code != 0:
            problem(where, f"amtool check-config: {first_line_of_failure(out)}")
        receivers = {r.get("name") for r in cfg.get("receivers") or []}
        default = (cfg.get("route") or {}).get("receiver")
        expected = ",".join(r for r in ("pg-lock-remediator", default) if r)
        if "pg-lock-remediator" not in receivers:
            problem(where, "no receiver named pg-lock-remediator")
        else:
            code, out = run([amtool, "config", "routes", "test", f"--config.file={mirrored}",
                             f"--verify.receivers={expected}", "alertname=PostgresBlockerIdleInTransaction",
                             "severity=critical", "instance=exporter:9817", "datname=app"])
            if code != 0:
                problem(where, f"PostgresBlockerIdleInTransaction is not routed to {expected}: {first_line_of_failure(out)}")
        notes.append("amtool: check-config and the remediation route on the mounted alertmanager.yml")


def check_grafana(services, mounts, env, target_ok):
    if "grafana" not in services:
        return
    sw = "service grafana"
    m = mounts["grafana"]
    ds_dir = m.resolve("/etc/grafana/provisioning/datasources")
    db_dir = m.resolve("/etc/grafana/provisioning/dashboards")
    if ds_dir is None or not ds_dir.is_dir():
        problem(sw, "no datasource provisioning mounted at /etc/grafana/provisioning/datasources")
    else:
        urls = []
        for path in sorted(ds_dir.glob("*.y*ml")):
            for ds in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("datasources") or []:
                if ds.get("type") == "prometheus":
                    u = urllib.parse.urlsplit(ds.get("url", ""))
                    target_ok(rel(path), f"{u.hostname}:{u.port}", "datasource")
                    urls.append(ds.get("url"))
        if not urls:
            problem(sw, "no Prometheus datasource provisioned")
    if db_dir is None or not db_dir.is_dir():
        problem(sw, "no dashboard provisioning mounted at /etc/grafana/provisioning/dashboards")
    else:
        found = 0
        for path in sorted(db_dir.glob("*.y*ml")):
            for provider in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("providers") or []:
                container = (provider.get("options") or {}).get("path", "")
                host = m.resolve(container)
                if host is None or not host.is_dir():
                    problem(rel(path), f"provider {provider.get('name')}: {container} is not a mounted directory")
                    continue
                jsons = sorted(host.glob("*.json"))
                if not any(h == REPO / "dashboards" for _, h in m.binds if h == host):
                    problem(rel(path), f"provider {provider.get('name')}: {container} is not the repo's dashboards/")
                found += len(jsons)
        if not found:
            problem(sw, "the dashboard provider loads no dashboards/*.json")
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home and not ((m.resolve(home) or Path("/nonexistent")).is_file()):
        problem(sw, f"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} is not a mounted file")


# --------------------------------------------------------------------------- git

def check_gitignore(top_secrets, compose_dir):
    if not (REPO / ".git").exists() or not shutil.which("git"):
        notes.append("not a git work tree: did not check that generated secrets are ignored")
        return
    for name, spec in sorted(top_secrets.items()):
        path = rel((compose_dir / (spec or {}).get("file", "")).resolve())
        code, _ = run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path])
        if code == 1:
            problem(".gitignore", f"{path} (secret {name}) is not ignored: add `/deploy/secrets/*` and `!/deploy/secrets/*.example`")
        example = path + ".example"
        if (REPO / example).exists():
            code, _ = run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", example])
            if code == 0:
                problem(".gitignore", f"{example} is ignored, but the examples must be committed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compose", default=str(REPO / "docker-compose.yml"))
    parser.add_argument("--quiet", action="store_true", help="print problems only")
    opts = parser.parse_args()
    compose_path = Path(opts.compose).resolve()
    if not compose_path.is_file():
        print(f"{compose_path}: not found")
        return 1

    apt, libs = package_swift()
    if (REPO / "Dockerfile").is_file():
        check_dockerfile(REPO / "Dockerfile", apt, libs)
    else:
        problem("Dockerfile", "missing")
    check_compose(compose_path)
    doc = yaml.safe_load(compose_path.read_text(encoding="utf-8")) or {}
    check_gitignore(doc.get("secrets") or {}, compose_path.parent)

    for line in problems:
        print(line)
    if not opts.quiet:
        for line in notes:
            print(f"note: {line}")
    if problems:
        print(f"check_compose: {len(problems)} problem(s)")
        return 1
    if not opts.quiet:
        print("check_compose: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
