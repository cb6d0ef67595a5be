// Several milter processes sharing one real redis-server enforce ONE combined limit; when Redis dies or
// hangs they fall back as configured (local counters, or tempfail) and say so; when it returns they share
// again. Each "milter" is a separate node process running RateLimiter + RedisCounterStore.
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RedisInstance } from '../harness/redis-instance.js';
import type { WorkerMessage, WorkerSettings } from './helpers/redis-rate-limit-worker.js';

const WORKER = fileURLToPath(new URL('./helpers/redis-rate-limit-worker.js', import.meta.url));
const LIMIT = 10;

interface Reply {
  readonly outcome: string;
  readonly code: number | undefined;
  readonly elapsedMs: number;
}

class Worker {
  readonly events: { type: string; fallback?: string }[] = [];
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, (m: Extract<WorkerMessage, { type: 'reply' }>) => void>();
  private readonly ready: Promise<void>;

  constructor(settings: WorkerSettings) {
    this.child = fork(WORKER, [JSON.stringify(settings)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`worker exited early with ${code}`)));
      this.child.on('message', (raw) => {
        const m = raw as WorkerMessage;
        if (m.type === 'ready') resolve();
        else if (m.type === 'event') this.events.push(m.event as { type: string });
        else this.pending.get(m.id)?.(m);
      });
    });
  }

  whenReady(): Promise<void> {
    return this.ready;
  }

  async message(address: string): Promise<Reply> {
    const id = this.nextId++;
    const reply = await new Promise<Extract<WorkerMessage, { type: 'reply' }>>((resolve) => {
      this.pending.set(id, resolve);
      this.child.send({ id, op: 'message', address });
    });
    this.pending.delete(id);
    const d = reply.decision;
    return { outcome: d === undefined || d.type === 'pass' ? 'pass' : d.rule, code: d?.type === 'refuse' ? d.code : undefined, elapsedMs: reply.elapsedMs };
  }

  async waitForEvent(type: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.events.some((e) => e.type === type)) {
      if (Date.now() > deadline) throw new Error(`no '${type}' event within ${timeoutMs} ms (events: ${JSON.stringify(this.events)})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.send({ id: 0, op: 'exit' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

/** `count` MAIL attempts from each worker at once, all for one client address. */
async function burst(workers: readonly Worker[], address: string, count: number): Promise<Reply[]> {
  return Promise.all(workers.flatMap((w) => Array.from({ length: count }, () => w.message(address))));
}

const passes = (replies: readonly Reply[]): number => replies.filter((r) => r.outcome === 'pass').length;

describe('rate limits shared through a real redis-server', () => {
  const redis = new RedisInstance();
  let a: Worker;
  let b: Worker;
  let strict: Worker;

  before(async () => {
    await redis.start();
    a = new Worker({ url: redis.url, fallback: 'local', messagesPerMinute: LIMIT });
    b = new Worker({ url: redis.url, fallback: 'local', messagesPerMinute: LIMIT });
    strict = new Worker({ url: redis.url, fallback: 'tempfail', messagesPerMinute: LIMIT });
    await Promise.all([a.whenReady(), b.whenReady(), strict.whenReady()]);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), strict?.stop()]);
    await redis.dispose();
  });

  test('two processes enforce one combined limit', async () => {
    const replies = await burst([a, b], '198.51.100.1', 8);
    assert.equal(passes(replies), LIMIT, JSON.stringify(replies));
    assert.ok(replies.filter((r) => r.outcome !== 'pass').every((r) => r.outcome === 'rate-messages' && r.code === 451));
    // A third process sees the same count; another client is not affected.
    assert.equal((await strict.message('198.51.100.1')).outcome, 'rate-messages');
    assert.equal((await strict.message('198.51.100.2')).outcome, 'pass');
  });

  test('Redis killed: local fallback keeps limiting per process, tempfail fallback answers 4xx; both say so', async () => {
    await redis.kill();
    await Promise.all([a.waitForEvent('unavailable', 5000), b.waitForEvent('unavailable', 5000), strict.waitForEvent('unavailable', 5000)]);
    assert.deepEqual(
      [a, b, strict].map((w) => w.events.find((e) => e.type === 'unavailable')?.fallback),
      ['local', 'local', 'tempfail'],
    );
    // Each local fallback counts alone: up to LIMIT per process.
    const fromA = await burst([a], '198.51.100.3', LIMIT + 2);
    const fromB = await burst([b], '198.51.100.3', LIMIT + 2);
    assert.equal(passes(fromA), LIMIT);
    assert.equal(passes(fromB), LIMIT);
    assert.ok(fromA.every((r) => r.elapsedMs < 100), 'decisions do not wait for the dead server');
    const tempfailed = await strict.message('198.51.100.3');
    assert.deepEqual([tempfailed.outcome, tempfailed.code], ['rate-store-unavailable', 451]);
  });

  test('Redis restarted: every process reports recovery and the combined limit holds again', async () => {
    await redis.start();
    await Promise.all([a.waitForEvent('recovered', 10_000), b.waitForEvent('recovered', 10_000), strict.waitForEvent('recovered', 10_000)]);
    const replies = await burst([a, b, strict], '198.51.100.4', 5);
    assert.equal(passes(replies), LIMIT, JSON.stringify(replies));
  });

  test('Redis hung (SIGSTOP): decisions fall back within the command timeout', async () => {
    a.events.length = 0;
    redis.pause();
    try {
      const started = Date.now();
      const reply = await a.message('198.51.100.5');
      assert.equal(reply.outcome, 'pass');
      assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
      await a.waitForEvent('unavailable', 2000);
      const replies = await burst([a], '198.51.100.5', LIMIT + 1);
      assert.equal(passes(replies), LIMIT - 1, 'the local fallback counted the first one');
    } finally {
      redis.resume();
    }
    await a.waitForEvent('recovered', 5000);
  });
});
