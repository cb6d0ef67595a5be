// The gateway filter (no clamd) behind the protocol server on a loopback port, its JSON log kept in memory: for
// tests that drive it with the MTA-side client the way Postfix does, without real servers.
import { Writable } from 'node:stream';
import { MilterServer, type MilterFilter } from '@postfix-milter-ts/protocol';
import { pino } from 'pino';
import { configSchema } from 'postfix-milter-ts/config/schema.js';
import { createGatewayFilter } from 'postfix-milter-ts/gateway/gateway-filter.js';
import { GatewayMetrics } from 'postfix-milter-ts/metrics/gateway-metrics.js';
import { TopOffenders } from 'postfix-milter-ts/metrics/top-offenders.js';
import type { CounterStore } from 'postfix-milter-ts/policy/counter-store.js';
import { createCounterStore } from 'postfix-milter-ts/policy/create-counter-store.js';
import { RateLimiter } from 'postfix-milter-ts/policy/rate-limiter.js';
import { RelayPolicy } from 'postfix-milter-ts/policy/relay-policy.js';

export type LogLine = Readonly<Record<string, unknown>>;

export class InMemoryGateway {
  /** Every log line written so far, parsed. */
  readonly lines: LogLine[] = [];
  readonly filter: MilterFilter<unknown>;
  readonly metrics = new GatewayMetrics({ version: 'test', maxSessions: 10, defaultMetrics: false });
  readonly offenders = new TopOffenders({ capacity: 10, windowMs: 600_000 });
  private readonly server: MilterServer<unknown>;
  private readonly closeStore: () => Promise<void>;
  private listening = '';

  /** `config` is the YAML config's content as an object (schema defaults apply); `store` replaces the configured one. */
  constructor(config: unknown, store?: CounterStore) {
    const parsed = configSchema.parse(config);
    const relay = new RelayPolicy(parsed.relay);
    store ??= createCounterStore(parsed.rateLimit);
    this.closeStore = () => store.close();
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const l of chunk.toString('utf8').split('\n')) if (l !== '') this.lines.push(JSON.parse(l) as LogLine);
        done();
      },
    });
    this.filter = createGatewayFilter({
      config: parsed,
      relay,
      limiter: new RateLimiter(parsed.rateLimit, store, { trusted: (c) => relay.isTrusted(c) }),
      scanner: undefined,
      metrics: this.metrics,
      offenders: this.offenders,
      log: pino({ level: 'info' }, sink),
    }) as MilterFilter<unknown>;
    this.server = new MilterServer(this.filter, {});
  }

  /** The milter address (`inet:127.0.0.1:PORT`), once started. */
  get address(): string {
    return this.listening;
  }

  async start(): Promise<void> {
    this.listening = await this.server.listen('inet:127.0.0.1:0');
  }

  async stop(): Promise<void> {
    await this.server.close(0);
    await this.closeStore();
  }
}
