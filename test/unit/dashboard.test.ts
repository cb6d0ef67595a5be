// The shipped Grafana dashboard, provisioning files, scrape config and alert rules: well-formed, and every
// metric they name exists in what GatewayMetrics exposes (a rename must not leave an empty panel behind).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { GatewayMetrics } from 'postfix-milter-ts/metrics/gateway-metrics.js';
import { dashboardExpressions, metricNamesIn, ruleExpressions } from '../harness/prometheus-instance.js';

const EXAMPLES = new URL('../../../postfix-examples/', import.meta.url);
const DASHBOARD_FILE = fileURLToPath(new URL('grafana/dashboards/postfix-milter-ts.json', EXAMPLES));
const ALERTS_FILE = fileURLToPath(new URL('prometheus/alerts.yml', EXAMPLES));
const SCRAPE_FILE = fileURLToPath(new URL('prometheus/prometheus.yml', EXAMPLES));
const DATASOURCE_FILE = fileURLToPath(new URL('grafana/provisioning/datasources/prometheus.yaml', EXAMPLES));
const PROVIDER_FILE = fileURLToPath(new URL('grafana/provisioning/dashboards/postfix-milter-ts.yaml', EXAMPLES));
const PROMTOOL = '/usr/bin/promtool';

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
  panels?: Panel[];
}

