import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ScanSlots } from 'postfix-milter-ts/scanner/scan-slots.js';

test('grants up to the limit at once, then queues in order and hands slots over on release', async () => {
  const slots = new ScanSlots(2);
  const a = await slots.acquire(1000);
  const b = await slots.acquire(1000);
  assert.ok(a && b);
  assert.equal(slots.active, 2);
  const order: string[] = [];
  const c = slots.acquire(1000).then((r) => (order.push('c'), r));
  const d = slots.acquire(1000).then((r) => (order.push('d'), r));
  assert.equal(slots.waiting, 2);
  a();
  a(); // a second release must not free a second slot
  const rc = await c;
  assert.ok(rc);
  assert.equal(slots.active, 2);
  assert.equal(slots.waiting, 1);
  b();
  const rd = await d;
  assert.ok(rd);
  assert.deepEqual(order, ['c', 'd']);
  rc();
  rd();
  assert.equal(slots.active, 0);
});

test('a waiter gives up after its wait and when its signal aborts', async () => {
  const slots = new ScanSlots(1);
  const held = await slots.acquire(10);
  assert.ok(held);
  const started = Date.now();
  assert.equal(await slots.acquire(50), null);
  assert.ok(Date.now() - started >= 45);
  const controller = new AbortController();
  const waiting = slots.acquire(10_000, controller.signal);
  controller.abort();
  assert.equal(await waiting, null);
  assert.equal(slots.waiting, 0);
  held();
  assert.equal(slots.active, 0);
});

test('tryAcquire: a slot at once while one is free and nobody waits; null when full or when others wait', async () => {
  const slots = new ScanSlots(1);
  const a = slots.tryAcquire();
  assert.ok(a);
  assert.equal(slots.tryAcquire(), null);
  const waiting = slots.acquire(1000);
  a();
  // The freed slot went to the waiter, so there is still none to take at once.
  const b = await waiting;
  assert.ok(b);
  assert.equal(slots.tryAcquire(), null);
  b();
  const c = slots.tryAcquire();
  assert.ok(c);
  c();
  assert.equal(slots.active, 0);
});
