// The knobs of the pg_lock_exporter mixin. Override any of them in your own jsonnet:
//
//   (import 'pg-lock-exporter-mixin/mixin.libsonnet') + {
//     _config+:: { selector: 'cluster="prod-eu"', runbookURLBase: 'https://wiki.example.com/pg/runbooks' },
//   }
//
// or hand scripts/render-mixin a file holding only the overrides ({ selector: ..., ... }).
// `make mixin` renders these defaults into alerts/ and dashboards/ (the files the repo ships).
{
  _config+:: {
    // Matchers added to every series selector of the rules and the dashboard (empty: none),
    // e.g. 'cluster="prod-eu"' when one Prometheus holds several environments.
    selector: '',

    // Who scrapes what. Only the two `up` rules need the job names: every other rule
    // recognises this exporter's series by pg_lock_exporter_build_info, whatever the job.
    exporterJobSelector: 'job=~"pg_lock_exporter.*"',
    remediatorJobSelector: 'job=~"pg_lock_remediator.*"',

    // Where your team reads docs/runbooks.md, without a #fragment: each rule appends its
    // alert's anchor. The default is a placeholder the repo's output keeps (the Helm chart's
    // runbookBaseURL replaces it); scripts/check_alerts.sh --installed refuses rules that
    // still carry it.
    runbookURLBase: '__RUNBOOK_BASE_URL__',

    // Thresholds. Seconds unless said otherwise; `for` values are Prometheus durations.
    // The remediation trigger: a root blocker idle in transaction while others wait.
    blockerIdleInTransactionSeconds: 60,
    blockerIdleInTransactionFor: '1m',
    blockerIdleInTransactionKeepFiringFor: '3m',
    lockWaitSeconds: { warning: 60, critical: 300 },
    lockWaitFor: '1m',
    sessionsBlockedFor: '5m',
    idleInTransactionSeconds: { warning: 300, critical: 900 },
    idleInTransactionFor: '1m',
    transactionAgeSeconds: { warning: 600, critical: 3600 },
    transactionAgeFor: '2m',
    // Share of max_connections in use (0..1), each with its own `for`.
    connectionsUsed: { warning: 0.8, critical: 0.9 },
    connectionsUsedFor: { warning: '10m', critical: '5m' },
    // Deadlocks in 10 minutes: info at any, warning at this many.
    deadlocksWarning: 5,
    // PostgresBlockingEpisodesRepeatedlyLong: this many episodes longer than 60 s in an hour.
    // (60 s is a bucket boundary of pg_blocking_episode_duration_seconds: not a knob.)
    longEpisodesPerHour: 3,
    pgbouncerUnreadableFor: '5m',
    scrapeErrorsFor: '15m',
    exporterDownFor: '1m',
    remediatorDownFor: '5m',
    idleInTransactionTimeoutDisabledFor: '15m',

    // The dashboard.
    dashboardUID: 'pg-lock-overview',
    dashboardTitle: 'PostgreSQL sessions, locks and blocking (pg_lock_exporter)',
    dashboardTags: ['postgres', 'pg_lock_exporter', 'locks'],
    dashboardRefresh: '30s',
    // The data source picked when the dashboard opens (a Grafana data source name; empty:
    // Grafana's default Prometheus), and a regex limiting the picker (empty: every Prometheus).
    datasource: '',
    datasourceRegex: '',
  },
}