const dashboardText = readFileSync(DASHBOARD_FILE, 'utf8');
const dashboard = JSON.parse(dashboardText) as {
  uid: string;
  title: string;
  schemaVersion: number;
  id: unknown;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; includeAll?: boolean; allValue?: string }> };
};

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Series names a registry exposes, with the suffixes Prometheus derives for histograms and summaries. */
async function exposedNames(): Promise<Set<string>> {
  const text = await new GatewayMetrics({ version: 'test', maxSessions: 1, bannedExtensions: ['exe'] }).metrics();
  const names = new Set<string>(['up']); // added by Prometheus to every scrape
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name as string);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${name}${s}`);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(`${name}${s}`);
  }
  return names;
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: stdout + stderr }));
  });
}

describe('Grafana dashboard', () => {
  const panels = allPanels(dashboard.panels);

  test('is classic-schema JSON that provisioning can load as is', () => {
    assert.equal(dashboard.uid, 'postfix-milter-ts');
    assert.ok(dashboard.title.length > 0);
    assert.ok(dashboard.schemaVersion >= 37 && dashboard.schemaVersion <= 42, `schemaVersion ${dashboard.schemaVersion}`);
    assert.equal(dashboard.id, null);
    assert.ok(!('__inputs' in dashboard) && !('__requires' in dashboard), 'import-only placeholders break file provisioning');
    assert.doesNotMatch(dashboardText, /\$\{DS_/);
  });

  test('has a datasource variable and a multi-value instance variable', () => {
    const ds = dashboard.templating.list.find((v) => v.name === 'datasource');
    assert.equal(ds?.type, 'datasource');
    assert.equal(ds?.query, 'prometheus');
    const instance = dashboard.templating.list.find((v) => v.name === 'instance');
    assert.equal(instance?.type, 'query');
    assert.equal(instance?.includeAll, true);
    assert.equal(instance?.allValue, '.*');
  });

  test('panel ids are unique; panels fit the 24-column grid without overlapping', () => {
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, `duplicate ids in ${ids.join(',')}`);
    for (const p of panels) {
      assert.ok(Number.isInteger(p.id) && p.id > 0, `${p.title}: id`);
      assert.ok(p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: gridPos ${JSON.stringify(p.gridPos)}`);
    }
    const top = dashboard.panels;
    for (let i = 0; i < top.length; i++) {
      for (let j = i + 1; j < top.length; j++) {
        const a = (top[i] as Panel).gridPos;
        const b = (top[j] as Panel).gridPos;
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        assert.ok(!overlap, `${(top[i] as Panel).title} overlaps ${(top[j] as Panel).title}`);
      }
    }
  });

  test('every query panel uses the datasource variable and filters by $instance', () => {
    for (const p of panels.filter((x) => x.type !== 'row')) {
      assert.equal(p.datasource?.uid, '${datasource}', p.title);
      assert.ok((p.targets ?? []).length > 0, `${p.title} has no query`);
      for (const t of p.targets ?? []) {
        assert.match(t.expr, /instance=~"\$instance"/, `${p.title} [${t.refId}] ignores the instance variable`);
      }
    }
  });

  test('has the panels the issue asks for', () => {
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    const wanted: ReadonlyArray<readonly [string, RegExp]> = [
      ['throughput', /rate\(pmt_messages_total\{instance/],
      ['verdict mix', /sum by \(verdict\) \(rate\(pmt_messages_total/],
      ['reject ratio', /verdict="reject".*\/ sum\(rate\(pmt_messages_total/],
      ['tempfail ratio', /verdict="tempfail".*\/ sum\(rate\(pmt_messages_total/],
      ['scan p50', /histogram_quantile\(0\.5, sum by \(le\) \(rate\(pmt_clamd_scan_duration_seconds_bucket/],
      ['scan p95', /histogram_quantile\(0\.95, sum by \(le\) \(rate\(pmt_clamd_scan_duration_seconds_bucket/],
      ['scan p99', /histogram_quantile\(0\.99, sum by \(le\) \(rate\(pmt_clamd_scan_duration_seconds_bucket/],
      ['top viruses over the range', /topk\(10, sum by \(platform\) \(increase\(pmt_virus_detections_total\{[^}]*\}\[\$__range\]\)\)/],
      ['top extensions over the range', /topk\(10, sum by \(extension\) \(increase\(pmt_attachments_blocked_by_extension_total\{[^}]*\}\[\$__range\]\)\)/],
      ['relay rejections by rule', /sum by \(rule\) \(rate\(pmt_relay_rejections_total/],
      ['clamd up', /pmt_clamd_up/],
      ['signature age', /time\(\) - pmt_clamd_signature_timestamp_seconds/],
      ['sessions in flight', /pmt_sessions_active/],
      ['protocol errors', /pmt_protocol_errors_total/],
      ['overload', /pmt_overload_tempfails_total/],
    ];
    for (const [what, pattern] of wanted) assert.match(exprs, pattern, what);
  });

  test('every metric the dashboard and the alert rules name exists in the registry', async () => {
    const exposed = await exposedNames();
    const expressions = [...dashboardExpressions(dashboard), ...ruleExpressions(readFileSync(ALERTS_FILE, 'utf8'))];
    assert.ok(expressions.length > 40, `only ${expressions.length} expressions found`);
    const used = new Set<string>();
    for (const e of expressions) {
      const names = metricNamesIn(e.expr);
      assert.ok(names.length > 0, `${e.source} ${e.name}: no metric found in ${e.expr}`);
      for (const n of names) {
        used.add(n);
        assert.ok(exposed.has(n), `${e.source} ${e.name} uses ${n}, which GatewayMetrics does not expose`);
      }
    }
    assert.ok(used.has('pmt_clamd_scan_duration_seconds_bucket') && used.has('up'));
  });

  test('the metric-name scan ignores functions, keywords, labels, strings and durations', () => {
    assert.deepEqual(
      metricNamesIn('histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="y:z", job=~"b"}[5m]))) / on (instance) group_left b_total > 1e3 and c'),
      ['a_bucket', 'b_total', 'c'],
    );
    assert.deepEqual(metricNamesIn('time() - m offset 5m'), ['m']);
  });
});

describe('Prometheus examples', () => {
  const alerts = parseYaml(readFileSync(ALERTS_FILE, 'utf8')) as {
    groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }> }>;
  };
  const rules = alerts.groups.flatMap((g) => g.rules);

  test('alert rules cover milter down, clamd down, old signatures, Redis down and high tempfail ratios', () => {
    const names = rules.map((r) => r.alert);
    const wanted = ['PostfixMilterDown', 'ClamdEndpointDown', 'ClamdAllDown', 'ClamdSignaturesOutdated', 'MilterTempfailRatioHigh', 'RateLimitStoreDown', 'RecipientTempfailRatioHigh'];
    for (const n of wanted) assert.ok(names.includes(n), n);
    for (const r of rules) {
      assert.match(r.for, /^\d+[smh]$/, `${r.alert}: for`);
      assert.ok(['warning', 'critical'].includes(r.labels['severity'] ?? ''), `${r.alert}: severity`);
      assert.ok((r.annotations['summary'] ?? '').length > 0, `${r.alert}: summary`);
    }
    assert.match(rules.find((r) => r.alert === 'ClamdSignaturesOutdated')?.expr ?? '', /> 86400/);
  });

  test('the scrape job name is the one the alert rules match on', () => {
    const scrape = parseYaml(readFileSync(SCRAPE_FILE, 'utf8')) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>; rule_files: string[] };
    const job = scrape.scrape_configs[0];
    assert.equal(job?.job_name, 'postfix-milter-ts');
    assert.deepEqual(job?.static_configs[0]?.targets, ['127.0.0.1:10032']);
    assert.match(rules.find((r) => r.alert === 'PostfixMilterDown')?.expr ?? '', /job="postfix-milter-ts"/);
    assert.deepEqual(scrape.rule_files, ['alerts.yml']);
  });

  test('promtool accepts the alert rules and the scrape config', { skip: !existsSync(PROMTOOL) && 'promtool not installed' }, async () => {
    const r = await run(PROMTOOL, ['check', 'rules', ALERTS_FILE], '/');
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS: 9 rules found/);
    const c = await run(PROMTOOL, ['check', 'config', 'prometheus.yml'], fileURLToPath(new URL('prometheus/', EXAMPLES)));
    assert.equal(c.code, 0, c.output);
  });
});

describe('Grafana provisioning files', () => {
  test('the datasource file provisions one Prometheus', () => {
    const d = parseYaml(readFileSync(DATASOURCE_FILE, 'utf8')) as { apiVersion: number; datasources: Array<{ type: string; access: string; url: string }> };
    assert.equal(d.apiVersion, 1);
    assert.equal(d.datasources.length, 1);
    assert.equal(d.datasources[0]?.type, 'prometheus');
    assert.equal(d.datasources[0]?.access, 'proxy');
  });

  test('the dashboard provider reads files from a path', () => {
    const p = parseYaml(readFileSync(PROVIDER_FILE, 'utf8')) as { apiVersion: number; providers: Array<{ type: string; options: { path: string } }> };
    assert.equal(p.apiVersion, 1);
    assert.equal(p.providers[0]?.type, 'file');
    assert.ok((p.providers[0]?.options.path ?? '').startsWith('/'));
  });
});
