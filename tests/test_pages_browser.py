"""The pages for people (`/tree`, `/episodes`, issue 22) in a real browser: headless Chromium
from Debian's `chromium` package, started here, against the real exporter during the seed
incident (conftest.py's `start_incident`).

Chromium loads each page, and what it built is read back (`--dump-dom`) and parsed with lxml's
HTML parser into elements, so the checks are on the DOM, not on the bytes the server sent.
Its console (`--enable-logging=stderr`) shows any Content-Security-Policy violation. Screenshots
go to .build/test-artifacts/ (or $PG_LOCK_TESTS_ARTIFACTS)."""

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import lxml.etree
import lxml.html
import pytest

import livestack
from livestack import REPO, clean_env, psql, wait_until

ARTIFACTS = Path(os.environ.get("PG_LOCK_TESTS_ARTIFACTS") or REPO / ".build" / "test-artifacts")
HOSTILE_APP = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
# The statement keeps its hostile text through normalization: it is an identifier, not a literal.
HOSTILE_COLUMN = '<script>alert(3)</script>"><img src=x onerror=alert(4)>\x1b[31m'
HOSTILE_SQL = 'SELECT count(*) AS "' + HOSTILE_COLUMN.replace('"', '""') + '" FROM features'


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium not found (apt-get install chromium); the page tests are never skipped", pytrace=False)
    return path


def browse(url, *extra, timeout=60):
    """Loads `url` in headless Chromium; (DOM as Chromium serialised it, its console log)."""
    profile = ARTIFACTS / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    # --dump-dom prints the DOM once the page has loaded and exits; --screenshot (in `extra`) does the same for an image.
    action = [] if any(e.startswith("--screenshot") for e in extra) else ["--dump-dom"]
    out = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *action, *extra, url],
                         capture_output=True, text=True, timeout=timeout, env=clean_env())
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout, out.stderr


def csp_violations(console):
    return [line for line in console.splitlines() if "Content Security Policy" in line]


def elements(node, tag=None):
    """The elements under node (itself included; comments left out), of one tag if given."""
    return [e for e in node.iter(lxml.etree.Element) if tag is None or e.tag == tag]


def session(dom, pid):
    found = [e for e in elements(dom, "li") if "session" in e.classes and e.get("data-pid") == str(pid)]
    assert len(found) == 1, f"pid {pid}: {len(found)} session elements"
    return found[0]


def waiters(element):
    """The pids of the sessions directly in `element`'s waiter list."""
    return sorted(int(li.get("data-pid")) for ul in element if ul.tag == "ul" and "waiters" in ul.classes
                  for li in ul if "session" in li.classes)


def line_text(element):
    return "".join(c.text_content() for c in element if c.tag == "div")


@pytest.fixture(scope="module")
def pages(exporter_bin, pg_server, start_incident, workdir):
    """The seed incident plus a hostile reader queued behind the migration, and the exporter."""
    incident = start_incident("pages_incident", 2)
    hostile = subprocess.Popen(["psql", "-X", "-q", "-c", HOSTILE_SQL, incident.dsn], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=clean_env({"PGAPPNAME": HOSTILE_APP}))
    exporter = None
    try:
        pid = wait_until("the hostile reader to queue", lambda: psql(
            incident.dsn, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
                          "AND query LIKE 'SELECT count(*) AS %'"), timeout=15)
        exporter = livestack.start_exporter(exporter_bin, incident.dsn, workdir / "pages-exporter.log",
                                            extra_args=["--sample.interval", "250ms"])
        yield incident, int(pid[0][0]), f"http://{exporter.address}"
    finally:
        if exporter:
            exporter.stop()
        hostile.kill()
        hostile.wait(timeout=10)


