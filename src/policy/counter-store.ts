// Sliding-window event counters behind one interface, so the rate limiter does not care whether counts live
// in this process or in Redis shared by several gateways.
//
// The window is cut into `buckets` sub-windows of `windowMs / buckets`. An event counts while its
// sub-window is one of the last `buckets + 1` (the current one included): never more than `limit` events
// are accepted in any trailing `windowMs`, and a counted event stops counting between `windowMs` and
// `windowMs + windowMs / buckets` after it happened. Memory per key is `buckets + 1` counters whatever the
// limit is (a log of timestamps would grow with the limit).
import { LRUCache } from 'lru-cache';

export interface SlidingWindow {
  readonly limit: number;
  readonly windowMs: number;
  readonly buckets: number;
}

export interface ConsumeResult {
  /** The event was counted (it fit under the limit). Refused attempts are not counted. */
  readonly allowed: boolean;
  /** Events in the window after this attempt. */
  readonly count: number;
}

export interface CounterStore {
  /** Atomically: count one event (`cost`) for `key` if the window still has room. */
  consume(key: string, window: SlidingWindow, nowMs: number, cost?: number): Promise<ConsumeResult>;
  close(): Promise<void>;
}

/** The store cannot answer (Redis down with `fallback: tempfail`): the caller must tempfail, never accept. */
export class CounterStoreUnavailableError extends Error {
  constructor(reason: string) {
    super(`rate-limit counter store unavailable: ${reason}`);
    this.name = 'CounterStoreUnavailableError';
  }
}

export function bucketIndex(window: SlidingWindow, nowMs: number): number {
  return Math.floor(nowMs / Math.max(1, window.windowMs / window.buckets));
}

/**
 * One key's counters: slot `i % slots` holds the count of sub-window `i`; slots[0..n) are the sub-window
 * indices, slots[n..2n) the counts. One typed array per key keeps the per-key memory small and flat.
 */
type Slots = Float64Array;

export class MemoryCounterStore implements CounterStore {
  private readonly cache: LRUCache<string, Slots>;

  /** `maxKeys`: least recently used keys are forgotten past it (their counts restart at zero). */
  constructor(maxKeys: number) {
    this.cache = new LRUCache<string, Slots>({ max: maxKeys });
  }

  get size(): number {
    return this.cache.size;
  }

  get maxKeys(): number {
    return this.cache.max;
  }

  consume(key: string, window: SlidingWindow, nowMs: number, cost = 1): Promise<ConsumeResult> {
    return Promise.resolve(this.consumeSync(key, window, nowMs, cost));
  }

  /** The same as `consume`, without the promise (for callers that know the store is local). */
  consumeSync(key: string, window: SlidingWindow, nowMs: number, cost = 1): ConsumeResult {
    const n = window.buckets + 1;
    const current = bucketIndex(window, nowMs);
    let slots = this.cache.get(key);
    if (slots === undefined || slots.length !== 2 * n) {
      slots = new Float64Array(2 * n).fill(-1, 0, n);
      this.cache.set(key, slots);
    }
    let total = 0;
    for (let i = 0; i < n; i++) {
      const index = slots[i] as number;
      if (index > current - n && index <= current) total += slots[n + i] as number;
    }
    if (total + cost > window.limit) return { allowed: false, count: total };
    const slot = current % n;
    if (slots[slot] !== current) {
      slots[slot] = current;
      slots[n + slot] = 0;
    }
    slots[n + slot] = (slots[n + slot] as number) + cost;
    return { allowed: true, count: total + cost };
  }

  close(): Promise<void> {
    this.cache.clear();
    return Promise.resolve();
  }
}
