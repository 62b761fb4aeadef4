// The Grafana dashboards (dashboards/*.json are their rendering with the defaults).
{
  grafanaDashboards+:: {
    'pg-lock-overview.json': (import 'dashboards/pg-lock-overview.libsonnet')($._config),
  },
}
