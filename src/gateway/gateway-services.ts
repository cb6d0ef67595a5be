// Builds the filter's services from a config. A reload builds a new set for new sessions; the long-lived ones
// (metrics, offenders, and the rate-limit counter store while its settings stay the same) are carried over so
// counters keep counting across reloads: a reload must not give every client a fresh quota.
import type { GatewayConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import type { TopOffenders } from '../metrics/top-offenders.js';
import type { CounterStore } from '../policy/counter-store.js';
import { createCounterStore } from '../policy/create-counter-store.js';
import { RateLimiter } from '../policy/rate-limiter.js';
import { RelayPolicy } from '../policy/relay-policy.js';
import { ClamdScanner, type ClamdEndpointHealth } from '../scanner/clamd-scanner.js';
import type { GatewayServices } from './gateway-filter.js';

export interface ServiceSet extends GatewayServices {
  readonly scanner: ClamdScanner;
  readonly store: CounterStore;
  /**
   * The counter store for the next set, when that one is built with the same store settings: this set's close()
   * then leaves it open. Undefined when the settings differ.
   */
  handOverStore(next: GatewayConfig): CounterStore | undefined;
  /** Stops health checks and closes connections (after the sessions using this set are gone). */
  close(): Promise<void>;
}

/** What a counter store is built from. */
function storeSettings(config: GatewayConfig): string {
  return JSON.stringify({ store: config.rateLimit.store, maxKeys: config.rateLimit.maxKeys });
}

export function buildServices(config: GatewayConfig, shared: { metrics: GatewayMetrics; offenders: TopOffenders; log: Logger }, carriedStore?: CounterStore): ServiceSet {
  const { metrics, offenders, log } = shared;
  const relay = new RelayPolicy(config.relay);
  // Stands for the store built here in the metrics, whose gauge follows only the store in use.
  const storeOwner = {};
  if (carriedStore === undefined) metrics.rateLimitStoreInUse(storeOwner, config.rateLimit.store.type);
  const store = carriedStore ?? createCounterStore(config.rateLimit, (event) => {
    metrics.rateLimitStoreAvailable(storeOwner, event.type !== 'unavailable');
    if (event.type === 'unavailable') {
      metrics.redisFallback();
      log.warn({ reason: event.reason, fallback: event.fallback }, `Redis rate-limit store unreachable: ${event.fallback === 'local' ? 'counting in this process alone' : 'tempfailing rate-limited stages'}`);
    } else {
      log.info({ downForMs: event.downForMs }, 'Redis rate-limit store reachable again');
    }
  });
  const limiter = new RateLimiter(config.rateLimit, store, { trusted: (client) => relay.isTrusted(client) });
  metrics.setClamdEndpoints(config.clamav.endpoints);
  const report = (health: ClamdEndpointHealth): void => {
    const index = config.clamav.endpoints.indexOf(health.endpoint);
    metrics.clamdState(index < 0 ? 0 : index, health.up, health.version ?? undefined, health.endpoint);
  };
  const scanner = new ClamdScanner(config.clamav, {
    onEndpointChecked: report,
    // Also a scan that finds an endpoint gone, between two checks.
    onEndpointChange: (health) => {
      report(health);
      if (health.up) log.info({ endpoint: health.endpoint, version: health.version }, 'clamd endpoint up');
      else log.warn({ endpoint: health.endpoint, error: health.lastError }, 'clamd endpoint down: mail is tempfailed while no endpoint answers');
    },
  });
  let storeHandedOver = false;
  return {
    config,
    relay,
    limiter,
    scanner,
    store,
    metrics,
    offenders,
    log,
    handOverStore(next) {
      if (storeSettings(next) !== storeSettings(config)) return undefined;
      storeHandedOver = true;
      return store;
    },
    async close() {
      scanner.close();
      if (!storeHandedOver) await store.close();
    },
  };
}
