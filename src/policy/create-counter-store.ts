// Builds the counter store the `rateLimit.store` config section asks for.
import { MemoryCounterStore, type CounterStore } from './counter-store.js';
import type { RateLimitConfig } from './envelope-config.js';
import { RedisCounterStore, type RedisStoreEvent } from './redis-counter-store.js';

export function createCounterStore(config: RateLimitConfig, onRedisEvent?: (event: RedisStoreEvent) => void): CounterStore {
  const store = config.store;
  if (store.type === 'memory') return new MemoryCounterStore(config.maxKeys);
  return new RedisCounterStore({
    url: store.url,
    keyPrefix: store.keyPrefix,
    commandTimeoutMs: store.commandTimeout,
    connectTimeoutMs: store.connectTimeout,
    fallback: store.fallback,
    fallbackMaxKeys: config.maxKeys,
    ...(onRedisEvent ? { onEvent: onRedisEvent } : {}),
  });
}
