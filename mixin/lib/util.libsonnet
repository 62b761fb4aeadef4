// Small helpers of the mixin: selectors with the configured matchers, folded text, durations.
{
  // A series selector: NAME, or NAME{MATCHERS} with the configured selector and any
  // matchers of the rule's own, in that order. No `{}` when there are none.
  series(config, name, matchers=''):: (
    local all = std.filter(function(m) m != '', [config.selector, matchers]);
    if all == [] then name else name + '{' + std.join(', ', all) + '}'
  ),

  // The `and on (instance, job) pg_lock_exporter_build_info` join that keeps a rule to this
  // exporter's bodies (pg_up is also postgres_exporter's).
  ofThisExporter(config):: 'on (instance, job) ' + self.series(config, 'pg_lock_exporter_build_info'),

  // A text block folded the way YAML's `>-` folds: lines joined by one space, no final newline.
  fold(text):: std.join(' ', std.filter(function(l) l != '', std.split(text, '\n'))),

  // '5m' -> '5 minutes', '1h' -> '1 hour'; anything else (1h30m) as written.
  humanDuration(d)::
    local units = { s: 'second', m: 'minute', h: 'hour', d: 'day' };
    local unit = d[std.length(d) - 1];
    local number = std.substr(d, 0, std.length(d) - 1);
    local digits = std.length(number) > 0 && [ch for ch in std.stringChars(number) if !std.member('0123456789', ch)] == [];
    if std.objectHas(units, unit) && digits then
      number + ' ' + units[unit] + (if number == '1' then '' else 's')
    else d,

  // A number as PromQL wants it: 300, 0.8 (std.toString would write 0.80000000000000004).
  num(x):: '%g' % x,
}
