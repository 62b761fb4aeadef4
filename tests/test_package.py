"""The Debian package (scripts/package) with the tools Debian users trust: lintian on the .deb,
`systemd-analyze verify` and `security --offline=true` on both units, then the package installed
with dpkg into this machine: the exporter started with its unit's exact ExecStart line, as the
package's user, with the /etc/default file's environment, against the test PostgreSQL; an upgrade
from the previous build that keeps an edited /etc/default file; and `dpkg --purge` leaving
nothing behind. The test machine has no systemd as PID 1, so the unit's own start is not run:
what it would run is.

Needs root (dpkg), lintian and systemd-analyze (systemd); `.ci/run` installs them. Never skipped."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

import livestack
from livestack import REPO, clean_env, free_port, wait_until

PACKAGE = "pg-lock-exporter"
UNITS = ["pg-lock-exporter.service", "pg-lock-remediator.service"]
# The warnings lintian gives that are kept on purpose: the /etc/default files hold the DSN (and
# may hold more), so they are 0600 (systemd reads them as root), not 0644.
KEPT_WARNINGS = {
    "W: pg-lock-exporter: non-standard-file-perm 0600 != 0644 [etc/default/pg-lock-exporter]",
    "W: pg-lock-exporter: non-standard-file-perm 0600 != 0644 [etc/default/pg-lock-remediator]",
}


def run(argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=kwargs.pop("timeout", 900),
                          env=kwargs.pop("env", clean_env()), **kwargs)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """The .deb and tarball of this tree, and a second .deb of the same binary under a higher
    version (the upgrade's target)."""
    if os.geteuid() != 0:
        pytest.fail("the package test installs with dpkg: run it as root (CI does)", pytrace=False)
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "lintian", "systemd-analyze"):
        if not run(["sh", "-c", f"command -v {tool}"]).stdout.strip():
            pytest.fail(f"{tool} not found (apt-get install dpkg-dev lintian systemd)", pytrace=False)
    out = tmp_path_factory.mktemp("package")
    # PACKAGE_NO_BUILD=1 in the environment packages the release binary already built.
    extra = {"PACKAGE_NO_BUILD": os.environ["PACKAGE_NO_BUILD"]} if os.environ.get("PACKAGE_NO_BUILD") else {}
    built = run([REPO / "scripts" / "package"], env=clean_env({"PACKAGE_OUT": str(out), "PATH": os.environ["PATH"], **extra}))
    assert built.returncode == 0, built.stderr[-3000:]
    deb, tarball = built.stdout.split()
    newer = run([REPO / "scripts" / "package"],
                env=clean_env({"PACKAGE_OUT": str(out / "newer"), "PACKAGE_VERSION": "0.1.0+upgrade1",
                               "PACKAGE_NO_BUILD": "1", "PATH": os.environ["PATH"]}))
    assert newer.returncode == 0, newer.stderr[-3000:]
    return Path(deb), Path(tarball), Path(newer.stdout.split()[0])


def test_lintian_finds_no_error_and_only_the_kept_warnings(packages):
    deb, tarball, _ = packages
    out = run(["lintian", "--tag-display-limit", "0", deb])
    lines = {line for line in out.stdout.splitlines() if re.match(r"^[EW]: ", line)}
    print(f"\npackage: lintian on {deb.name}: {len([l for l in lines if l.startswith('E:')])} errors, "
          f"{len([l for l in lines if l.startswith('W:')])} warnings: {sorted(lines)}")
    assert not [line for line in lines if line.startswith("E:")], out.stdout
    assert lines <= KEPT_WARNINGS, lines - KEPT_WARNINGS
    listing = run(["tar", "-tzf", tarball]).stdout.split()
    for member in ("pg_lock_exporter", "pg_lock_exporter.1", "systemd/pg-lock-exporter.service",
                   "systemd/pg-lock-remediator.service", "default/pg-lock-exporter", "alerts/pg_lock_exporter.rules.yml",
                   "dashboards/pg-lock-overview.json", "mixin/mixin.libsonnet", "mixin/config.libsonnet"):
        assert any(m.endswith("/" + member) for m in listing), member


def test_both_units_verify_and_score_ok_offline():
    for unit in UNITS:
        path = REPO / "packaging" / "systemd" / unit
        security = run(["systemd-analyze", "security", "--offline=true", "--no-pager", path])
        score = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", security.stdout)
        assert score, security.stdout[-2000:] + security.stderr
        print(f"\npackage: systemd-analyze security {unit}: {score.group(1)} {score.group(2)}")
        assert float(score.group(1)) <= 2.0 and score.group(2) == "OK", security.stdout[-3000:]


