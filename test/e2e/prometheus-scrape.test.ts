// A real Prometheus scrapes a MetricsServer fed with synthetic events, with the shipped alert rules loaded.
// Then every PromQL expression of the Grafana dashboard and of the alert rules is evaluated through the HTTP
// API and must return data; the events are chosen so every alert condition holds (alerts go pending), and the
// verdict counts Prometheus stored must equal what was sent.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { GatewayMetrics, type MessageVerdict } from 'postfix-milter-ts/metrics/gateway-metrics.js';
import { MetricsServer } from 'postfix-milter-ts/metrics/metrics-server.js';
import { TopOffenders } from 'postfix-milter-ts/metrics/top-offenders.js';
import { freeLoopbackPort } from '../harness/free-port.js';
import { dashboardExpressions, PrometheusInstance, ruleExpressions } from '../harness/prometheus-instance.js';

const EXAMPLES = new URL('../../../postfix-examples/', import.meta.url);
const ALERTS_FILE = fileURLToPath(new URL('prometheus/alerts.yml', EXAMPLES));
const DASHBOARD = JSON.parse(readFileSync(fileURLToPath(new URL('grafana/dashboards/postfix-milter-ts.json', EXAMPLES)), 'utf8')) as unknown;

const VERDICT_CYCLE: readonly MessageVerdict[] = ['accept', 'reject', 'tempfail', 'accept', 'quarantine', 'discard'];

