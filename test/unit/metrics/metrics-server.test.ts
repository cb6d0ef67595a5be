import assert from 'node:assert/strict';
import { request } from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { GatewayMetrics, type HealthReport } from 'postfix-milter-ts/metrics/gateway-metrics.js';
import { MetricsServer, type OffendersBody } from 'postfix-milter-ts/metrics/metrics-server.js';
import { TopOffenders } from 'postfix-milter-ts/metrics/top-offenders.js';

interface Reply {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

function get(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('MetricsServer', () => {
  const metrics = new GatewayMetrics({ version: '0.0.0-test', maxSessions: 10, defaultMetrics: false });
  const offenders = new TopOffenders({ capacity: 5, windowMs: 600_000 });
  let health: HealthReport = { healthy: true };
  const server = new MetricsServer({ metrics, offenders, health: () => health });
  let port = 0;

  before(async () => {
    port = (await server.listen(0)).port;
  });
  after(() => server.close());

  test('binds loopback by default', () => {
    assert.equal(server.address?.address, '127.0.0.1');
  });

  test('/metrics serves the exposition in the Prometheus text format', async () => {
    metrics.messageFinished({ verdict: 'reject', seconds: 0.1, sizeBytes: 100 });
    const r = await get(port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^pmt_messages_total\{verdict="reject"\} 1$/m);
  });

  test('/healthz is 200 ok when healthy and 503 with the reason otherwise', async () => {
    health = { healthy: true };
    const ok = await get(port, '/healthz');
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'ok\n');
    assert.match(ok.type, /^text\/plain/);
    health = { healthy: false, reason: 'no clamd endpoint answered its last check' };
    const bad = await get(port, '/healthz');
    assert.equal(bad.status, 503);
    assert.equal(bad.body, 'unhealthy: no clamd endpoint answered its last check\n');
  });

  test('/healthz reports a throwing health provider as unhealthy', async () => {
    const s = new MetricsServer({ metrics, health: () => Promise.reject(new Error('checker crashed')) });
    const p = (await s.listen(0)).port;
    try {
      const r = await get(p, '/healthz');
      assert.equal(r.status, 503);
      assert.match(r.body, /checker crashed/);
    } finally {
      await s.close();
    }
  });

  test('/healthz of GatewayMetrics.health() follows the milter and clamd state', async () => {
    const m = new GatewayMetrics({ version: '0', maxSessions: 1, defaultMetrics: false });
    const s = new MetricsServer({ metrics: m, health: () => m.health() });
    const p = (await s.listen(0)).port;
    try {
      assert.equal((await get(p, '/healthz')).status, 503);
      m.milterListening(true);
      m.clamdState(0, true);
      assert.equal((await get(p, '/healthz')).status, 200);
    } finally {
      await s.close();
    }
  });

  test('/offenders serves the top-K as JSON, with ?limit', async () => {
    offenders.record('192.0.2.1', 'relay-denied');
    offenders.record('192.0.2.1', 'relay-denied');
    offenders.record('198.51.100.2', 'rate-rcpt');
    const r = await get(port, '/offenders');
    assert.equal(r.status, 200);
    assert.match(r.type, /^application\/json/);
    const body = JSON.parse(r.body) as OffendersBody;
    assert.equal(body.windowSeconds, 600);
    assert.equal(body.capacity, 5);
    assert.deepEqual(body.offenders.map((o) => [o.address, o.refusals]), [['192.0.2.1', 2], ['198.51.100.2', 1]]);
    const one = JSON.parse((await get(port, '/offenders?limit=1')).body) as OffendersBody;
    assert.equal(one.offenders.length, 1);
    assert.equal((await get(port, '/offenders?limit=x')).status, 400);
  });

  test('/offenders is 404 when no list is configured', async () => {
    const s = new MetricsServer({ metrics, health: () => ({ healthy: true }) });
    const p = (await s.listen(0)).port;
    try {
      assert.equal((await get(p, '/offenders')).status, 404);
    } finally {
      await s.close();
    }
  });

  test('unknown paths are 404, other methods 405, HEAD has no body', async () => {
    const nf = await get(port, '/nope');
    assert.equal(nf.status, 404);
    assert.equal((await get(port, '/metrics', 'POST')).status, 405);
    health = { healthy: true };
    const head = await get(port, '/healthz', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('a failing exposition is a 500 with the reason, reported to onError', async () => {
    const errors: unknown[] = [];
    const s = new MetricsServer({
      metrics: { contentType: 'text/plain', metrics: () => Promise.reject(new Error('collect failed')) },
      health: () => ({ healthy: true }),
      onError: (e) => errors.push(e),
    });
    const p = (await s.listen(0)).port;
    try {
      const r = await get(p, '/metrics');
      assert.equal(r.status, 500);
      assert.match(r.body, /collect failed/);
      assert.equal(errors.length, 1);
    } finally {
      await s.close();
    }
  });

  test('listening on a taken port fails with an actionable message; close() is idempotent', async () => {
    const s = new MetricsServer({ metrics, health: () => ({ healthy: true }) });
    await assert.rejects(s.listen(port), /metrics listener: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    await s.close();
  });

  test('close() ends keep-alive connections and stops listening', async () => {
    const s = new MetricsServer({ metrics, health: () => ({ healthy: true }) });
    const p = (await s.listen(0)).port;
    assert.equal((await get(p, '/healthz')).status, 200); // Node 20's global agent keeps this connection alive
    const started = Date.now();
    await s.close(5000);
    assert.ok(Date.now() - started < 2000, 'idle keep-alive connections do not hold close() up');
    await assert.rejects(get(p, '/healthz'));
  });
});

test('a flood of idle connections is bounded: beyond 64 a connection is closed at once, idle ones after the timeout', async () => {
  const metrics = new GatewayMetrics({ version: '0.0.0-test', maxSessions: 10, defaultMetrics: false });
  const server = new MetricsServer({ metrics, health: () => ({ healthy: true }), idleTimeoutMs: 300 });
  const { port } = await server.listen(0);
  const open = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
  const closed = (s: net.Socket): Promise<number> => new Promise((resolve) => (s.destroyed ? resolve(0) : s.once('close', () => resolve(Date.now()))));
  try {
    const idle = await Promise.all(Array.from({ length: 64 }, open));
    const extra = await open();
    const t0 = Date.now();
    const extraClosedAt = await closed(extra);
    assert.ok(extraClosedAt - t0 < 200, 'the 65th connection is closed at once');
    const idleClosedAt = await Promise.all(idle.map(closed));
    assert.ok(idleClosedAt.every((t) => t - t0 < 2000), 'idle connections are closed after the timeout');
    // Then /metrics answers again.
    assert.equal((await get(port, '/metrics')).status, 200);
  } finally {
    await server.close();
  }
});
