// The files the mixin renders, for `jsonnet -S -m OUTDIR`: the rules as YAML and the dashboard
// as JSON. `config` (top-level code argument) holds _config overrides:
//
//   jsonnet -S -m out --tla-code-file config=my-overrides.libsonnet mixin/render.jsonnet
function(config={}, header=true)
  local mixin = (import 'mixin.libsonnet') + { _config+:: config };
  local note = if header then
    "# pg_lock_exporter's alerting rules, rendered from its monitoring mixin (mixin/, `make mixin`).\n"
    + '# Load them with rule_files: (Prometheus 2.42 or newer). To change selectors, thresholds or the\n'
    + "# runbook links, override the mixin's _config (scripts/render-mixin) instead of editing this\n"
    + '# file. What each alert means and what to do: docs/runbooks.md.\n'
  else '';
  {
    'pg_lock_exporter.rules.yml': note + std.manifestYamlDoc(mixin.prometheusAlerts, indent_array_in_object=true, quote_keys=false) + '\n',
  } + {
    [name]: std.manifestJsonEx(mixin.grafanaDashboards[name], '  ') + '\n'
    for name in std.objectFields(mixin.grafanaDashboards)
  }
