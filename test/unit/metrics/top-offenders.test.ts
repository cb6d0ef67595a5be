import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TopOffenders } from 'postfix-milter-ts/metrics/top-offenders.js';

/** A deterministic pseudo-random sequence (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('TopOffenders', () => {
  test('exact counts while the number of addresses fits the capacity', () => {
    const t = new TopOffenders({ capacity: 10, windowMs: 60_000, now: () => 1000 });
    for (let i = 0; i < 5; i++) t.record('192.0.2.1', 'relay-denied');
    for (let i = 0; i < 3; i++) t.record('2001:db8::1', 'rate-rcpt');
    t.record('198.51.100.7');
    const top = t.top();
    assert.deepEqual(top.map((o) => [o.address, o.refusals, o.errorBound]), [['192.0.2.1', 5, 0], ['2001:db8::1', 3, 0], ['198.51.100.7', 1, 0]]);
    assert.equal(top[0]?.lastRule, 'relay-denied');
    assert.equal(top[2]?.lastRule, undefined);
    assert.equal(top[0]?.lastSeen, new Date(1000).toISOString());
    assert.deepEqual(t.top(1).map((o) => o.address), ['192.0.2.1']);
    assert.deepEqual(t.top(0), []);
  });

  test('finds the heavy hitters among many more addresses than it keeps, with honest error bounds', () => {
    const capacity = 20;
    const t = new TopOffenders({ capacity, windowMs: 3_600_000, buckets: 1, now: () => 0 });
    const rnd = random(42);
    const truth = new Map<string, number>();
    const heavy = ['203.0.113.1', '203.0.113.2', '203.0.113.3'];
    for (let i = 0; i < 20_000; i++) {
      // 30% of refusals from three sources, the rest spread over 5000 addresses.
      const r = rnd();
      const address = r < 0.15 ? heavy[0]! : r < 0.25 ? heavy[1]! : r < 0.3 ? heavy[2]! : `10.0.${Math.floor(rnd() * 20)}.${Math.floor(rnd() * 250)}`;
      truth.set(address, (truth.get(address) ?? 0) + 1);
      t.record(address);
    }
    const top = t.top();
    assert.equal(top.length, capacity);
    assert.deepEqual(top.slice(0, 3).map((o) => o.address), heavy);
    for (const o of top) {
      const real = truth.get(o.address) ?? 0;
      assert.ok(o.refusals >= real, `${o.address}: estimate ${o.refusals} below the true ${real}`);
      assert.ok(o.refusals - o.errorBound <= real, `${o.address}: lower bound ${o.refusals - o.errorBound} above the true ${real}`);
    }
    assert.ok(t.entries <= capacity);
  });

  test('memory stays bounded: at most capacity × buckets entries', () => {
    let now = 0;
    const t = new TopOffenders({ capacity: 8, windowMs: 60_000, buckets: 4, now: () => now });
    for (let i = 0; i < 10_000; i++) {
      now = i * 50; // 500 s of traffic, many slices
      t.record(`10.1.${i % 200}.${i % 7}`);
      assert.ok(t.entries <= 8 * 4);
    }
  });

  test('refusals older than the window drop out, slice by slice', () => {
    let now = 0;
    const t = new TopOffenders({ capacity: 5, windowMs: 60_000, buckets: 6, now: () => now });
    t.record('192.0.2.1');
    t.record('192.0.2.1');
    now = 30_000;
    t.record('192.0.2.2');
    assert.deepEqual(t.top().map((o) => [o.address, o.refusals]), [['192.0.2.1', 2], ['192.0.2.2', 1]]);
    now = 60_000; // the first slice (0–10 s) has left the window
    assert.deepEqual(t.top().map((o) => [o.address, o.refusals]), [['192.0.2.2', 1]]);
    now = 95_000;
    assert.deepEqual(t.top(), []);
    assert.equal(t.entries, 0);
  });

  test('counts from several slices add up', () => {
    let now = 0;
    const t = new TopOffenders({ capacity: 5, windowMs: 60_000, buckets: 6, now: () => now });
    for (const at of [0, 15_000, 25_000, 45_000]) {
      now = at;
      t.record('192.0.2.9', `rule-${at}`);
    }
    const [o] = t.top();
    assert.equal(o?.refusals, 4);
    assert.equal(o?.errorBound, 0);
    assert.equal(o?.lastRule, 'rule-45000');
  });

  test('an address missing from a full slice carries that slice’s floor as possible error', () => {
    let now = 0;
    const t = new TopOffenders({ capacity: 2, windowMs: 20_000, buckets: 2, now: () => now });
    t.record('a');
    t.record('a');
    t.record('b');
    t.record('b');
    now = 10_000;
    t.record('c');
    const c = t.top().find((o) => o.address === 'c');
    assert.ok(c !== undefined);
    // c may have been among the evicted in slice 1 up to its floor (2).
    assert.equal(c.refusals, 3);
    assert.equal(c.errorBound, 2);
  });

  test('bad options are refused with a reason', () => {
    assert.throws(() => new TopOffenders({ capacity: 0, windowMs: 1000 }), /capacity/);
    assert.throws(() => new TopOffenders({ capacity: 5, windowMs: 1000, buckets: 0 }), /buckets/);
    assert.throws(() => new TopOffenders({ capacity: 5, windowMs: 2, buckets: 6 }), /window/);
  });

  test('empty and over-long keys', () => {
    const t = new TopOffenders({ capacity: 3, windowMs: 60_000 });
    t.record('');
    t.record('x'.repeat(500));
    const top = t.top();
    assert.equal(top.length, 1);
    assert.equal(top[0]?.address.length, 64);
  });
});
