import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MilterProtocolError } from '@postfix-milter-ts/protocol';
import { GatewayMetrics } from 'postfix-milter-ts/metrics/gateway-metrics.js';
import { metricsObserver } from 'postfix-milter-ts/metrics/milter-observer.js';

async function value(m: GatewayMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const got = await m.registry.getSingleMetric(name)!.get();
  const wanted = Object.entries(labels);
  return got.values.find((v) => wanted.every(([k, x]) => v.labels[k] === x))?.value;
}

test('sessions, connections, overload sessions, protocol and hook errors reach the metrics; the next observer still hears', async () => {
  const m = new GatewayMetrics({ version: '0', maxSessions: 1, defaultMetrics: false });
  const heard: string[] = [];
  const o = metricsObserver(m, {
    opened: (id) => heard.push(`opened ${id}`),
    closed: (id) => heard.push(`closed ${id}`),
    overloaded: (r) => heard.push(`overloaded ${r}`),
    protocolError: (id, e) => heard.push(`error ${id} ${e.kind}`),
    hookError: (id, stage) => heard.push(`hook ${id} ${stage}`),
  });
  o.opened?.('s1', 1, '127.0.0.1:1', false);
  assert.equal(await value(m, 'pmt_sessions_active'), 1);
  // Server full: overloaded, then a session that only tempfails; it is not in flight work.
  o.overloaded?.('max-sessions', 'tempfailed');
  o.opened?.('s2', 1, '127.0.0.1:2', true);
  assert.equal(await value(m, 'pmt_sessions_active'), 1);
  assert.equal(await value(m, 'pmt_overload_tempfails_total', { reason: 'max-sessions' }), 1);
  o.closed?.('s2');
  assert.equal(await value(m, 'pmt_sessions_active'), 1);
  o.protocolError?.('s1', new MilterProtocolError('frame-too-large', 'too big'));
  o.hookError?.('s1', 'eom', new Error('boom'));
  o.closed?.('s1');
  assert.equal(await value(m, 'pmt_sessions_active'), 0);
  assert.equal(await value(m, 'pmt_connections_total'), 2);
  assert.equal(await value(m, 'pmt_protocol_errors_total', { kind: 'frame-too-large' }), 1);
  assert.equal(await value(m, 'pmt_protocol_errors_total', { kind: 'handler-error' }), 1);
  assert.deepEqual(heard, ['opened s1', 'overloaded max-sessions', 'opened s2', 'closed s2', 'error s1 frame-too-large', 'hook s1 eom', 'closed s1']);
});

test('a connection dropped when even the overflow allowance is used up does not unbalance the session count', async () => {
  const m = new GatewayMetrics({ version: '0', maxSessions: 1, defaultMetrics: false });
  const o = metricsObserver(m);
  o.opened?.('s1', 1, 'a', false);
  o.overloaded?.('max-sessions', 'dropped'); // no session follows
  o.closed?.('s1');
  o.opened?.('s3', 1, 'b', false);
  assert.equal(await value(m, 'pmt_sessions_active'), 1);
  o.closed?.('s3');
  assert.equal(await value(m, 'pmt_sessions_active'), 0);
  assert.equal(await value(m, 'pmt_overload_tempfails_total', { reason: 'max-sessions' }), 1);
});

test("a session opening after another's QUIT and before its socket closes: the gauge counts sessions, not sockets", async () => {
  const m = new GatewayMetrics({ version: '0', maxSessions: 10, defaultMetrics: false });
  const o = metricsObserver(m);
  o.opened?.('s1', 1, 'a', false);
  o.closed?.('s1');
  // The server still counts s1 (its socket has not closed yet) when s2 opens.
  o.opened?.('s2', 2, 'b', false);
  assert.equal(await value(m, 'pmt_sessions_active'), 1);
  o.closed?.('s2');
  assert.equal(await value(m, 'pmt_sessions_active'), 0);
});
