import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_METRICS_PORT, metricsSchema } from 'postfix-milter-ts/metrics/metrics-config.js';

test('defaults: enabled, loopback, the documented port, a 100-address list over one hour', () => {
  assert.deepEqual(metricsSchema.parse({}), {
    enabled: true,
    address: '127.0.0.1',
    port: DEFAULT_METRICS_PORT,
    offenders: { size: 100, window: 3_600_000, buckets: 6 },
  });
  assert.equal(DEFAULT_METRICS_PORT, 10032);
});

test('the port is one no neighbouring exporter uses', () => {
  for (const taken of [9100, 9154, 9906, 9810, 9328, 11334, 10024, 10025, 10031]) assert.notEqual(DEFAULT_METRICS_PORT, taken);
});

test('overrides, with durations written as in the rest of the config', () => {
  const c = metricsSchema.parse({ address: '::1', port: 9999, offenders: { size: 20, window: '15m' } });
  assert.equal(c.address, '::1');
  assert.equal(c.port, 9999);
  assert.deepEqual(c.offenders, { size: 20, window: 900_000, buckets: 6 });
});

test('errors name the key', () => {
  const cases: ReadonlyArray<readonly [unknown, RegExp]> = [
    [{ address: 'localhost' }, /address/],
    [{ port: 70000 }, /port/],
    [{ offenders: { size: 0 } }, /offenders\.size|size/],
    [{ offenders: { window: '10s' } }, /1m/],
    [{ listen: '127.0.0.1:1' }, /listen/],
    [{ offenders: { bogus: 1 } }, /bogus/],
  ];
  for (const [input, message] of cases) {
    const r = metricsSchema.safeParse(input);
    assert.equal(r.success, false, JSON.stringify(input));
    const text = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message} ${'keys' in i ? String(i.keys) : ''}`).join('\n');
    assert.match(text, message, JSON.stringify(input));
  }
});
