// Envelope-policy benchmark: how many relay and rate-limit decisions per second one process makes, and how
// much memory the rate limiter holds after one million distinct client addresses (bounded by the LRU).
//
//   node --expose-gc dist-test/bench/envelope-policy.js      (about 20-40 s; --expose-gc makes memory exact)
//
// Method:
// - relay: RelayPolicy.checkRecipient over a mix of 24 recipient forms (plain, ours, every R1–R14 trick),
//   round-robin over an untrusted, a trusted and an authenticated client; checkSender likewise over S1–S6.
// - rate limit: RateLimiter.onMessage with the in-memory store, 10,000 distinct untrusted clients round-robin
//   (each call awaited, as a milter hook does); and, when /usr/bin/redis-server exists, the same through a
//   private Redis with 64 calls in flight.
// - memory: one million distinct client addresses (half IPv4, half IPv6 /64s) each make one onConnect and
//   one onMessage (two counters per client), with `rateLimit.maxKeys` at its default (100,000); RSS and heap
//   after GC are sampled at checkpoints: they must stop growing once the LRU is full.
// Results: a table on stdout and bench/results/envelope-policy.json.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { MemoryCounterStore } from 'postfix-milter-ts/policy/counter-store.js';
import type { ClientIdentity } from 'postfix-milter-ts/policy/decision.js';
import { rateLimitSchema, relaySchema } from 'postfix-milter-ts/policy/envelope-config.js';
import { RateLimiter } from 'postfix-milter-ts/policy/rate-limiter.js';
import { RedisCounterStore } from 'postfix-milter-ts/policy/redis-counter-store.js';
import { RelayPolicy } from 'postfix-milter-ts/policy/relay-policy.js';
import { RedisInstance } from '../test/harness/redis-instance.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const RESULTS = path.join(ROOT, 'bench', 'results', 'envelope-policy.json');
const DECISION_SECONDS = 2;
const DISTINCT_CLIENTS = 1_000_000;
const CHECKPOINTS = [0, 100_000, 250_000, 500_000, 750_000, 1_000_000];

function gcFunction(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}
const gc = gcFunction();

const MB = 1024 * 1024;
function memory(): { rssMB: number; heapUsedMB: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { rssMB: Math.round((m.rss / MB) * 10) / 10, heapUsedMB: Math.round((m.heapUsed / MB) * 10) / 10 };
}

const relayConfig = relaySchema.parse({
  trustedNetworks: ['127.0.0.0/8', '::1', '10.0.0.0/8'],
  localDomains: ['ours.test', 'localhost'],
  relayDomains: ['.relayed.test'],
  ownAddresses: ['192.0.2.1'],
});
const RECIPIENTS = [
  '<alice@ours.test>', '<Bob@Ours.Test.>', '<carol@mx.relayed.test>', '<u@ext.test>', '<u%ext.test@[192.0.2.1]>',
  '<u%ext.test@ours.test>', '<"u@ext.test">', '<"u%ext.test">', '<u@ext.test@[192.0.2.1]>', '<"u@ext.test"@[192.0.2.1]>',
  '<u@ext.test@ours.test>', '<@[192.0.2.1]:u@ext.test>', '<@ours.test:u@ext.test>', '<ext.test!u>', '<ext.test!u@[192.0.2.1]>',
  '<ext.test!u@ours.test>', '<u@[192.0.2.1]>', '<@a.test,@b.test:u@ext.test>', '<"u\\@ext.test"@ours.test>', '<u@>',
  '<postmaster>', '<u@[IPv6:2001:db8::1]>', '<dave@ours.test>', '<erin@ours.test>',
];
const SENDERS = ['<>', '<s@ext.test>', '<s@ours.test>', '<s@[192.0.2.1]>', '<s@localhost>', '<s>'];
const CLIENTS: ClientIdentity[] = [
  { address: '198.51.100.7', hostname: 'unknown', authUser: undefined },
  { address: '10.1.2.3', hostname: 'app.internal', authUser: undefined },
  { address: '203.0.113.9', hostname: 'unknown', authUser: 'alice' },
];

function timeLoop(seconds: number, body: (i: number) => void): { ops: number; perSecond: number } {
  for (let i = 0; i < 20_000; i++) body(i); // warm-up
  let ops = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) body(ops++);
  }
  return { ops, perSecond: Math.round(ops / ((performance.now() - start) / 1000)) };
}

