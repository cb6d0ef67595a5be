// Sliding-window counters in Redis, shared by every gateway that points at the same server, so several
// milter processes enforce one combined limit. Each key is a hash of sub-window index → count, read, checked
// and incremented by one Lua script (atomic: two gateways cannot both take the last slot), with a TTL so
// idle clients vanish on their own.
//
// When Redis cannot answer (down, timed out), decisions must not wait on it: with `fallback: 'local'` they
// use this process's own counters (each gateway then limits alone, so the combined limit is up to N times
// higher during the outage); with `fallback: 'tempfail'` the store throws CounterStoreUnavailableError and
// the limiter answers 4xx. Either way the change of state is reported once through `onEvent` for a log line
// and a metric, and recovery is reported when Redis answers again. Counts made locally are not merged back.
import { Redis } from 'ioredis';
import {
  CounterStoreUnavailableError,
  MemoryCounterStore,
  bucketIndex,
  type ConsumeResult,
  type CounterStore,
  type SlidingWindow,
} from './counter-store.js';

export type RedisStoreEvent =
  | { readonly type: 'unavailable'; readonly reason: string; readonly fallback: 'local' | 'tempfail' }
  | { readonly type: 'recovered'; readonly downForMs: number };

export interface RedisCounterStoreOptions {
  /** `redis://host:port/db`. Ignored when `client` is given. */
  readonly url?: string;
  /** An ioredis client to use instead (its options are the caller's business; it is closed by close()). */
  readonly client?: Redis;
  readonly keyPrefix?: string;
  readonly commandTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly fallback?: 'local' | 'tempfail';
  /** Keys for the local fallback counters. */
  readonly fallbackMaxKeys?: number;
  /** After a failed command, how long to use the fallback before trying Redis again (unless it reconnects first). */
  readonly retryIntervalMs?: number;
  readonly onEvent?: (event: RedisStoreEvent) => void;
}

export interface RedisStoreStats {
  /** Decisions answered by Redis. */
  readonly redisDecisions: number;
  /** Decisions made while Redis was unavailable (local counters, or tempfail). */
  readonly fallbackDecisions: number;
  readonly available: boolean;
}

// KEYS[1] = key; ARGV = current sub-window index, sub-windows counted, limit, cost, TTL ms.
// Returns { allowed (0/1), count }.
const SLIDING_WINDOW_LUA = `
local current = tonumber(ARGV[1])
local slots = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local index = tonumber(fields[i])
  if index <= current - slots or index > current then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    total = total + tonumber(fields[i + 1])
  end
end
if total + cost > limit then
  return { 0, total }
end
redis.call('HINCRBY', KEYS[1], ARGV[1], cost)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return { 1, total + cost }
`;

interface SlidingWindowCommand {
  pmtSlidingWindow(key: string, current: number, slots: number, limit: number, cost: number, ttlMs: number): Promise<[number, number]>;
}

export class RedisCounterStore implements CounterStore {
  private readonly redis: Redis;
  private readonly keyPrefix: string;
  private readonly fallbackMode: 'local' | 'tempfail';
  private readonly local: MemoryCounterStore;
  private readonly retryIntervalMs: number;
  private readonly onEvent: ((event: RedisStoreEvent) => void) | undefined;
  /** `starting` until the first connection: a failure then is reported, a success is not a "recovery". */
  private state: 'starting' | 'up' | 'down' = 'starting';
  private downSince = 0;
  private retryAt = 0;
  private redisDecisions = 0;
  private fallbackDecisions = 0;
  private closed = false;
  private probe: NodeJS.Timeout | undefined;
  private probing = false;