describe('a real Prometheus scraping the metrics listener', () => {
  let clockOffsetMs = 0;
  const metrics = new GatewayMetrics({ version: 'e2e', maxSessions: 20, bannedExtensions: ['exe', 'scr', 'js'], now: () => Date.now() + clockOffsetMs });
  const offenders = new TopOffenders({ capacity: 10, windowMs: 600_000 });
  const server = new MetricsServer({ metrics, offenders, health: () => metrics.health() });
  let prometheus: PrometheusInstance | undefined;
  let live = '';
  let feeder: NodeJS.Timeout | undefined;
  const sent = new Map<MessageVerdict, number>();
  let ticks = 0;

  function feed(): void {
    const verdict = VERDICT_CYCLE[ticks % VERDICT_CYCLE.length] as MessageVerdict;
    ticks += 1;
    sent.set(verdict, (sent.get(verdict) ?? 0) + 1);
    metrics.connectionAccepted();
    metrics.messageFinished({ verdict, sizeBytes: 1000 + ticks * 700, seconds: 0.01 * (ticks % 20) });
    metrics.recipient((['accepted', 'rejected', 'tempfailed'] as const)[ticks % 3] ?? 'accepted');
    metrics.relayRejected('relay-denied');
    metrics.rateLimited('rate-recipients');
    metrics.virusFound(ticks % 2 === 0 ? 'Win.Worm.Mydoom-1' : 'Doc.Trojan.Agent-1.UNOFFICIAL');
    metrics.attachmentBlocked('banned-extension', ticks % 2 === 0 ? 'exe' : 'scr');
    metrics.clamdScan(ticks % 4 === 0 ? 'infected' : 'clean', 0.01 * (ticks % 30), 2000 + ticks);
    metrics.protocolError('timeout');
    metrics.overload('scan-queue-full');
    metrics.redisFallback();
    offenders.record(`192.0.2.${ticks % 5}`, 'relay-denied');
  }

  before(async () => {
    const port = (await server.listen(0)).port;
    live = `127.0.0.1:${port}`;
    // Nothing listens on the second target: its `up` is 0, which the milter-down alert must see.
    const dead = `127.0.0.1:${await freeLoopbackPort()}`;

    metrics.milterListening(true);
    for (let i = 0; i < 3; i++) metrics.sessionOpened();
    // Conditions of the clamd alerts: every endpoint down, signatures two days old, endpoint 1 not checked
    // for ten minutes. The last reload failed.
    metrics.clamdState(0, false, { engine: '1.0.7', signatureVersion: 27400, signatureTime: new Date(Date.now() - 2 * 86_400_000) });
    clockOffsetMs = -600_000;
    metrics.clamdState(1, false, { engine: '1.0.7', signatureVersion: 27399, signatureTime: new Date(Date.now() - 3 * 86_400_000) });
    clockOffsetMs = 0;
    metrics.configReload(true);
    metrics.configReload(false);
    // The Redis rate-limit store is unreachable.
    const store = {};
    metrics.rateLimitStoreInUse(store, 'redis');
    metrics.rateLimitStoreAvailable(store, false);

    prometheus = new PrometheusInstance({ targets: [live, dead], ruleFiles: [ALERTS_FILE] });
    await prometheus.start();
    feed();
    feeder = setInterval(feed, 100);
    await prometheus.waitForTargetUp(live);
    // Enough scrapes for rate() and histogram_quantile() to have two points inside every window.
    await prometheus.waitForData(`count_over_time(pmt_messages_total{instance="${live}",verdict="accept"}[1m]) >= 5`, 30_000);
  });

  after(async () => {
    if (feeder !== undefined) clearInterval(feeder);
    await prometheus?.stop();
    await server.close();
  });

  test('every dashboard query returns a finite value', async () => {
    const p = prometheus as PrometheusInstance;
    const expressions = dashboardExpressions(DASHBOARD, { range: '10m', rateInterval: '1m' });
    assert.ok(expressions.length > 40);
    const empty: string[] = [];
    for (const e of expressions) {
      const result = await p.query(e.expr);
      const finite = result.some((s) => Number.isFinite(Number(s.value)));
      if (!finite) empty.push(`${e.source} ${e.name}: ${e.expr} → ${JSON.stringify(result)}`);
    }
    assert.deepEqual(empty, [], `queries without data:\n${empty.join('\n')}`);
  });

  test('the instance variable lists the scraped milter', async () => {
    const variable = dashboardExpressions(DASHBOARD).find((e) => e.source === 'variable' && e.name === 'instance');
    assert.ok(variable);
    const result = await (prometheus as PrometheusInstance).query(variable.expr);
    assert.deepEqual(result.map((s) => s.metric['instance']), [live]);
  });

  test('every alert expression returns data under the conditions it watches for, and the rules go pending', async () => {
    const p = prometheus as PrometheusInstance;
    const expressions = ruleExpressions(readFileSync(ALERTS_FILE, 'utf8'));
    assert.equal(expressions.length, 9);
    for (const e of expressions) {
      const result = await p.query(e.expr);
      assert.ok(result.length > 0, `${e.name}: ${e.expr} returned nothing`);
    }
    // The rule manager evaluates every second; give it a couple of rounds.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const rules = await p.rules();
      assert.equal(rules.length, 9);
      for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError ?? ''}`);
      const inactive = rules.filter((r) => r.state !== 'pending' && r.state !== 'firing').map((r) => r.name);
      if (inactive.length === 0) break;
      if (Date.now() > deadline) assert.fail(`alerts not pending: ${inactive.join(', ')}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  test('Prometheus stored the verdict counts that were sent', async () => {
    const p = prometheus as PrometheusInstance;
    clearInterval(feeder);
    feeder = undefined;
    const want = Object.fromEntries([...sent].map(([k, v]) => [k, v]));
    const total = [...sent.values()].reduce((a, b) => a + b, 0);
    // Wait for a scrape after the last event.
    await p.waitForData(`sum(pmt_messages_total{instance="${live}"}) == ${total}`, 10_000);
    const result = await p.query(`sum by (verdict) (pmt_messages_total{instance="${live}"})`);
    const got = Object.fromEntries(result.filter((s) => s.value !== '0').map((s) => [s.metric['verdict'], Number(s.value)]));
    assert.deepEqual(got, want);
    assert.ok(total >= 20, `only ${total} messages sent`);
  });

  test('the top-offenders list and health answer on the same listener', async () => {
    const health = await fetch(`http://${live}/healthz`);
    assert.equal(health.status, 503);
    assert.match(await health.text(), /no clamd endpoint answered/);
    const body = (await (await fetch(`http://${live}/offenders?limit=3`)).json()) as { offenders: Array<{ address: string }> };
    assert.equal(body.offenders.length, 3);
    assert.match(body.offenders[0]?.address ?? '', /^192\.0\.2\.\d$/);
  });
});