async function timeAsyncLoop(seconds: number, inFlight: number, body: (i: number) => Promise<unknown>): Promise<{ ops: number; perSecond: number }> {
  let ops = 0;
  const warm = Date.now() + 200;
  while (Date.now() < warm) await body(ops++);
  ops = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const lane = async (): Promise<void> => {
    while (performance.now() < end) await body(ops++);
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return { ops, perSecond: Math.round(ops / ((performance.now() - start) / 1000)) };
}

function ipv4(i: number): string {
  return `${(i >>> 24) & 255}.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
}
function ipv6(i: number): string {
  return `2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;
}

async function main(): Promise<void> {
  const started = performance.now();
  const relay = new RelayPolicy(relayConfig);

  // Relay decisions.
  let refusals = 0;
  const rcpt = timeLoop(DECISION_SECONDS, (i) => {
    const d = relay.checkRecipient(CLIENTS[i % 3] as ClientIdentity, RECIPIENTS[i % RECIPIENTS.length] as string, { acceptedRecipients: 0, nullSender: false });
    if (d.type === 'refuse') refusals++;
  });
  const mail = timeLoop(DECISION_SECONDS / 2, (i) => {
    relay.checkSender(CLIENTS[i % 3] as ClientIdentity, SENDERS[i % SENDERS.length] as string);
  });

  // Rate-limit decisions, in memory.
  const rateConfig = rateLimitSchema.parse({});
  const memoryStore = new MemoryCounterStore(rateConfig.maxKeys);
  const limiter = new RateLimiter(rateConfig, memoryStore, { trusted: (c) => relay.isTrusted(c) });
  const rateClients: ClientIdentity[] = Array.from({ length: 10_000 }, (_, i) => ({ address: ipv4(0xc6336400 + i), hostname: 'unknown', authUser: undefined }));
  const rateMemory = await timeAsyncLoop(DECISION_SECONDS, 1, (i) => limiter.onMessage(rateClients[i % rateClients.length] as ClientIdentity));
  await memoryStore.close();

  // Rate-limit decisions through Redis.
  let rateRedis: { ops: number; perSecond: number } | undefined;
  if (existsSync('/usr/bin/redis-server')) {
    const redis = new RedisInstance();
    await redis.start();
    const store = new RedisCounterStore({ url: redis.url });
    await store.waitUntilReady(5000);
    const redisLimiter = new RateLimiter(rateLimitSchema.parse({}), store, { trusted: () => false });
    rateRedis = await timeAsyncLoop(DECISION_SECONDS, 64, (i) => redisLimiter.onMessage(rateClients[i % rateClients.length] as ClientIdentity));
    if (store.stats.fallbackDecisions > 0) throw new Error(`${store.stats.fallbackDecisions} Redis decisions fell back: the figure would be wrong`);
    await store.close();
    await redis.dispose();
  }

  // Memory after one million distinct clients.
  const store = new MemoryCounterStore(rateConfig.maxKeys);
  const memLimiter = new RateLimiter(rateConfig, store, { trusted: () => false });
  const samples: { clients: number; keys: number; rssMB: number; heapUsedMB: number }[] = [];
  const memStart = performance.now();
  let next = 0;
  for (const checkpoint of CHECKPOINTS) {
    for (; next < checkpoint; next++) {
      const client: ClientIdentity = { address: next % 2 === 0 ? ipv4(0x0b000000 + next) : ipv6(next), hostname: 'unknown', authUser: undefined };
      await memLimiter.onConnect(client);
      await memLimiter.onMessage(client);
    }
    samples.push({ clients: checkpoint, keys: store.size, ...memory() });
  }
  const memSeconds = (performance.now() - memStart) / 1000;
  const perClientCall = Math.round((DISTINCT_CLIENTS * 2) / memSeconds);
  const first = samples.find((s) => s.clients >= rateConfig.maxKeys) ?? samples[0];
  const last = samples.at(-1);
  const boundHolds = last !== undefined && last.keys <= rateConfig.maxKeys && first !== undefined && last.heapUsedMB <= first.heapUsedMB * 1.15 + 5;

  const rows: [string, string][] = [
    ['relay checkRecipient (mixed forms, 3 client kinds)', `${rcpt.perSecond.toLocaleString('en')} /s (${Math.round((refusals / rcpt.ops) * 100)} % refused)`],
    ['relay checkSender (S1–S6)', `${mail.perSecond.toLocaleString('en')} /s`],
    ['rate limit onMessage, memory store', `${rateMemory.perSecond.toLocaleString('en')} /s`],
    ['rate limit onMessage, Redis store (64 in flight)', rateRedis ? `${rateRedis.perSecond.toLocaleString('en')} /s` : 'skipped (no redis-server)'],
    ['rate limit onConnect+onMessage, 1M new clients', `${perClientCall.toLocaleString('en')} calls/s`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write('\nEnvelope policy decisions (one process, one core)\n');
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(width)}  ${v}\n`);
  process.stdout.write(`\nMemory with distinct client addresses (LRU maxKeys ${rateConfig.maxKeys.toLocaleString('en')}, 2 counters per client)\n`);
  process.stdout.write(`  ${'clients seen'.padStart(12)}  ${'keys held'.padStart(10)}  ${'RSS MB'.padStart(8)}  ${'heap MB'.padStart(8)}\n`);
  for (const s of samples) {
    process.stdout.write(`  ${s.clients.toLocaleString('en').padStart(12)}  ${s.keys.toLocaleString('en').padStart(10)}  ${s.rssMB.toFixed(1).padStart(8)}  ${s.heapUsedMB.toFixed(1).padStart(8)}\n`);
  }
  process.stdout.write(`  LRU bound holds: ${boundHolds ? 'yes' : 'NO'}\n`);

  const json = {
    date: new Date().toISOString(),
    node: process.version,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    relay: { checkRecipientPerSecond: rcpt.perSecond, checkSenderPerSecond: mail.perSecond, refusedShare: refusals / rcpt.ops, recipientForms: RECIPIENTS.length },
    rateLimit: {
      memoryOnMessagePerSecond: rateMemory.perSecond,
      redisOnMessagePerSecond: rateRedis?.perSecond ?? null,
      redisInFlight: 64,
      newClientCallsPerSecond: perClientCall,
    },
    memory: { maxKeys: rateConfig.maxKeys, distinctClients: DISTINCT_CLIENTS, samples, boundHolds },
  };
  mkdirSync(path.dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`\nresults: ${path.relative(ROOT, RESULTS)} (${json.seconds} s total)\n`);
  if (!boundHolds) process.exitCode = 1;
}

await main();
