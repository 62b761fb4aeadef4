// The shipped rules with time running `scale` times faster, for the live tests (conftest.py's
// rule_overlay): the mixin rendered with every duration of its _config (the fields named
// ...For) and every age threshold (...Seconds: gauges that grow one second per second while the
// incident lasts) divided by `scale`. Counts, ratios and range windows keep their values: the
// windows only look back over history, and the tests' Prometheus has less of it than any of them.
// Each alert gets the label rule_set="time-scaled" and each group the suffix "-time-scaled", so
// the result loads beside the shipped rules.
//
//   jsonnet -S -J mixin --tla-code scale=120 tests/rules/time-scaled.jsonnet
function(scale)
  local mixin = import 'mixin.libsonnet';
  local units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  local seconds(d) =
    local unit = if std.endsWith(d, 'ms') then 'ms' else d[std.length(d) - 1];
    std.parseInt(std.substr(d, 0, std.length(d) - std.length(unit))) * units[unit];
  local duration(s) =
    local ms = std.floor(s * 1000 + 0.5);
    if ms % 1000 == 0 then '%ds' % (ms / 1000) else '%dms' % ms;
  local each(value, f) = if std.isObject(value) then std.mapWithKey(function(_, v) f(v), value) else f(value);
  local base = mixin._config;
  local scaled = mixin {
    _config+:: {
      [name]: each(base[name], function(d) duration(seconds(d) / scale))
      for name in std.objectFields(base)
      if std.endsWith(name, 'For')
    } + {
      [name]: each(base[name], function(x) x / scale)
      for name in std.objectFields(base)
      if std.endsWith(name, 'Seconds')
    },
  };
  std.manifestYamlDoc({
    groups: [
      group {
        name: group.name + '-time-scaled',
        rules: [rule { labels+: { rule_set: 'time-scaled' } } for rule in group.rules],
      }
      for group in scaled.prometheusAlerts.groups
    ],
  }, indent_array_in_object=true, quote_keys=false)