def test_installed_started_as_the_unit_would_upgraded_and_purged(packages, pg_server, exporter_bin):
    deb, _, newer = packages
    run(["dpkg", "--purge", PACKAGE])  # a previous run's leftovers, if any
    installed = run(["dpkg", "-i", deb])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        # What the package put in place, with the modes that keep secrets from other users.
        assert run(["getent", "passwd", "pg-lock-exporter"]).returncode == 0
        assert oct(os.stat("/etc/default/pg-lock-exporter").st_mode & 0o777) == "0o600"
        secrets = os.stat("/etc/pg-lock-exporter")
        assert oct(secrets.st_mode & 0o777) == "0o750" and secrets.st_uid == 0
        assert Path("/usr/share/pg-lock-exporter/alerts/pg_lock_exporter.rules.yml").exists()
        assert Path("/usr/share/man/man1/pg_lock_exporter.1.gz").exists()
        wants = Path("/etc/systemd/system/multi-user.target.wants")
        assert (wants / "pg-lock-exporter.service").is_symlink(), "the exporter is enabled on install"
        assert not (wants / "pg-lock-remediator.service").exists(), "the remediator must never be enabled by the package"
        for unit in UNITS:
            verified = run(["systemd-analyze", "verify", "--man=no", f"/lib/systemd/system/{unit}"])
            assert verified.returncode == 0, verified.stdout + verified.stderr

        # The unit's exact ExecStart, as its user, with /etc/default's environment (edited to reach
        # the test PostgreSQL and a free port), in its StateDirectory as systemd would make it.
        port = free_port()
        default = Path("/etc/default/pg-lock-exporter")
        text = default.read_text()
        text = re.sub(r'^DATA_SOURCE_NAME=.*$', f'DATA_SOURCE_NAME="host=127.0.0.1 port={pg_server.port} dbname=postgres user=postgres"',
                      text, flags=re.M)
        text = text.replace("--web.listen-address=:9817", f"--web.listen-address=127.0.0.1:{port}")
        text += "# edited by the package test\n"
        default.write_text(text)
        environment = environment_file(default)
        unit = (Path("/lib/systemd/system") / "pg-lock-exporter.service").read_text()
        exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
        argv = [environment.get(word[1:], word) if word.startswith("$") else word for word in exec_start.split()]
        argv = [part for word in argv for part in word.split()]  # $ARGS splits on whitespace, as systemd does
        state = Path("/var/lib/pg-lock-exporter")
        state.mkdir(mode=0o750, exist_ok=True)
        run(["chown", "pg-lock-exporter:pg-lock-exporter", state])
        process = livestack.ManagedProcess(
            "packaged exporter", ["runuser", "-u", "pg-lock-exporter", "--", "env", "-i", "PATH=/usr/bin:/bin",
                                  *[f"{k}={v}" for k, v in environment.items() if k != "ARGS"], *argv],
            Path(os.environ.get("TMPDIR", "/tmp")) / f"packaged-exporter-{port}.log")
        try:
            body = wait_until("the packaged exporter to answer", lambda: livestack.http_get(f"http://127.0.0.1:{port}/metrics")[1]
                              if process.alive() else _exited(process), timeout=20)
            assert re.search(rb"^pg_up 1$", body, re.M), body[:500]
            assert Path("/var/lib/pg-lock-exporter/episodes.db").exists()
            print(f"\npackage: {' '.join(argv)} as pg-lock-exporter: pg_up 1")
        finally:
            process.stop()

        # Upgrade from this build to the next: the edited conffile stays as it was.
        upgraded = run(["dpkg", "-i", newer])
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        assert run(["dpkg-query", "-W", "-f=${Version}", PACKAGE]).stdout == "0.1.0+upgrade1"
        assert default.read_text() == text
    finally:
        purged = run(["dpkg", "--purge", PACKAGE])
    assert purged.returncode == 0, purged.stdout + purged.stderr
    left = [p for p in ["/usr/bin/pg_lock_exporter", "/etc/default/pg-lock-exporter", "/etc/default/pg-lock-remediator",
                        "/etc/pg-lock-exporter", "/var/lib/pg-lock-exporter", "/usr/share/pg-lock-exporter",
                        "/usr/share/doc/pg-lock-exporter", "/lib/systemd/system/pg-lock-exporter.service",
                        "/etc/systemd/system/multi-user.target.wants/pg-lock-exporter.service"] if os.path.lexists(p)]
    assert not left, f"left behind by dpkg --purge: {left}"
    assert run(["getent", "passwd", "pg-lock-exporter"]).returncode != 0, "the system user outlived the purge"
    assert run(["dpkg-query", "-W", PACKAGE]).returncode != 0


def environment_file(path):
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments skipped, quotes removed)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        env[key.strip()] = " ".join(shlex.split(value))
    return env


def _exited(process):
    raise AssertionError(f"the packaged exporter exited: {process.log_tail()}")
