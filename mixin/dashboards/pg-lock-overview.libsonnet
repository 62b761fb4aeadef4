// The overview dashboard: who is blocking whom, from pg_lock_exporter (and the remediator).
// A function of the mixin's _config: the data source, the extra selector, the thresholds the
// alerts use (shown as the panels' colours) and the runbook link come from there.
//
// Every query filters on the dashboard's variables ($job, $instance, $datname, $remediator_job);
// config.selector is put in front of the job matcher of each one, so one edit reaches them all.
local util = import '../lib/util.libsonnet';

function(c)
  local withSelector(expr) =
    if c.selector == '' then expr else std.strReplace(expr, 'job=~"$', c.selector + ', job=~"$');
  local ds = { type: 'prometheus', uid: '${datasource}' };
  local pos(x, y, w, h) = { h: h, w: w, x: x, y: y };
  local panel(id, type, title, gridPos) =
    { type: type, id: id, title: title, gridPos: gridPos }
    + (if type == 'row' then {} else { datasource: ds });
  // legend null: no legendFormat (a table column that is not a series).
  local target(refId, expr, legend) =
    { datasource: ds, refId: refId, expr: withSelector(expr), editorMode: 'code' }
    + (if legend == null then {} else { legendFormat: legend });
  // Range queries for graphs; instant ones for stat panels and tables.
  local range(refId, expr, legend) = target(refId, expr, legend) + { range: true, instant: false };
  local instant(refId, expr, legend) = target(refId, expr, legend) + { range: false, instant: true };
  local table(refId, expr, legend) = instant(refId, expr, legend) + { format: 'table' };
  local heatmap(refId, expr, legend) = range(refId, expr, legend) + { format: 'heatmap' };
  local variable(name, label, description, query, allValue) = {
    type: 'query',
    name: name,
    label: label,
    description: description,
    datasource: ds,
    query: query,
    definition: query,
    multi: true,
    includeAll: true,
    allValue: allValue,
    refresh: 2,
    sort: 1,
    regex: '',
    current: {},
    options: [],
    hide: 0,
    skipUrlSync: false,
  };
  local ofSelector(metric) = util.series(c, metric);
  {
    id: null,
    uid: c.dashboardUID,
    title: c.dashboardTitle,
    description: 'Who is blocking whom: sessions, idle-in-transaction ages, lock waits, root blockers and remediation, from pg_lock_exporter.',
    tags: c.dashboardTags,
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-3h', to: 'now' },
    timepicker: {},
    refresh: c.dashboardRefresh,
    timezone: 'browser',
    fiscalYearStartMonth: 0,
    liveNow: false,
    weekStart: '',
    links: [
      {
        title: 'Runbooks',
        type: 'link',
        icon: 'doc',
        targetBlank: true,
        tooltip: 'What each alert means and what to do',
        url: c.runbookURLBase,
        asDropdown: false,
        includeVars: false,
        keepTime: false,
        tags: [],
      },
    ],
    annotations: {
      list: [
        {
          name: 'Blocking alerts',
          enable: true,
          hide: false,
          iconColor: 'red',
          datasource: ds,
          expr: withSelector('ALERTS{alertstate="firing", alertname=~"PostgresBlockerIdleInTransaction|PostgresLockWaitTooLong|PostgresSessionsBlocked", job=~"$job", instance=~"$instance", datname=~"$datname"}'),
          step: '60s',
          titleFormat: '{{alertname}} ({{severity}})',
          textFormat: '{{datname}} {{instance}} {{pid}}',
          tagKeys: 'severity',
          useValueForTime: false,
        },
      ],
    },
    templating: {
      list: [
        {
          type: 'datasource',
          name: 'datasource',
          label: 'Data source',
          query: 'prometheus',
          description: 'The Prometheus that scrapes pg_lock_exporter.',
          current: if c.datasource == '' then {} else { selected: true, text: c.datasource, value: c.datasource },
          options: [],
          hide: 0,
          refresh: 1,
          regex: c.datasourceRegex,
          includeAll: false,
          multi: false,
          skipUrlSync: false,
        },
        variable('job',
                 'Job',
                 'Scrape jobs of pg_lock_exporter.',
                 'label_values(%s, job)' % ofSelector('pg_lock_exporter_build_info'),
                 '.+'),
        variable('instance',
                 'Instance',
                 'Exporter targets, one per PostgreSQL server.',
                 withSelector('label_values(pg_lock_exporter_build_info{job=~"$job"}, instance)'),
                 '.+'),
        variable('datname',
                 'Database',
                 'Databases (the exporter reports every connectable database).',
                 withSelector('label_values(pg_blocked_sessions{job=~"$job", instance=~"$instance"}, datname)'),
                 '.*'),
        variable('remediator_job',
                 'Remediator job',
                 'Scrape jobs of the remediator (pg_lock_exporter remediate --listen), for the Remediation row.',
                 'label_values(%s, job)' % ofSelector('pg_lock_remediator_terminations_total'),
                 '.+'),
      ],
    },
    panels: [
      panel(1, 'row', 'Health', pos(0, 0, 24, 1)) + {
        collapsed: false,
        panels: [],
      },
      panel(2, 'stat', 'PostgreSQL reachable', pos(0, 1, 3, 4)) + {
        description: "pg_up per exporter target: 1 when the exporter's last collection from PostgreSQL succeeded. A target missing here is not being scraped at all (see PostgresExporterDown).",
        targets: [
          range('A', 'pg_up{job=~"$job", instance=~"$instance"}', '{{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }] },
            mappings: [
              {
                type: 'value',
                options: {
                  '0': { text: 'down', color: 'red', index: 0 },
                  '1': { text: 'up', color: 'green', index: 1 },
                },
              },
            ],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'background',
          graphMode: 'none',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(3, 'stat', 'Connections used', pos(3, 1, 3, 4)) + {
        description: 'Client sessions of the selected databases as a share of max_connections (a server-wide limit). Ordinary roles are refused before 100%%: some slots are reserved for superusers. Alert PostgresConnectionsNearLimit: %d%% warning, %d%% critical.' % [c.connectionsUsed.warning * 100, c.connectionsUsed.critical * 100],
        targets: [
          range('A', 'sum by (job, instance) (pg_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})\n/ on (job, instance) pg_max_connections{job=~"$job", instance=~"$instance"}', '{{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'percentunit',
            thresholds: {
              mode: 'absolute',
              steps: [
                { color: 'green', value: null },
                { color: 'orange', value: c.connectionsUsed.warning },
                { color: 'red', value: c.connectionsUsed.critical },
              ],
            },
            mappings: [],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'area',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(4, 'stat', 'Blocked sessions', pos(6, 1, 3, 4)) + {
        description: 'Client sessions waiting on a heavyweight lock held or queued by another session, now, summed over the selected instances and databases.',
        targets: [
          range('A', 'sum(pg_blocked_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})', ''),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            thresholds: {
              mode: 'absolute',
              steps: [{ color: 'green', value: null }, { color: 'orange', value: 1 }],
            },
            mappings: [],
            color: { mode: 'thresholds' },
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'area',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(5, 'stat', 'Longest lock wait', pos(9, 1, 3, 4)) + {
        description: 'The longest current wait for a lock (pg_locks.waitstart on PostgreSQL 14+). Alert PostgresLockWaitTooLong: %ss warning, %ss critical.' % [c.lockWaitSeconds.warning, c.lockWaitSeconds.critical],
        targets: [
          range('A', 'max(pg_lock_wait_seconds_max{job=~"$job", instance=~"$instance", datname=~"$datname"})', ''),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            thresholds: {
              mode: 'absolute',
              steps: [
                { color: 'green', value: null },
                { color: 'orange', value: c.lockWaitSeconds.warning },
                { color: 'red', value: c.lockWaitSeconds.critical },
              ],
            },
            mappings: [],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'area',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(6, 'stat', 'Oldest idle in transaction', pos(12, 1, 3, 4)) + {
        description: 'How long the oldest session idle in transaction has sat idle (now - state_change); 0 when none is. Alert PostgresIdleInTransactionTooLong: %ss warning, %ss critical.' % [c.idleInTransactionSeconds.warning, c.idleInTransactionSeconds.critical],
        targets: [
          range('A', 'max(pg_idle_in_transaction_seconds{job=~"$job", instance=~"$instance", datname=~"$datname"})', ''),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            thresholds: {
              mode: 'absolute',
              steps: [
                { color: 'green', value: null },
                { color: 'orange', value: c.idleInTransactionSeconds.warning },
                { color: 'red', value: c.idleInTransactionSeconds.critical },
              ],
            },
            mappings: [],
            color: { mode: 'thresholds' },
            noValue: 'none',
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'area',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(7, 'stat', 'Oldest transaction', pos(15, 1, 3, 4)) + {
        description: "Age of the oldest open transaction of a client session (now - xact_start), whatever its state; 'none' when no transaction is open. Alert PostgresLongRunningTransaction: %ss warning, %ss critical." % [c.transactionAgeSeconds.warning, c.transactionAgeSeconds.critical],
        targets: [
          range('A', 'max(pg_transaction_age_seconds_max{job=~"$job", instance=~"$instance", datname=~"$datname"})', ''),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            thresholds: {
              mode: 'absolute',
              steps: [
                { color: 'green', value: null },
                { color: 'orange', value: c.transactionAgeSeconds.warning },
                { color: 'red', value: c.transactionAgeSeconds.critical },
              ],
            },
            mappings: [],
            color: { mode: 'thresholds' },
            noValue: 'none',
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'area',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(8, 'stat', 'Deadlocks', pos(18, 1, 3, 4)) + {
        description: 'Deadlocks PostgreSQL detected (and resolved by aborting a transaction) in the selected time range.',
        targets: [
          range('A', 'sum(increase(pg_database_deadlocks_total{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__range]))', ''),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            thresholds: {
              mode: 'absolute',
              steps: [{ color: 'green', value: null }, { color: 'orange', value: 1 }],
            },
            mappings: [],
            color: { mode: 'thresholds' },
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'area',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(9, 'stat', 'Remediations', pos(21, 1, 3, 4)) + {
        description: "Sessions terminated by the remediator (pg_lock_exporter remediate --listen) in the selected time range. 'none' when no remediator is scraped.",
        targets: [
          range('A', 'sum(increase(pg_lock_remediator_terminations_total{job=~"$remediator_job"}[$__range]))', ''),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'blue', value: 1 }] },
            mappings: [],
            color: { mode: 'thresholds' },
            noValue: 'none',
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'area',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(10, 'row', 'Blocking', pos(0, 5, 24, 1)) + {
        collapsed: false,
        panels: [],
      },
      panel(11, 'timeseries', 'Blocked sessions and root blockers', pos(0, 6, 8, 8)) + {
        description: 'Blocked sessions per database, the root blockers (sessions that block others and wait on nobody) by their state, and the depth of the deepest chain (edges from a root to its farthest waiter; right axis). The seed incident: one root idle in transaction, a migration at depth 1, readers at depth 2.',
        targets: [
          range('A', 'sum by (instance, datname) (pg_blocked_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})', 'blocked: {{datname}} {{instance}}'),
          range('B', 'sum by (instance, datname, state) (pg_blocking_root_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})', 'root blockers, {{state}}: {{datname}} {{instance}}'),
          range('C', 'max by (instance, datname) (pg_blocking_chain_depth_max{job=~"$job", instance=~"$instance", datname=~"$datname"})', 'chain depth: {{datname}} {{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [
            {
              matcher: { id: 'byFrameRefID', options: 'C' },
              properties: [
                { id: 'custom.axisPlacement', value: 'right' },
                { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
                { id: 'custom.axisLabel', value: 'chain depth' },
              ],
            },
          ],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(12, 'timeseries', 'Longest lock wait by database', pos(8, 6, 8, 8)) + {
        description: 'The longest current lock wait per database. The dashed lines are the PostgresLockWaitTooLong thresholds (60s warning, 300s critical).',
        targets: [
          range('A', 'max by (instance, datname) (pg_lock_wait_seconds_max{job=~"$job", instance=~"$instance", datname=~"$datname"})', '{{datname}} {{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'dashed' },
            },
            color: { mode: 'palette-classic' },
            thresholds: {
              mode: 'absolute',
              steps: [
                { color: 'green', value: null },
                { color: 'orange', value: c.lockWaitSeconds.warning },
                { color: 'red', value: c.lockWaitSeconds.critical },
              ],
            },
            mappings: [],
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(40, 'timeseries', 'Idle-in-transaction root blockers by database', pos(16, 6, 8, 8)) + {
        description: 'Per database, every root blocker that is idle in transaction, whatever its rank: the longest idle age (left axis; the dashed line is the PostgresBlockerIdleInTransaction threshold, 60s for 1 minute) and how many there are (right axis). This is the remediation trigger; the table below names the top 5 roots by waiting sessions.',
        targets: [
          range('A', 'max by (instance, datname) (pg_blocking_root_idle_in_transaction_seconds_max{job=~"$job", instance=~"$instance", datname=~"$datname"})', 'longest {{datname}} {{instance}}'),
          range('B', 'max by (instance, datname) (pg_blocking_root_idle_in_transaction_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})', 'roots {{datname}} {{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'dashed' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'red', value: c.blockerIdleInTransactionSeconds }] },
            mappings: [],
          },
          overrides: [
            {
              matcher: { id: 'byFrameRefID', options: 'B' },
              properties: [
                { id: 'unit', value: 'none' },
                { id: 'decimals', value: 0 },
                { id: 'custom.axisPlacement', value: 'right' },
                { id: 'custom.drawStyle', value: 'bars' },
                { id: 'custom.thresholdsStyle', value: { mode: 'off' } },
              ],
            },
          ],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(13, 'table', 'Current root blockers', pos(0, 14, 24, 7)) + {
        description: 'The root blockers the exporter reports now (top 5 per target by waiting sessions; the panel above counts every root idle in transaction, ranked or not): who they are, their state, how long they have been in it, and how many sessions wait behind them, directly or transitively. A root idle in transaction is what PostgresBlockerIdleInTransaction and `pg_lock_exporter remediate` act on. Empty when nothing is blocked. Behind PgBouncer (--pgbouncer.dsn) the client PostgreSQL sees is the pooler; "Client behind PgBouncer" is the application\'s address and port, empty for direct connections. With --web.external-url, each pid links the target\'s page of blocking trees (/tree): who waits behind it, its statement, its client.',
        targets: [
          table('A', 'max by (instance, datname, pid, usename, application_name, client_addr, pgbouncer_client, state) (pg_blocking_root_blocked_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})', ''),
          table('B', 'max by (instance, datname, pid, usename, application_name, client_addr, pgbouncer_client, state) (pg_blocking_root_state_seconds{job=~"$job", instance=~"$instance", datname=~"$datname"})', ''),
          table('C', 'max by (instance, tree_url) (pg_lock_exporter_web_info{job=~"$job", instance=~"$instance"})', null),
        ],
        transformations: [
          { id: 'merge', options: {} },
          {
            id: 'organize',
            options: {
              excludeByName: { Time: true, 'Value #C': true },
              indexByName: {
                instance: 0,
                datname: 1,
                pid: 2,
                usename: 3,
                application_name: 4,
                client_addr: 5,
                state: 7,
                'Value #B': 8,
                'Value #A': 9,
                pgbouncer_client: 6,
              },
              renameByName: {
                instance: 'Instance',
                datname: 'Database',
                pid: 'pid',
                usename: 'User',
                application_name: 'Application',
                client_addr: 'Client (as PostgreSQL sees it)',
                state: 'State',
                'Value #B': 'In state for',
                'Value #A': 'Waiting sessions',
                pgbouncer_client: 'Client behind PgBouncer',
                tree_url: 'tree_url',
              },
            },
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: { align: 'auto', cellOptions: { type: 'auto' } },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
          },
          overrides: [
            {
              matcher: { id: 'byName', options: 'In state for' },
              properties: [
                { id: 'unit', value: 's' },
                {
                  id: 'thresholds',
                  value: {
                    mode: 'absolute',
                    steps: [
                      { color: 'green', value: null },
                      { color: 'orange', value: c.lockWaitSeconds.warning },
                      { color: 'red', value: c.lockWaitSeconds.critical },
                    ],
                  },
                },
                { id: 'custom.cellOptions', value: { type: 'color-text' } },
              ],
            },
            {
              matcher: { id: 'byName', options: 'Waiting sessions' },
              properties: [{ id: 'decimals', value: 0 }],
            },
            {
              matcher: { id: 'byName', options: 'State' },
              properties: [
                {
                  id: 'mappings',
                  value: [
                    {
                      type: 'regex',
                      options: { pattern: 'idle in transaction.*', result: { color: 'red', index: 0 } },
                    },
                  ],
                },
                { id: 'custom.cellOptions', value: { type: 'color-text' } },
              ],
            },
            {
              matcher: { id: 'byName', options: 'tree_url' },
              properties: [{ id: 'custom.hidden', value: true }],
            },
            {
              matcher: { id: 'byName', options: 'pid' },
              properties: [
                {
                  id: 'links',
                  value: [
                    {
                      title: "Open this target's blocking trees (pg_lock_exporter /tree)",
                      url: '${__data.fields.tree_url}',
                      targetBlank: true,
                    },
                  ],
                },
              ],
            },
          ],
        },
        options: {
          showHeader: true,
          cellHeight: 'sm',
          footer: { show: false, reducer: ['sum'], fields: '' },
          sortBy: [{ displayName: 'Waiting sessions', desc: true }],
        },
      },
      panel(42, 'timeseries', 'Blocked sessions by relation', pos(0, 21, 24, 8)) + {
        description: 'Which table sessions queue on: blocked sessions by the relation they wait for (a row lock counts under its table), the top relations per database (--collector.top-relations) and the rest as "other". Names resolve in the exporter\'s own database; elsewhere the relation shows as oid:<n>. Advisory locks and other waits on no relation do not show here.',
        targets: [
          range('A', 'sum by (instance, datname, relation) (pg_lock_waiting_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})', '{{relation}} ({{datname}} {{instance}})'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(43, 'row', 'Blocking episodes', pos(0, 29, 24, 1)) + {
        collapsed: false,
        panels: [],
      },
      panel(44, 'timeseries', 'Episodes started by database', pos(0, 30, 6, 8)) + {
        description: 'Blocking episodes started (pg_blocking_episodes_total): one per root blocker that had at least one session waiting behind it, however short, as sampled every --sample.interval (default 1s), so episodes that began and ended between two scrapes count too. Two roots at once are two episodes. Each one is a record: GET /api/v1/episodes or `pg_lock_exporter episodes` give its root, statement, waiters and end.',
        targets: [
          range('A', 'sum by (instance, datname) (increase(pg_blocking_episodes_total{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval]))', '{{datname}} {{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'bars',
              lineWidth: 1,
              fillOpacity: 80,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'normal', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          legend: { showLegend: true, displayMode: 'table', placement: 'bottom', calcs: ['sum', 'max'] },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(45, 'timeseries', 'Episodes ended, by how', pos(6, 30, 6, 8)) + {
        description: "Blocking episodes ended (pg_blocking_episodes_ended_total), by end: released (the root committed, rolled back or let the lock go), waiters_gone (the root still holds its transaction; the waiters gave up: lock_timeout, cancel, disconnect), root_ended (the root's backend is gone: terminated, timed out, client gone; a remediator termination ends an episode this way) or unobserved (the exporter lost sight of the database or stopped before the end).",
        targets: [
          range('A', 'sum by (end) (increase(pg_blocking_episodes_ended_total{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval]))', '{{end}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'bars',
              lineWidth: 1,
              fillOpacity: 80,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'normal', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          legend: { showLegend: true, displayMode: 'table', placement: 'bottom', calcs: ['sum', 'max'] },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(46, 'timeseries', 'Episode duration quantiles', pos(12, 30, 6, 8)) + {
        description: "How long blocking episodes lasted, from the first waiter's waitstart to the sample that saw nobody waiting any more, over the episodes that ended in each interval (pg_blocking_episode_duration_seconds, buckets 1s to 1h: read a quantile as 'at most the next bucket bound'). Empty where no episode ended. The dashed lines are 1 min (PostgresBlockingEpisodesRepeatedlyLong counts episodes longer than that) and 5 min.",
        targets: [
          range('A', 'histogram_quantile(0.5, sum by (le) (rate(pg_blocking_episode_duration_seconds_bucket{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval])))', 'p50'),
          range('B', 'histogram_quantile(0.9, sum by (le) (rate(pg_blocking_episode_duration_seconds_bucket{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval])))', 'p90'),
          range('C', 'histogram_quantile(0.99, sum by (le) (rate(pg_blocking_episode_duration_seconds_bucket{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval])))', 'p99'),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'dashed' },
            },
            color: { mode: 'palette-classic' },
            thresholds: {
              mode: 'absolute',
              steps: [
                { color: 'green', value: null },
                { color: 'orange', value: 60 },
                { color: 'red', value: 300 },
              ],
            },
            mappings: [],
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(47, 'timeseries', 'Ongoing episodes', pos(18, 30, 6, 8)) + {
        description: "Blocking episodes going on at the last sample (pg_blocking_episodes_ongoing), per database: roots that have someone waiting behind them now. The 'Current root blockers' table above names them; GET /api/v1/episodes?ongoing=true gives their records.",
        targets: [
          range('A', 'sum by (instance, datname) (pg_blocking_episodes_ongoing{job=~"$job", instance=~"$instance", datname=~"$datname"})', '{{datname}} {{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(48, 'heatmap', 'Episode durations', pos(0, 38, 14, 8)) + {
        description: 'Ended blocking episodes per duration bucket (pg_blocking_episode_duration_seconds), summed over the selected databases: a column per interval, a row per bucket (1s, 2s, 5s, ... 1h, +Inf). Short episodes that come back every few minutes show as a band at the bottom; long ones, the ones worth a guard, at the top.',
        targets: [
          heatmap('A', 'sum by (le) (increase(pg_blocking_episode_duration_seconds_bucket{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval]))', '{{le}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              hideFrom: { legend: false, tooltip: false, viz: false },
              scaleDistribution: { type: 'linear' },
            },
          },
          overrides: [],
        },
        options: {
          calculate: false,
          yAxis: { axisPlacement: 'left', unit: 's', reverse: false },
          rowsFrame: { layout: 'le' },
          color: {
            mode: 'scheme',
            scheme: 'Oranges',
            scale: 'exponential',
            exponent: 0.5,
            fill: 'dark-orange',
            steps: 64,
            reverse: false,
          },
          cellGap: 1,
          filterValues: { le: 1e-09 },
          showValue: 'never',
          tooltip: { mode: 'single', yHistogram: false, showColorScale: false },
          legend: { show: true },
          exemplars: { color: 'rgba(255,0,255,0.7)' },
        },
      },
      panel(49, 'table', 'Episodes longer than 1 min', pos(14, 38, 10, 8)) + {
        description: "Per database, over the selected time range: blocking episodes that ended, and those of them that lasted more than 1 minute (the histogram's count minus its le=60 bucket). A database with several long ones has a code path that leaves transactions open: `pg_lock_exporter episodes --datname NAME` shows each one's root and statement, and PostgresBlockingEpisodesRepeatedlyLong fires at 3 in an hour.",
        targets: [
          table('A', 'sum by (instance, datname) (increase(pg_blocking_episode_duration_seconds_count{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__range]))', ''),
          table('B', 'sum by (instance, datname) (increase(pg_blocking_episode_duration_seconds_count{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__range]))\n- sum by (instance, datname) (increase(pg_blocking_episode_duration_seconds_bucket{job=~"$job", instance=~"$instance", datname=~"$datname", le=~"60|60\\\\.0"}[$__range]))', ''),
        ],
        transformations: [
          { id: 'merge', options: {} },
          {
            id: 'organize',
            options: {
              excludeByName: { Time: true },
              indexByName: { instance: 0, datname: 1, 'Value #A': 2, 'Value #B': 3 },
              renameByName: {
                instance: 'Instance',
                datname: 'Database',
                'Value #A': 'Ended',
                'Value #B': 'Longer than 1 min',
              },
            },
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            decimals: 0,
            custom: { align: 'auto', cellOptions: { type: 'auto' } },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
          },
          overrides: [
            {
              matcher: { id: 'byName', options: 'Longer than 1 min' },
              properties: [
                {
                  id: 'thresholds',
                  value: {
                    mode: 'absolute',
                    steps: [
                      { color: 'green', value: null },
                      { color: 'orange', value: 1 },
                      { color: 'red', value: 3 },
                    ],
                  },
                },
                { id: 'custom.cellOptions', value: { type: 'color-text' } },
              ],
            },
          ],
        },
        options: {
          showHeader: true,
          sortBy: [{ displayName: 'Longer than 1 min', desc: true }],
          cellHeight: 'sm',
          footer: { show: false, reducer: ['sum'], fields: '' },
        },
      },
      panel(14, 'row', 'Sessions', pos(0, 46, 24, 1)) + {
        collapsed: false,
        panels: [],
      },
      panel(15, 'timeseries', 'Sessions by state', pos(0, 47, 6, 8)) + {
        description: "Client sessions by state, stacked. 'idle in transaction' sessions hold their locks; 'unknown' counts sessions whose state the exporter's role may not see (grant it pg_monitor).",
        targets: [
          range('A', 'sum by (state) (pg_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})', '{{state}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 25,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'normal', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [
            {
              matcher: { id: 'byName', options: 'active' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'green' } }],
            },
            {
              matcher: { id: 'byName', options: 'idle' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'blue' } }],
            },
            {
              matcher: { id: 'byName', options: 'idle in transaction' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'orange' } }],
            },
            {
              matcher: { id: 'byName', options: 'idle in transaction (aborted)' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }],
            },
            {
              matcher: { id: 'byName', options: 'unknown' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'purple' } }],
            },
          ],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(16, 'timeseries', 'Sessions by application', pos(6, 47, 6, 8)) + {
        description: "Client sessions by application_name, stacked. Rare applications beyond the exporter's per-database cap are folded into 'other'.",
        targets: [
          range('A', 'sum by (application_name) (pg_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})', '{{application_name}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 25,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'normal', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(17, 'timeseries', 'Sessions by user', pos(12, 47, 6, 8)) + {
        description: 'Client sessions by role (usename), stacked.',
        targets: [
          range('A', 'sum by (usename) (pg_sessions{job=~"$job", instance=~"$instance", datname=~"$datname"})', '{{usename}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 25,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'normal', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(18, 'timeseries', 'Idle-in-transaction sessions by application', pos(18, 47, 6, 8)) + {
        description: 'Sessions idle in transaction (including aborted transactions) by application and user: the usual suspects for a blocking chain.',
        targets: [
          range('A', 'sum by (application_name, usename) (pg_sessions{job=~"$job", instance=~"$instance", datname=~"$datname", state=~"idle in transaction.*"})', '{{application_name}} ({{usename}})'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 25,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'normal', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(19, 'row', 'Transactions', pos(0, 55, 24, 1)) + {
        collapsed: false,
        panels: [],
      },
      panel(20, 'timeseries', 'Idle-in-transaction age by group', pos(0, 56, 12, 8)) + {
        description: 'Per database, user and application: how long the oldest session idle in transaction has sat idle. The dashed lines are the PostgresIdleInTransactionTooLong thresholds (300s warning, 900s critical). 0 for groups with no session idle in transaction.',
        targets: [
          range('A', 'max by (instance, datname, usename, application_name) (pg_idle_in_transaction_seconds{job=~"$job", instance=~"$instance", datname=~"$datname"})', '{{application_name}} ({{usename}}) {{datname}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'dashed' },
            },
            color: { mode: 'palette-classic' },
            thresholds: {
              mode: 'absolute',
              steps: [
                { color: 'green', value: null },
                { color: 'orange', value: c.idleInTransactionSeconds.warning },
                { color: 'red', value: c.idleInTransactionSeconds.critical },
              ],
            },
            mappings: [],
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(21, 'timeseries', 'Oldest transaction by state', pos(12, 56, 12, 8)) + {
        description: 'Age of the oldest open transaction per database and session state (now - xact_start). The dashed lines are the PostgresLongRunningTransaction thresholds (600s warning, 3600s critical).',
        targets: [
          range('A', 'max by (instance, datname, state) (pg_transaction_age_seconds_max{job=~"$job", instance=~"$instance", datname=~"$datname"})', '{{state}} {{datname}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'dashed' },
            },
            color: { mode: 'palette-classic' },
            thresholds: {
              mode: 'absolute',
              steps: [
                { color: 'green', value: null },
                { color: 'orange', value: c.transactionAgeSeconds.warning },
                { color: 'red', value: c.transactionAgeSeconds.critical },
              ],
            },
            mappings: [],
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(22, 'timeseries', 'Time spent idle in transaction', pos(0, 64, 12, 8)) + {
        description: "pg_stat_database.idle_in_transaction_time as a rate: seconds per second, i.e. the average number of sessions sitting idle in transaction (PostgreSQL 14+; the server adds a session's time when it reports its statistics).",
        targets: [
          range('A', 'sum by (instance, datname) (rate(pg_database_idle_in_transaction_seconds_total{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval]))', '{{datname}} {{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(23, 'timeseries', 'Deadlocks, killed and abandoned sessions', pos(12, 64, 12, 8)) + {
        description: 'Per minute, from pg_stat_database: deadlocks detected, sessions killed by an operator or a timeout (pg_terminate_backend, idle_in_transaction_session_timeout, the remediator), and sessions abandoned by their client (PostgreSQL 14+).',
        targets: [
          range('A', 'sum by (instance, datname) (60 * rate(pg_database_deadlocks_total{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval]))', 'deadlocks: {{datname}}'),
          range('B', 'sum by (instance, datname) (60 * rate(pg_database_sessions_killed_total{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval]))', 'killed: {{datname}}'),
          range('C', 'sum by (instance, datname) (60 * rate(pg_database_sessions_abandoned_total{job=~"$job", instance=~"$instance", datname=~"$datname"}[$__rate_interval]))', 'abandoned: {{datname}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'cpm',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(24, 'row', 'Locks', pos(0, 72, 24, 1)) + {
        collapsed: false,
        panels: [],
      },
      panel(25, 'timeseries', 'Granted locks by mode', pos(0, 73, 12, 8)) + {
        description: "Heavyweight locks held, by mode, stacked. AccessExclusiveLock (ALTER TABLE, DROP, TRUNCATE, VACUUM FULL) conflicts with every other mode, even a plain SELECT's AccessShareLock.",
        targets: [
          range('A', 'sum by (mode) (pg_locks{job=~"$job", instance=~"$instance", datname=~"$datname", granted="true"})', '{{mode}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 25,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'normal', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [
            {
              matcher: { id: 'byName', options: 'AccessExclusiveLock' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }],
            },
          ],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(26, 'timeseries', 'Waiting locks by mode', pos(12, 73, 12, 8)) + {
        description: 'Lock requests not yet granted, by the mode requested, stacked. A waiting AccessExclusiveLock is typically a migration queued behind a session idle in transaction, with every later query queued behind it. Empty while nothing waits.',
        targets: [
          range('A', 'sum by (mode) (pg_locks{job=~"$job", instance=~"$instance", datname=~"$datname", granted="false"})', '{{mode}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 25,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'normal', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
            decimals: 0,
          },
          overrides: [
            {
              matcher: { id: 'byName', options: 'AccessExclusiveLock' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }],
            },
          ],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(27, 'row', 'Guard settings', pos(0, 81, 24, 1)) + {
        collapsed: false,
        panels: [],
      },
      panel(28, 'stat', 'Server guard settings', pos(0, 82, 18, 5)) + {
        description: "The timeouts a session gets when no role or database setting applies to it (postgresql.conf, ALTER SYSTEM, the command line, ALTER ROLE ALL), free of the exporter's own role and database settings; the table below shows what each role's sessions really get. 0 means disabled. idle_in_transaction_session_timeout ends sessions left idle in transaction; lock_timeout bounds each lock wait (set it in migrations); statement_timeout bounds a statement; transaction_timeout (PostgreSQL 17+) bounds a transaction.",
        targets: [
          range('A', 'max by (instance, name) (pg_setting_seconds{job=~"$job", instance=~"$instance"})', '{{name}} ({{instance}})'),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [{ type: 'value', options: { '0': { text: 'disabled', color: 'orange', index: 0 } } }],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'none',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'value_and_name',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(29, 'stat', 'max_connections', pos(18, 82, 6, 5)) + {
        description: "The server's max_connections setting, per instance.",
        targets: [
          range('A', 'max by (instance) (pg_max_connections{job=~"$job", instance=~"$instance"})', '{{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            thresholds: { mode: 'absolute', steps: [{ color: 'text', value: null }] },
            mappings: [],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'none',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(41, 'table', 'Guard settings by database and role', pos(0, 87, 24, 8)) + {
        description: 'Each timeout as the sessions of a role in a database get it at login, for every (database, role) with client sessions: ALTER ROLE ... IN DATABASE, ALTER ROLE, ALTER DATABASE, ALTER ROLE ALL, else the server\'s value, most specific first. 0 (disabled) for idle_in_transaction_session_timeout is what PostgresIdleInTransactionTimeoutDisabled fires on. Roles beyond the exporter\'s per-database cap are folded into "other" with the weakest value among them.',
        targets: [
          table('A', 'max by (instance, datname, usename, name) (pg_role_setting_seconds{job=~"$job", instance=~"$instance", datname=~"$datname"})', ''),
        ],
        transformations: [
          {
            id: 'organize',
            options: {
              excludeByName: { Time: true },
              indexByName: { instance: 0, datname: 1, usename: 2, name: 3, Value: 4 },
              renameByName: {
                instance: 'Instance',
                datname: 'Database',
                usename: 'Role',
                name: 'Setting',
                Value: 'Sessions get',
              },
            },
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            custom: { align: 'auto', cellOptions: { type: 'color-text' } },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [{ type: 'value', options: { '0': { text: 'disabled', color: 'orange', index: 0 } } }],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          showHeader: true,
          cellHeight: 'sm',
          footer: { show: false, reducer: ['sum'], fields: '' },
          sortBy: [{ displayName: 'Sessions get', desc: false }],
        },
      },
      panel(30, 'row', 'Remediation', pos(0, 95, 24, 1)) + {
        collapsed: false,
        panels: [],
      },
      panel(31, 'timeseries', 'Remediation decisions', pos(0, 96, 9, 8)) + {
        description: "Decisions of the remediator per rate interval, by action (terminate, skip), reason and whether it ran as a dry run. Dry-run 'terminate' decisions are sessions it would have ended with --execute.",
        targets: [
          range('A', 'sum by (action, reason, dry_run) (increase(pg_lock_remediator_decisions_total{job=~"$remediator_job"}[$__rate_interval]))', '{{action}}: {{reason}} (dry run {{dry_run}})'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'bars',
              lineWidth: 1,
              fillOpacity: 60,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'normal', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(32, 'timeseries', 'Terminations and failures', pos(9, 96, 6, 8)) + {
        description: 'Sessions the remediator terminated, and terminations that failed (for example a superuser session that a pg_signal_backend role may not signal), per rate interval.',
        targets: [
          range('A', 'sum(increase(pg_lock_remediator_terminations_total{job=~"$remediator_job"}[$__rate_interval]))', 'terminated'),
          range('B', 'sum(increase(pg_lock_remediator_termination_failures_total{job=~"$remediator_job"}[$__rate_interval]))', 'failed'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            custom: {
              drawStyle: 'bars',
              lineWidth: 1,
              fillOpacity: 60,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
          },
          overrides: [
            {
              matcher: { id: 'byName', options: 'terminated' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'blue' } }],
            },
            {
              matcher: { id: 'byName', options: 'failed' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }],
            },
          ],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(33, 'timeseries', 'Webhook requests by result', pos(15, 96, 5, 8)) + {
        description: 'Alertmanager webhook requests the remediator received, by result. unauthorized, bad_request and too_large mean alert-triggered remediation is not happening (PostgresRemediatorWebhookRejected).',
        targets: [
          range('A', 'sum by (result) (rate(pg_lock_remediator_webhook_requests_total{job=~"$remediator_job"}[$__rate_interval]))', '{{result}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'reqps',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
          },
          overrides: [
            {
              matcher: { id: 'byName', options: 'accepted' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'green' } }],
            },
            {
              matcher: { id: 'byName', options: 'ignored' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'blue' } }],
            },
            {
              matcher: { id: 'byName', options: 'unauthorized' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }],
            },
            {
              matcher: { id: 'byName', options: 'bad_request' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'orange' } }],
            },
            {
              matcher: { id: 'byName', options: 'too_large' },
              properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'purple' } }],
            },
          ],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(34, 'stat', 'Last remediation action', pos(20, 96, 4, 8)) + {
        description: "When the remediator last terminated a session. 'never' when it has not acted since it started, or when no remediator is scraped.",
        targets: [
          range('A', 'max(pg_lock_remediator_last_action_timestamp_seconds{job=~"$remediator_job"} > 0) * 1000', ''),
        ],
        fieldConfig: {
          defaults: {
            unit: 'dateTimeFromNow',
            thresholds: { mode: 'absolute', steps: [{ color: 'text', value: null }] },
            mappings: [],
            color: { mode: 'thresholds' },
            noValue: 'never',
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'none',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(35, 'row', 'Exporter', pos(0, 104, 24, 1)) + {
        collapsed: false,
        panels: [],
      },
      panel(36, 'timeseries', 'Scrape duration', pos(0, 105, 8, 7)) + {
        description: "How long the exporter's collection took at each scrape. It should stay well below the scrape timeout.",
        targets: [
          range('A', 'max by (instance) (pg_lock_exporter_scrape_duration_seconds{job=~"$job", instance=~"$instance"})', '{{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            mappings: [],
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(37, 'timeseries', 'Scrape errors and failed collections', pos(8, 105, 8, 7)) + {
        description: "Failed scrapes per minute (PostgresExporterScrapeErrors when they persist), and failed collections per minute by reason: timeout (no answer within the scrape budget), connect, auth or query; the exporter's log has the message.",
        targets: [
          range('A', 'sum by (instance) (60 * rate(pg_lock_exporter_scrape_errors_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))', '{{instance}}'),
          range('B', 'sum by (instance, reason) (60 * rate(pg_lock_exporter_collection_failures_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))', '{{reason}} {{instance}}'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'cpm',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              axisPlacement: 'auto',
              axisSoftMin: 0,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            color: { mode: 'palette-classic' },
            thresholds: {
              mode: 'absolute',
              steps: [{ color: 'green', value: null }, { color: 'red', value: 0.001 }],
            },
            mappings: [],
          },
          overrides: [],
        },
        options: {
          legend: {
            showLegend: true,
            displayMode: 'table',
            placement: 'bottom',
            calcs: ['lastNotNull', 'max'],
          },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      panel(38, 'stat', 'PostgreSQL version', pos(16, 105, 4, 7)) + {
        description: 'The server version each exporter target reports (pg_server_info).',
        targets: [
          instant('A', 'max by (instance, version) (pg_server_info{job=~"$job", instance=~"$instance"})', '{{version}} ({{instance}})'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            thresholds: { mode: 'absolute', steps: [{ color: 'text', value: null }] },
            mappings: [],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'none',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'name',
          wideLayout: true,
          showPercentChange: false,
        },
      },
      panel(39, 'stat', 'Exporter version', pos(20, 105, 4, 7)) + {
        description: 'The pg_lock_exporter version of each target (pg_lock_exporter_build_info).',
        targets: [
          instant('A', 'max by (instance, version) (pg_lock_exporter_build_info{job=~"$job", instance=~"$instance"})', '{{version}} ({{instance}})'),
        ],
        fieldConfig: {
          defaults: {
            unit: 'none',
            thresholds: { mode: 'absolute', steps: [{ color: 'text', value: null }] },
            mappings: [],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'none',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'name',
          wideLayout: true,
          showPercentChange: false,
        },
      },

    ],
  }
