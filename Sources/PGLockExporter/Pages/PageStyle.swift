/// The pages' one stylesheet, served at `/static/pages.css` (the only thing the pages' CSP lets
/// them load). Readable on a phone and a wide screen, light and dark by the reader's setting;
/// states are words first and colours second, and statements wrap rather than scroll.
public enum PageStyle {
    public static let path = "/static/pages.css"

    public static var response: HTTPResponse {
        HTTPResponse(status: 200, headers: [("Content-Type", "text/css; charset=utf-8")] + PageDocument.securityHeaders, body: Array(css.utf8))
    }

    public static let css = """
        :root { color-scheme: light dark; --fg: #1b1f24; --bg: #ffffff; --muted: #57606a; --line: #d0d7de;
          --bad: #b3261e; --warn: #8a5a00; --code-bg: #f3f4f6; --link: #0a58ca; }
        @media (prefers-color-scheme: dark) {
          :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9da7b3; --line: #30363d; --bad: #ff8a80;
            --warn: #e3b341; --code-bg: #161b22; --link: #79b8ff; } }
        * { box-sizing: border-box; }
        body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
        nav { display: flex; flex-wrap: wrap; gap: 1rem; padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
        main { max-width: 80rem; margin: 0 auto; padding: 0 1rem 2rem; }
        a { color: var(--link); }
        a:focus-visible, summary:focus-visible, input:focus-visible, button:focus-visible { outline: 3px solid var(--link); outline-offset: 2px; }
        h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 1.6rem; }
        .meta, .muted { color: var(--muted); }
        ul.waiters { list-style: none; margin: .2rem 0 .2rem 1.1rem; padding-left: .9rem; border-left: 2px solid var(--line); }
        ul.waiters.top { margin-left: 0; padding-left: 0; border-left: 0; }
        li.session { margin: .45rem 0; }
        .line { display: flex; flex-wrap: wrap; gap: .2rem .7rem; align-items: baseline; }
        .pid { font-weight: 700; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
        .state { font-weight: 600; }
        .state.idle-in-transaction { color: var(--bad); }
        .state.waiting { color: var(--warn); }
        .who, .lock { color: var(--muted); overflow-wrap: anywhere; }
        code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; background: var(--code-bg); }
        code.query { display: block; padding: .2rem .4rem; margin-top: .15rem; white-space: pre-wrap; overflow-wrap: anywhere; }
        pre { padding: .8rem; white-space: pre-wrap; overflow-wrap: anywhere; border: 1px solid var(--line); }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        .table { overflow-x: auto; }
        form { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; margin: 1rem 0; }
        label { display: flex; flex-direction: column; font-size: .9rem; }
        input, button { font: inherit; padding: .3rem .5rem; }
        .error { color: var(--bad); }

        """
}
