"""The docker-compose stack's PgBouncer (deploy/pgbouncer: its pgbouncer.ini and entrypoint.sh)
run natively, as the container runs them, with only the addresses changed: the entrypoint
writes the auth file from the secrets, PgBouncer 1.18 starts with the shipped configuration,
the application logs in through it with SCRAM, and the exporter, given the compose file's
--pgbouncer.dsn and password file, reads the admin console as lock_monitor (stats_users).
No Docker engine is needed; docker-compose.yml itself is checked by check_compose.py."""

import os
import re
import subprocess

import livestack
from livestack import REPO, clean_env, free_port, psql, wait_until

SHIPPED = REPO / "deploy" / "pgbouncer"


def compose_flags(service):
    """The --pgbouncer.* flags docker-compose.yml gives `service`."""
    import yaml
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return [a for a in compose["services"][service]["command"] if a.startswith("--pgbouncer.")]


def test_the_shipped_pgbouncer_serves_the_app_and_the_exporter_reads_it(exporter_bin, pg_server, workdir):
    directory = workdir / "compose-pgbouncer"
    secrets, run = directory / "secrets", directory / "run"
    for d in (directory, secrets, run):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755 if d != run else 0o1777)
    # A password with a double quote: the auth file's quoting must hold.
    (secrets / "app_password").write_text('app"pass-7f3')
    (secrets / "lock_monitor_password").write_text("monitor-pass-9c1")
    for f in secrets.iterdir():
        f.chmod(0o644)  # as make-secrets.sh leaves them: compose mounts them unchanged
    datname = "compose_pgbouncer"
    psql(pg_server.dsn, f'DROP DATABASE IF EXISTS "{datname}"')
    psql(pg_server.dsn, f'CREATE DATABASE "{datname}"')
    psql(pg_server.dsn, "DO $$BEGIN CREATE ROLE app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
    port = free_port()
    ini = (SHIPPED / "pgbouncer.ini").read_text()
    for shipped, native in [("host=postgres port=5432 dbname=app", f"host=127.0.0.1 port={pg_server.port} dbname={datname}"),
                            ("listen_addr = 0.0.0.0", "listen_addr = 127.0.0.1"), ("listen_port = 6432", f"listen_port = {port}"),
                            ("/run/pgbouncer/userlist.txt", f"{run}/userlist.txt")]:
        assert shipped in ini, f"deploy/pgbouncer/pgbouncer.ini no longer has {shipped!r}"
        ini = ini.replace(shipped, native)
    (directory / "pgbouncer.ini").write_text(ini)
    owner = ["runuser", "-u", os.environ.get("PG_SANDBOX_USER", "postgres"), "--"] if os.geteuid() == 0 else []
    pooler = livestack.ManagedProcess("compose pgbouncer", [*owner, "/bin/sh", SHIPPED / "entrypoint.sh"], directory / "pgbouncer.log",
                                      env=clean_env({"SECRETS_DIR": str(secrets), "PGBOUNCER_RUN": str(run),
                                                     "PGBOUNCER_INI": str(directory / "pgbouncer.ini")}))
    exporter = None
    try:
        wait_until("PgBouncer to listen", lambda: f"listening on 127.0.0.1:{port}" in pooler.log_text(), timeout=10)
        assert oct((run / "userlist.txt").stat().st_mode & 0o777) == "0o600"
        # The application logs in through the pool with SCRAM, its password quoted right.
        app = subprocess.run(["psql", "-X", "-A", "-t", "-c", "SELECT current_user, current_database()",
                              f"host=127.0.0.1 port={port} dbname=app user=app"], capture_output=True, text=True,
                             timeout=20, env=clean_env({"PGPASSWORD": 'app"pass-7f3'}))
        assert app.returncode == 0, app.stderr
        assert app.stdout.strip() == f"app|{datname}"
        wrong = subprocess.run(["psql", "-X", "-c", "SELECT 1", f"host=127.0.0.1 port={port} dbname=app user=app"],
                               capture_output=True, text=True, timeout=20, env=clean_env({"PGPASSWORD": "app"}))
        assert wrong.returncode != 0 and "SASL authentication failed" in wrong.stderr, wrong.stderr

        # The exporter with docker-compose.yml's own flags, the host and file mapped to here.
        flags = compose_flags("exporter")
        assert flags == ["--pgbouncer.dsn=host=pgbouncer port=6432 dbname=pgbouncer user=lock_monitor",
                         "--pgbouncer.password-file=/run/secrets/lock_monitor_password"], flags
        flags = [f.replace("host=pgbouncer port=6432", f"host=127.0.0.1 port={port}")
                  .replace("/run/secrets/", f"{secrets}/") for f in flags]
        exporter = livestack.start_exporter(exporter_bin, pg_server.dsn_for(datname), directory / "exporter.log",
                                            extra_args=["--sample.interval", "0", *flags])
        metrics = livestack.parse_metrics(livestack.http_get(exporter.url)[1].decode())
        assert livestack.sample(metrics, "pg_pgbouncer_up", pgbouncer=f"127.0.0.1:{port}") == 1
        assert livestack.sample(metrics, "pg_pgbouncer_clients_waiting", pgbouncer=f"127.0.0.1:{port}", database="app") == 0
    finally:
        if exporter:
            exporter.process.stop()
        pooler.stop()
    assert not re.search(r"monitor-pass|app\"pass", (directory / "exporter.log").read_text())
