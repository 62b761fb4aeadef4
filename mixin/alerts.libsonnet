// The alerting rules (alerts/pg_lock_exporter.rules.yml is their rendering with the defaults).
//
// Prometheus 2.42 or newer: PostgresBlockerIdleInTransaction uses keep_firing_for.
// Both ways of scraping work: one target at /metrics, or many at /probe?target=NAME (the
// multi-target pattern, usually relabelled so that instance is the target's name). Every body
// with pg_up also carries pg_lock_exporter_build_info, which is how the rules tell this
// exporter's pg_up from postgres_exporter's. Every rule but the two on `up` keeps all labels
// of the series it fires on, so instance, job, datname and any target labels you add reach
// Alertmanager unchanged.
//
// Severities: critical pages, warning goes to a ticket or chat, info is context. Alerts with
// a warning and a critical tier share one alertname; the inhibit rule in
// alerts/alertmanager-inhibit.example.yml mutes the warning while the critical fires.
// Runbooks: docs/runbooks.md, one section per alert (its anchor is the name in lower case).
// Tests: alerts/tests/*.yml, run by promtool against the rendered defaults.
local util = import 'lib/util.libsonnet';

{
  local c = $._config,
  local s(name, matchers='') = util.series(c, name, matchers),
  local fold = util.fold,
  local human = util.humanDuration,

  local alert(name, severity, expr, summary, description, extra={}) = {
    alert: name,
    expr: expr,
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: fold(description),
      runbook_url: c.runbookURLBase + '#' + std.asciiLower(name),
    } + extra,
  },

  // The target's page of blocking trees, from --web.external-url (empty without it).
  local treeURL = {
    tree_url: '{{ with printf "pg_lock_exporter_web_info{instance=%q,job=%q}" $labels.instance $labels.job | query }}{{ with first . }}{{ .Labels.tree_url }}{{ end }}{{ end }}',
  },
  // The database's episodes page, from --web.external-url (empty without it).
  local episodesURL = {
    episodes_url: '{{ with printf "pg_lock_exporter_web_info{instance=%q,job=%q}" $labels.instance $labels.job | query }}{{ with first . }}{{ .Labels.external_url }}episodes?datname={{ $labels.datname | urlquery }}{{ end }}{{ end }}',
  },
  // The top root blocker of the alert's database, for the lock alerts' descriptions.
  local topRoot = |||
    {{ with printf "topk(1, pg_blocking_root_blocked_sessions{instance=%q,job=%q,datname=%q})" $labels.instance $labels.job $labels.datname | query }}{{ with first . }}
    Top root blocker: pid {{ .Labels.pid }} (user {{ .Labels.usename }}, application "{{ .Labels.application_name }}",
    state {{ .Labels.state }}) with {{ .Value }} waiting session(s).{{ end }}{{ end }}
  |||,

  local lockWait(severity) = alert(
    'PostgresLockWaitTooLong',
    severity,
    '%s > %s' % [s('pg_lock_wait_seconds_max'), util.num(c.lockWaitSeconds[severity])],
    'A session has been waiting on a lock for too long.',
    |||
      A session in database {{ $labels.datname }} on {{ $labels.instance }} has been waiting on a lock
      for {{ $value | humanizeDuration }}.%s
    ||| % std.rstripChars(topRoot, '\n'),
    treeURL,
  ) + { 'for': c.lockWaitFor },

  local idleInTransaction(severity) = alert(
    'PostgresIdleInTransactionTooLong',
    severity,
    '%s > %s' % [s('pg_idle_in_transaction_seconds'), util.num(c.idleInTransactionSeconds[severity])],
    'A session has been idle in transaction for too long.',
    |||
      A session of user {{ $labels.usename }} (application "{{ $labels.application_name }}") in database
      {{ $labels.datname }} on {{ $labels.instance }} has been idle in transaction for
      {{ $value | humanizeDuration }}; it keeps its locks until it commits, rolls back or is terminated.
    |||,
    treeURL,
  ) + { 'for': c.idleInTransactionFor },

  local transactionAge(severity) = alert(
    'PostgresLongRunningTransaction',
    severity,
    '%s > %s' % [s('pg_transaction_age_seconds_max'), util.num(c.transactionAgeSeconds[severity])],
    'A transaction has been open for too long.',
    |||
      The oldest transaction in state "{{ $labels.state }}" in database {{ $labels.datname }} on
      {{ $labels.instance }} has been open for {{ $value | humanizeDuration }}; it holds its locks and
      keeps vacuum from removing dead rows.
    |||,
    treeURL,
  ) + { 'for': c.transactionAgeFor },

  local connections(severity) = alert(
    'PostgresConnectionsNearLimit',
    severity,
    |||
      sum without (datname, usename, application_name, state) (%s)
        / %s > %s
    ||| % [s('pg_sessions'), s('pg_max_connections'), util.num(c.connectionsUsed[severity])],
    'Client sessions are close to max_connections.',
    |||
      Client sessions of all databases on {{ $labels.instance }} use {{ $value | humanizePercentage }}
      of max_connections; past the limit (minus the slots reserved for superusers) new connections are refused.
    |||,
  ) + { expr: std.rstripChars(super.expr, '\n'), 'for': c.connectionsUsedFor[severity] },

  local deadlocks(severity, comparison) = alert(
    'PostgresDeadlocks',
    severity,
    'increase(%s[10m]) %s' % [s('pg_database_deadlocks_total'), comparison],
    'PostgreSQL detected deadlocks.',
    |||
      {{ printf "%.0f" $value }} deadlock(s) in database {{ $labels.datname }} on {{ $labels.instance }}
      in the last 10 minutes; PostgreSQL aborted one transaction of each, so the application got errors.
    |||,
    treeURL,
  ),

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'pg-lock-exporter',
        rules: [
          // Either Prometheus cannot scrape the exporter (up == 0), or the exporter answers but
          // cannot reach PostgreSQL (pg_up == 0). In multi-target mode each /probe target has its
          // own up, pg_up and build_info, so a target whose PostgreSQL is down fires by itself.
          alert(
            'PostgresExporterDown',
            'critical',
            '%s == 0\nor (%s == 0 and %s)' % [s('up', c.exporterJobSelector), s('pg_up'), util.ofThisExporter(c)],
            'PostgreSQL or its pg_lock_exporter is down, so sessions and locks are not being watched.',
            |||
              {{ with printf "pg_up{instance=%q,job=%q}" $labels.instance $labels.job | query }}pg_lock_exporter
              at {{ $labels.instance }} (job {{ $labels.job }}) answers but cannot collect from PostgreSQL (pg_up is 0):
              the server is down, restarting, or refusing the exporter's connection.{{ else }}Prometheus cannot scrape
              pg_lock_exporter at {{ $labels.instance }} (job {{ $labels.job }}): the exporter or its host is down,
              so blocking sessions would go unnoticed.{{ end }}
            |||,
          ) + { 'for': c.exporterDownFor },

          // A PgBouncer of --pgbouncer.dsn (or a target's pgbouncers:) the exporter cannot read:
          // PostgreSQL is still watched, but root blockers behind that pooler are named by the
          // pooler's address instead of the application's.
          alert(
            'PgBouncerAdminConsoleUnreadable',
            'warning',
            '%s == 0 and %s' % [s('pg_pgbouncer_up'), util.ofThisExporter(c)],
            "The exporter cannot read a PgBouncer's admin console, so root blockers behind it are not named by their application host.",
            |||
              pg_lock_exporter at {{ $labels.instance }} (job {{ $labels.job }}) has not read the admin console of
              PgBouncer {{ $labels.pgbouncer }} for %s: the pooler is down or stopped, slower than
              --pgbouncer.timeout, or refuses the exporter's user (not in stats_users, wrong password). Sessions
              and locks are still watched; the exporter's log says why in one line.
            ||| % human(c.pgbouncerUnreadableFor),
          ) + { 'for': c.pgbouncerUnreadableFor },

          // Collections that fail now and then while PostgreSQL is reachable. One failing at the
          // moment of evaluation does not reset the `for:` (only PostgreSQL down for the whole
          // 5-minute window does: that is PostgresExporterDown's case).
          alert(
            'PostgresExporterScrapeErrors',
            'warning',
            'rate(%s[5m]) * 60 > 0\nunless on (instance, job) max_over_time(%s[5m]) == 0' % [s('pg_lock_exporter_scrape_errors_total'), s('pg_up')],
            'The exporter keeps failing to collect session and lock data.',
            |||
              pg_lock_exporter at {{ $labels.instance }} (job {{ $labels.job }}) has failed collections
              for %s (now {{ printf "%%.2g" $value }} per minute), so its session and lock metrics
              are incomplete; its log gives the failing query.
            ||| % human(c.scrapeErrorsFor),
          ) + { 'for': c.scrapeErrorsFor },
        ],
      },
      {
        name: 'pg-lock-health',
        rules: [
          // The alert meant to trigger remediation: Alertmanager routes it to `remediate --listen`,
          // which re-reads the database before acting and ends every root blocker its policy
          // allows, named here or not. One alert per database, on a gauge that covers every root
          // blocker whatever its rank, so its `for:` does not start over when the top-K roots
          // (which only name the pids in the description) change places.
          alert(
            'PostgresBlockerIdleInTransaction',
            'critical',
            '%s > %s' % [s('pg_blocking_root_idle_in_transaction_seconds_max'), util.num(c.blockerIdleInTransactionSeconds)],
            'Sessions left idle in transaction are blocking other sessions.',
            |||
              {{ with printf "pg_blocking_root_idle_in_transaction_sessions{instance=%q,job=%q,datname=%q}" $labels.instance $labels.job $labels.datname | query }}{{ . | first | value }}{{ else }}Some{{ end }}
              root blocker(s) in database {{ $labels.datname }} on {{ $labels.instance }} are idle in transaction, the
              longest for {{ $value | humanizeDuration }}, with
              {{ with printf "pg_blocked_sessions{instance=%q,job=%q,datname=%q}" $labels.instance $labels.job $labels.datname | query }}{{ . | first | value }}{{ else }}some{{ end }}
              session(s) waiting on locks in that database.{{ with printf `topk(1, pg_blocking_root_state_seconds{instance=%q,job=%q,datname=%q,state=~"idle in transaction.*"})` $labels.instance $labels.job $labels.datname | query }}{{ with first . }}
              The longest idle of the top root blockers: pid {{ .Labels.pid }} (user {{ .Labels.usename }}, application "{{ .Labels.application_name }}",
              client {{ if .Labels.pgbouncer_client }}{{ .Labels.pgbouncer_client }} via PgBouncer at {{ or .Labels.client_addr "a local socket" }}{{ else }}{{ or .Labels.client_addr "local socket" }}{{ end }}).{{ end }}{{ end }} Terminating them releases the chains.
            |||,
            treeURL,
          ) + { 'for': c.blockerIdleInTransactionFor, keep_firing_for: c.blockerIdleInTransactionKeepFiringFor },

          lockWait('warning'),
          lockWait('critical'),

          // Lock contention that never stops, even when each single wait is short.
          alert(
            'PostgresSessionsBlocked',
            'warning',
            '%s > 0' % s('pg_blocked_sessions'),
            'Sessions have been waiting on locks without a break for %s.' % human(c.sessionsBlockedFor),
            |||
              {{ $value }} session(s) in database {{ $labels.datname }} on {{ $labels.instance }} are waiting on
              locks, and there have been waiting sessions there without a break for at least %s.%s
            ||| % [human(c.sessionsBlockedFor), std.rstripChars(topRoot, '\n')],
            treeURL,
          ) + { 'for': c.sessionsBlockedFor },

          deadlocks('info', '> 0'),
          deadlocks('warning', '>= %s' % util.num(c.deadlocksWarning)),

          // Blocking that keeps coming back: episodes (one root blocker with sessions waiting
          // behind it, sampled every --sample.interval, so ones between scrapes count) that lasted
          // more than 1 minute, within an hour in one database. Each may end before
          // PostgresLockWaitTooLong fires; together they point at a code path that leaves
          // transactions open. From the duration histogram: the ended episodes minus those in the
          // le="60" bucket (Prometheus 3 stores that le as "60.0"). increase() over 1h
          // extrapolates by a few percent at most, so "> N - 0.5" reads "at least N".
          alert(
            'PostgresBlockingEpisodesRepeatedlyLong',
            'warning',
            'increase(%s[1h])\n- ignoring (le) increase(%s[1h])\n> %s' % [
              s('pg_blocking_episode_duration_seconds_count'),
              s('pg_blocking_episode_duration_seconds_bucket', 'le=~"60|60\\\\.0"'),
              util.num(c.longEpisodesPerHour - 0.5),
            ],
            'Blocking episodes longer than a minute keep coming back in one database.',
            |||
              {{ printf "%.0f" $value }} blocking episodes in database {{ $labels.datname }} on {{ $labels.instance }}
              lasted more than 1 minute each in the last hour. Each one's record names its root session, the
              statement it left open and how it ended: pg_lock_exporter episodes --url EXPORTER_URL --datname
              {{ $labels.datname }}, or GET /api/v1/episodes?datname={{ $labels.datname }} on the exporter.
            |||,
            episodesURL,
          ),
        ],
      },
      {
        name: 'pg-session-health',
        rules: [
          // Age of the oldest idle-in-transaction session, not a count of them.
          idleInTransaction('warning'),
          idleInTransaction('critical'),
          transactionAge('warning'),
          transactionAge('critical'),
          connections('warning'),
          connections('critical'),

          // Per (database, role) with client sessions: the value those sessions get at login, from
          // ALTER ROLE ... IN DATABASE, ALTER ROLE, ALTER DATABASE or the server's own setting,
          // whichever applies (docs/metrics.md). Silent where any of them sets one.
          alert(
            'PostgresIdleInTransactionTimeoutDisabled',
            'info',
            '%s == 0' % s('pg_role_setting_seconds', 'name="idle_in_transaction_session_timeout"'),
            'Sessions get no idle-in-transaction timeout, so nothing ends one left idle in transaction.',
            |||
              Sessions of role {{ $labels.usename }} in database {{ $labels.datname }} on {{ $labels.instance }} get
              idle_in_transaction_session_timeout 0 (disabled): neither the role, the database nor the server sets
              one for them, so a forgotten idle-in-transaction session can hold its locks indefinitely.
            |||,
          ) + { 'for': c.idleInTransactionTimeoutDisabledFor },
        ],
      },
      {
        name: 'pg-lock-remediation',
        rules: [
          alert(
            'PostgresRemediationFailed',
            'warning',
            'increase(%s[15m]) > 0' % s('pg_lock_remediator_termination_failures_total'),
            'The remediator failed to terminate a blocking session.',
            |||
              The remediator at {{ $labels.instance }} (job {{ $labels.job }}) failed {{ printf "%.0f" $value }}
              termination(s) in the last 15 minutes, so the blocker may still be there; its audit log gives the pid
              and the reason.
            |||,
          ),
          alert(
            'PostgresRemediationExecuted',
            'info',
            'increase(%s[15m]) > 0' % s('pg_lock_remediator_terminations_total'),
            'The remediator terminated blocking sessions.',
            |||
              The remediator at {{ $labels.instance }} (job {{ $labels.job }}) terminated {{ printf "%.0f" $value }}
              session(s) in the last 15 minutes; its audit log names each pid, user, application and reason.
            |||,
          ),
          alert(
            'PostgresRemediatorWebhookRejected',
            'warning',
            'increase(%s[15m]) > 0' % s('pg_lock_remediator_webhook_requests_total', 'result=~"unauthorized|bad_request|too_large"'),
            'The remediator is rejecting Alertmanager webhooks, so alert-triggered remediation does not happen.',
            |||
              The remediator at {{ $labels.instance }} (job {{ $labels.job }}) rejected {{ printf "%.0f" $value }}
              webhook request(s) as {{ $labels.result }} in the last 15 minutes; check the webhook_configs of
              Alertmanager and the bearer token file.
            |||,
          ),
          alert(
            'PostgresRemediatorDown',
            'warning',
            '%s == 0' % s('up', c.remediatorJobSelector),
            'The remediator cannot be scraped, so alert-triggered remediation may not happen.',
            |||
              Prometheus cannot scrape the remediator at {{ $labels.instance }} (job {{ $labels.job }}); while it is
              down, Alertmanager's webhooks for PostgresBlockerIdleInTransaction go unanswered.
            |||,
          ) + { 'for': c.remediatorDownFor },
        ],
      },
    ],
  },
}