  constructor(options: RedisCounterStoreOptions) {
    this.keyPrefix = options.keyPrefix ?? 'pmt:rate:';
    this.fallbackMode = options.fallback ?? 'local';
    this.local = new MemoryCounterStore(options.fallbackMaxKeys ?? 100_000);
    this.retryIntervalMs = options.retryIntervalMs ?? 1000;
    this.onEvent = options.onEvent;
    this.redis =
      options.client ??
      new Redis(options.url ?? 'redis://127.0.0.1:6379', {
        commandTimeout: options.commandTimeoutMs ?? 250,
        connectTimeout: options.connectTimeoutMs ?? 2000,
        // Fail commands at once while disconnected instead of queueing them behind a reconnect.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        // Keep reconnecting forever, backing off to 2 s.
        retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
      });
    this.redis.defineCommand('pmtSlidingWindow', { numberOfKeys: 1, lua: SLIDING_WINDOW_LUA });
    // Without a listener ioredis prints every connection error; the state change is reported once instead.
    this.redis.on('error', (error: Error) => this.markDown(error.message));
    this.redis.on('close', () => this.markDown('connection closed'));
    this.redis.on('ready', () => {
      this.retryAt = 0;
      this.markUp();
    });
  }

  get stats(): RedisStoreStats {
    return { redisDecisions: this.redisDecisions, fallbackDecisions: this.fallbackDecisions, available: this.state !== 'down' };
  }

  /** Resolves once connected (or rejects after `timeoutMs`); optional, for a startup log line. */
  async waitUntilReady(timeoutMs: number): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.redis.off('ready', onReady);
        reject(new CounterStoreUnavailableError(`not connected after ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.redis.once('ready', onReady);
    });
  }

  async consume(key: string, window: SlidingWindow, nowMs: number, cost = 1): Promise<ConsumeResult> {
    if (this.redis.status === 'ready' && Date.now() >= this.retryAt) {
      const slotMs = Math.max(1, window.windowMs / window.buckets);
      const ttlMs = Math.ceil(window.windowMs + slotMs) + 1000;
      try {
        const [allowed, count] = await (this.redis as unknown as SlidingWindowCommand).pmtSlidingWindow(
          this.keyPrefix + key,
          bucketIndex(window, nowMs),
          window.buckets + 1,
          window.limit,
          cost,
          ttlMs,
        );
        this.redisDecisions++;
        this.markUp();
        return { allowed: allowed === 1, count };
      } catch (error) {
        this.retryAt = Date.now() + this.retryIntervalMs;
        this.markDown(error instanceof Error ? error.message : String(error));
      }
    } else {
      this.markDown(`connection ${this.redis.status}`);
    }
    this.fallbackDecisions++;
    if (this.fallbackMode === 'tempfail') throw new CounterStoreUnavailableError('Redis does not answer');
    return this.local.consumeSync(key, window, nowMs, cost);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopProbing();
    this.redis.disconnect(false);
    await this.local.close();
  }

  private markDown(reason: string): void {
    if (this.state === 'down' || this.closed) return;
    this.state = 'down';
    this.downSince = Date.now();
    this.onEvent?.({ type: 'unavailable', reason, fallback: this.fallbackMode });
    this.startProbing();
  }

  /** While down, PING now and then so recovery is noticed (and reported) even with no traffic. */
  private startProbing(): void {
    if (this.probe !== undefined) return;
    this.probe = setInterval(() => {
      if (this.redis.status !== 'ready' || this.probing) return;
      this.probing = true;
      this.redis
        .ping()
        .then(() => {
          this.retryAt = 0;
          this.markUp();
        })
        .catch(() => undefined)
        .finally(() => {
          this.probing = false;
        });
    }, this.retryIntervalMs);
    this.probe.unref();
  }

  private stopProbing(): void {
    if (this.probe !== undefined) clearInterval(this.probe);
    this.probe = undefined;
  }

  private markUp(): void {
    const was = this.state;
    this.state = 'up';
    this.stopProbing();
    if (was === 'down' && !this.closed) this.onEvent?.({ type: 'recovered', downForMs: Date.now() - this.downSince });
  }
}