def test_tree_in_the_browser_draws_the_incident_nested_and_is_kept_as_a_screenshot(pages):
    incident, hostile_pid, base = pages
    dom_text, console = browse(f"{base}/tree?refresh=0")
    dom = lxml.html.fromstring(dom_text)
    root = session(dom, incident.worker_pid)
    assert "root" in root.classes
    state = next(e for e in elements(root) if "state" in e.classes).text_content()
    assert state.startswith("idle in transaction "), state
    assert next(e for e in elements(root, "code") if "query" in e.classes).text_content().startswith("SELECT")
    # The ALTER directly behind the worker, both readers and the hostile one behind the ALTER.
    assert waiters(root) == [incident.migration_pid]
    migration = session(dom, incident.migration_pid)
    assert "AccessExclusiveLock on features" in line_text(migration)
    assert elements(migration, "code")[0].text_content().startswith("ALTER TABLE features ADD COLUMN")
    assert waiters(migration) == sorted(incident.reader_pids + [hostile_pid])
    section = [e for e in elements(dom, "section") if e.get("id") == f"root-{incident.worker_pid}"]
    assert len(section) == 1 and f"pid {incident.worker_pid} blocks 4 sessions" in section[0].text_content()
    assert not csp_violations(console), csp_violations(console)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, size in (("tree.png", "1280,900"), ("tree-phone.png", "390,844")):
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        browse(f"{base}/tree?refresh=0", f"--screenshot={shot}", f"--window-size={size}")
        assert shot.stat().st_size > 10_000, shot
    print(f"\npages: /tree screenshots in {ARTIFACTS}")


def test_hostile_text_is_shown_literally_and_injects_nothing(pages):
    incident, hostile_pid, base = pages
    dom_text, console = browse(f"{base}/tree?refresh=0")
    dom = lxml.html.fromstring(dom_text)
    assert not [e for e in elements(dom) if e.tag in ("script", "img", "iframe", "object")], "an element was injected"
    assert not [e for e in elements(dom) if any(k.startswith("on") for k in e.attrib)], "an event handler was injected"
    hostile = session(dom, hostile_pid)
    # PostgreSQL keeps application_name printable ASCII; the statement keeps its escape, which
    # the page shows as the four characters \x1b.
    assert f"app={HOSTILE_APP}" in line_text(hostile), line_text(hostile)
    query = elements(hostile, "code")[0].text_content()
    assert HOSTILE_COLUMN.replace("\x1b", "\\x1b").replace('"', '""') in query, query
    assert "\x1b" not in dom_text
    assert not csp_violations(console), csp_violations(console)
    print(f"\npages: hostile reader pid {hostile_pid}: shown as {line_text(hostile)!r} / {query!r}; "
          f"0 script/img elements, 0 event handlers, 0 CSP violations")


def test_the_same_text_unescaped_would_inject_and_the_browser_would_say_so(tmp_path):
    """The harm the escaping prevents, shown on a control page served with the same CSP: the
    hostile text as markup gives elements and handlers, and Chromium reports the CSP blocking
    them. (So the two tests above can fail.)"""
    body = f"<!DOCTYPE html><html><body><p>app={HOSTILE_APP}</p><code>{HOSTILE_SQL}</code></body></html>".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'self'")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom_text, console = browse(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
    dom = lxml.html.fromstring(dom_text)
    injected = [e.tag for e in elements(dom) if e.tag in ("img", "script")]
    assert "img" in injected and "script" in injected
    assert len(csp_violations(console)) >= 2, console[-2000:]
    print(f"\npages: the same text unescaped: elements {injected}, {len(csp_violations(console))} CSP violations reported")


def test_after_remediation_the_episode_pages_name_the_root_and_how_it_ended(exporter_bin, pages):
    incident, _, base = pages
    out = subprocess.run([exporter_bin, "remediate", "--dsn", incident.dsn, "--min-idle", "0s", "--execute"],
                         capture_output=True, text=True, timeout=60, env=clean_env())
    assert out.returncode == 0 and f"TERMINATED pid {incident.worker_pid} " in out.stdout, out.stdout + out.stderr

    def ended():
        status, body = livestack.http_get_json(f"{base}/api/v1/episodes", {"datname": incident.datname})
        episodes = body["data"] if status == 200 else []
        return [e for e in episodes if not e["ongoing"] and e["root"].get("pid") == incident.worker_pid]
    episode = wait_until("the episode to end", ended, timeout=15)[0]
    dom = lxml.html.fromstring(browse(f"{base}/episodes?datname={incident.datname}")[0])
    rows = [e for e in elements(dom, "tr") if "episode" in e.classes]
    assert [r.get("data-id") for r in rows] == [episode["id"]]
    assert "root_ended" in rows[0].text_content() and f"pid {incident.worker_pid}" in rows[0].text_content()
    page, console = browse(f"{base}/episodes/{episode['id']}")
    write_up = elements(lxml.html.fromstring(page), "pre")[0].text_content()
    assert f"Root cause: pid {incident.worker_pid} " in write_up, write_up
    assert "How it ended: root_ended" in write_up, write_up
    assert "Prevention:" in write_up
    assert not csp_violations(console), csp_violations(console)
