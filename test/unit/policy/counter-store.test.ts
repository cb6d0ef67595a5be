// The in-process sliding-window counters: the window slides by sub-window, refused attempts do not count,
// and the LRU keeps at most the configured number of keys.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryCounterStore, type SlidingWindow } from 'postfix-milter-ts/policy/counter-store.js';

// 3 events per 10 s, sub-windows of 1 s.
const WINDOW: SlidingWindow = { limit: 3, windowMs: 10_000, buckets: 10 };

describe('MemoryCounterStore sliding window', () => {
  // [time ms, expected allowed, expected count]
  const steps: readonly [number, boolean, number][] = [
    [0, true, 1],
    [4_000, true, 2],
    [9_999, true, 3],
    [10_000, false, 3], // the event at 0 is still inside window + one sub-window
    [10_999, false, 3],
    [11_000, true, 3], // the event at 0 has left; room for one
    [11_500, false, 3],
    [15_000, true, 3], // the event at 4 s has left
    [30_000, true, 1], // everything old is gone
  ];
  test('counts per the table', () => {
    const store = new MemoryCounterStore(100);
    for (const [now, allowed, count] of steps) {
      const r = store.consumeSync('k', WINDOW, now);
      assert.deepEqual([now, r.allowed, r.count], [now, allowed, count]);
    }
  });

  test('never more than the limit in any trailing window, under a steady flood', () => {
    const store = new MemoryCounterStore(100);
    const accepted: number[] = [];
    for (let t = 0; t < 60_000; t += 137) if (store.consumeSync('k', WINDOW, t).allowed) accepted.push(t);
    for (const t of accepted) {
      const inWindow = accepted.filter((u) => u > t - WINDOW.windowMs && u <= t).length;
      assert.ok(inWindow <= WINDOW.limit, `at ${t}: ${inWindow}`);
    }
    // And the flood still gets its share: about limit per (window + one sub-window).
    assert.ok(accepted.length >= 15, String(accepted.length));
  });

  test('a cost above one counts as several events', () => {
    const store = new MemoryCounterStore(100);
    assert.equal(store.consumeSync('k', WINDOW, 0, 2).allowed, true);
    assert.equal(store.consumeSync('k', WINDOW, 0, 2).allowed, false);
    assert.equal(store.consumeSync('k', WINDOW, 0, 1).allowed, true);
  });

  test('keys are independent', () => {
    const store = new MemoryCounterStore(100);
    for (let i = 0; i < 3; i++) store.consumeSync('a', WINDOW, 0);
    assert.equal(store.consumeSync('a', WINDOW, 0).allowed, false);
    assert.equal(store.consumeSync('b', WINDOW, 0).allowed, true);
  });

  test('a changed window shape restarts the key', () => {
    const store = new MemoryCounterStore(100);
    for (let i = 0; i < 3; i++) store.consumeSync('a', WINDOW, 0);
    assert.equal(store.consumeSync('a', { ...WINDOW, buckets: 5 }, 0).allowed, true);
  });

  test('the promise form gives the same answers', async () => {
    const store = new MemoryCounterStore(100);
    for (let i = 0; i < 3; i++) assert.equal((await store.consume('a', WINDOW, 0)).allowed, true);
    assert.equal((await store.consume('a', WINDOW, 0)).allowed, false);
  });
});

describe('MemoryCounterStore LRU bound', () => {
  test('holds at most maxKeys keys; the least recently used are forgotten', () => {
    const store = new MemoryCounterStore(100);
    for (let i = 0; i < 3; i++) store.consumeSync('busy', WINDOW, 0);
    for (let i = 0; i < 10_000; i++) {
      store.consumeSync(`client-${i}`, WINDOW, 0);
      if (i % 50 === 0) store.consumeSync('busy', WINDOW, 0); // keeps it recent (refused, still touched)
      assert.ok(store.size <= 100);
    }
    assert.equal(store.size, 100);
    assert.equal(store.maxKeys, 100);
    // 'busy' was used recently: still limited. 'client-0' was evicted: its count restarted.
    assert.equal(store.consumeSync('busy', WINDOW, 0).allowed, false);
    assert.equal(store.consumeSync('client-0', WINDOW, 0).count, 1);
  });
});
