// A stand-in for one milter process: a RateLimiter on a RedisCounterStore, driven by its parent over the
// IPC channel. Started with fork(); argv[2] is a JSON WorkerSettings.
import { RedisCounterStore } from 'postfix-milter-ts/policy/redis-counter-store.js';
import { rateLimitSchema } from 'postfix-milter-ts/policy/envelope-config.js';
import { RateLimiter } from 'postfix-milter-ts/policy/rate-limiter.js';
import type { EnvelopeDecision } from 'postfix-milter-ts/policy/decision.js';

export interface WorkerSettings {
  readonly url: string;
  readonly fallback: 'local' | 'tempfail';
  readonly messagesPerMinute: number;
}

export type WorkerRequest = { readonly id: number; readonly op: 'message'; readonly address: string } | { readonly id: number; readonly op: 'stats' } | { readonly id: number; readonly op: 'exit' };

export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'event'; readonly event: unknown }
  | { readonly type: 'reply'; readonly id: number; readonly decision?: EnvelopeDecision; readonly stats?: unknown; readonly elapsedMs: number };

const settings = JSON.parse(process.argv[2] ?? '{}') as WorkerSettings;
const send = (message: WorkerMessage): void => {
  process.send?.(message);
};

const config = rateLimitSchema.parse({
  store: { type: 'redis', url: settings.url, fallback: settings.fallback, commandTimeout: '200ms' },
  untrusted: { messages: { limit: settings.messagesPerMinute, window: '1m' } },
});
const store = new RedisCounterStore({
  url: settings.url,
  fallback: settings.fallback,
  commandTimeoutMs: 200,
  retryIntervalMs: 200,
  onEvent: (event) => send({ type: 'event', event }),
});
const limiter = new RateLimiter(config, store, { trusted: () => false });

process.on('message', (raw) => {
  const request = raw as WorkerRequest;
  const started = performance.now();
  if (request.op === 'exit') {
    void store.close().then(() => process.exit(0));
    return;
  }
  if (request.op === 'stats') {
    send({ type: 'reply', id: request.id, stats: store.stats, elapsedMs: 0 });
    return;
  }
  void limiter.onMessage({ address: request.address, hostname: 'unknown', authUser: undefined }).then((decision) => {
    send({ type: 'reply', id: request.id, decision, elapsedMs: performance.now() - started });
  });
});

await store.waitUntilReady(5000);
send({ type: 'ready' });
