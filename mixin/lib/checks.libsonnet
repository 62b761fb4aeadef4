// _config values that would render broken rules or links fail the rendering with one line.
{
  local c = self._config,
  local problems = std.prune([
    if std.length(std.findSubstr('#', c.runbookURLBase)) > 0 then
      "runbookURLBase must not have a #fragment: each rule appends its alert's anchor",
    if c.runbookURLBase != '__RUNBOOK_BASE_URL__'
       && !(std.startsWith(c.runbookURLBase, 'https://') || std.startsWith(c.runbookURLBase, 'http://')) then
      'runbookURLBase must start with http:// or https://',
    if std.length([x for x in std.stringChars(c.runbookURLBase) if std.member(' \t\n"\'{}', x)]) > 0 then
      'runbookURLBase must not contain whitespace, quotes or braces',
    if std.length([x for x in std.stringChars(c.selector) if std.member('{}\n', x)]) > 0 then
      'selector is the matchers only, without braces, e.g. cluster="prod"',
    if std.endsWith(c.selector, ',') || std.startsWith(c.selector, ',') then
      'selector must not start or end with a comma',
  ]),
  assert problems == [] : 'mixin _config: ' + std.join('; ', problems),
}
