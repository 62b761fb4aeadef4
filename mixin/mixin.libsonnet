// pg_lock_exporter's monitoring mixin (https://monitoring.mixins.dev layout): _config,
// prometheusAlerts and grafanaDashboards. Import it, override _config, render:
//
//   local mixin = (import 'mixin.libsonnet') + { _config+:: { selector: 'cluster="prod"' } };
//   std.manifestYamlDoc(mixin.prometheusAlerts)
//
// scripts/render-mixin does that for a file of overrides; `make mixin` renders the defaults
// into alerts/ and dashboards/, which `make test` keeps equal to this source.
(import 'config.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet') +
(import 'lib/checks.libsonnet')
