// `postfix-milter-ts serve`: the milter, its metrics listener and the signals an administrator uses.
//   SIGHUP           re-read the config file; a valid one applies to new sessions, an invalid one is refused
//                    (during start-up: once started; while stopping: logged and ignored)
//   SIGTERM, SIGINT  stop accepting, let messages in flight finish (milter.shutdownGrace), exit 0; a second one
//                    ends the grace at once: messages still waiting for a verdict are tempfailed, then exit 0
import { MilterServer, type MilterFilter, type ServerObserver } from '@postfix-milter-ts/protocol';
import type { Socket } from 'node:net';
import { ConfigError, loadConfigFile, type ConfigOverride } from './config/load-config.js';
import { restartOnlyChanges } from './config/restart-only.js';
import { configSchema, type GatewayConfig } from './config/schema.js';
import { ACCEPTS_PER_TURN, loadDuplicateDescriptor } from './duplicate-descriptor.js';
import { createGatewayFilter } from './gateway/gateway-filter.js';
import { buildServices, type ServiceSet } from './gateway/gateway-services.js';
import type { Logger } from './log.js';
import { GatewayMetrics } from './metrics/gateway-metrics.js';
import { MetricsServer } from './metrics/metrics-server.js';
import { metricsObserver } from './metrics/milter-observer.js';
import { TopOffenders } from './metrics/top-offenders.js';
import { loadQuickAck } from './tcp-quickack.js';

export interface ServeOptions {
  readonly config: GatewayConfig;
  /** The file to re-read on SIGHUP; none when running on embedded defaults. */
  readonly configFile: string | undefined;
  readonly overrides: readonly ConfigOverride[];
  readonly version: string;
  readonly log: Logger;
}

/** One generation of services: sessions opened under a config keep it until they end. */
interface Generation {
  readonly services: ServiceSet;
  filter: MilterFilter<unknown>;
  sessions: number;
  retired: boolean;
}

// Under a flood every refused connection would be a log line; say it once per interval with a count.
const OVERLOAD_LOG_INTERVAL_MS = 10_000;

function loggingObserver(log: Logger): ServerObserver {
  let refused = { tempfailed: 0, dropped: 0 };
  let lastLogged = 0;
  return {
    protocolError: (session, err) => log.warn({ session, kind: err.kind }, `closing milter connection: ${err.message}`),
    hookError: (session, stage, err) => log.error({ session, stage, err }, 'filter failed; the stage was tempfailed'),
    overloaded: (reason, outcome) => {
      refused[outcome]++;
      const now = Date.now();
      if (now - lastLogged < OVERLOAD_LOG_INTERVAL_MS) return;
      log.warn({ reason, ...refused }, 'connections refused: the milter is at milter.maxSessions (tempfailed at CONNECT, or dropped beyond the overflow allowance)');
      lastLogged = now;
      refused = { tempfailed: 0, dropped: 0 };
    },
  };
}

export async function serve(options: ServeOptions): Promise<void> {
  const { log, version } = options;
  let config = options.config;
  const m = config.milter;

  const metrics = new GatewayMetrics({ version, maxSessions: m.maxSessions, bannedExtensions: config.attachments.bannedExtensions });
  const offenders = new TopOffenders({ capacity: config.metrics.offenders.size, windowMs: config.metrics.offenders.window, buckets: config.metrics.offenders.buckets });

  const newGeneration = (c: GatewayConfig, previous?: Generation): Generation => {
    const services = buildServices(c, { metrics, offenders, log }, previous?.services.handOverStore(c));
    services.scanner.start();
    const inner = createGatewayFilter(services) as MilterFilter<unknown>;
    const gen: Generation = { services, filter: inner, sessions: 0, retired: false };
    // Count sessions per generation so a retired one is closed when its last session ends.
    gen.filter = {
      ...inner,
      createState() {
        gen.sessions++;
        return inner.createState?.();
      },
      async close(session) {
        await inner.close?.(session);
        gen.sessions--;
        if (gen.retired && gen.sessions === 0) await services.close();
      },
    };
    return gen;
  };

  let current = newGeneration(config);

  let afterTcpRead: ((socket: Socket) => void) | undefined;
  if (m.tcpQuickAck) {
    const { setter, reason } = loadQuickAck();
    if (setter) afterTcpRead = (socket) => void setter(socket);
    else log.warn({ reason }, 'TCP_QUICKACK unavailable: each milter command over TCP may wait for a delayed ACK; a UNIX socket avoids this');
  }

  const { dup, reason: noDup } = loadDuplicateDescriptor();
  if (!dup) log.warn({ reason: noDup }, 'dup(2) unavailable: the milter accepts one MTA connection per event-loop turn, which adds latency under bursts');

  const server = new MilterServer(current.filter, {
    maxSessions: m.maxSessions,
    idleTimeoutMs: m.idleTimeout,
    progressIntervalMs: m.progressInterval,
    maxFrameLength: m.maxPacketSize,
    unixSocketMode: parseInt(m.socketMode, 8),
    observer: metricsObserver(metrics, loggingObserver(log)),
    ...(afterTcpRead ? { afterTcpRead } : {}),
    ...(dup ? { duplicateDescriptor: dup, acceptsPerTurn: ACCEPTS_PER_TURN } : {}),
  });
  // Once the listener is bound, a signal's default action (exit at once) would cut sessions without a reply and
  // lose buffered log lines. The kernel accepts connections as soon as it binds, before our code runs again, so
  // the handlers go in first; a stop asked for while binding is carried out once bound.
  let http: MetricsServer | undefined;
  let phase: 'binding' | 'starting' | 'running' | 'stopping' = 'binding';
  let stopWhenBound: string | undefined;
  let reloadWhenStarted = false;
  let markStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (markStopped = resolve));
  const stop = (signal: string): void => {
    if (phase === 'binding') {
      stopWhenBound ??= signal;
      return;
    }
    if (phase === 'stopping') {
      // A second SIGTERM/SIGINT: stop now, the safe way (replies owed are tempfail), with the log flushed as usual.
      log.warn({ signal }, 'already stopping: the rest of milter.shutdownGrace is skipped, messages still in flight are tempfailed');
      void server.close(0);
      return;
    }
    phase = 'stopping';
    metrics.milterListening(false);
    log.info(
      { signal, sessions: server.sessionCount, waitingFor: server.sessionsInFlight },
      'stopping: no new connections; sessions between messages closed, waiting for those in a message (at most milter.shutdownGrace)',
    );
    server
      .close(config.milter.shutdownGrace)
      .then(async ({ tempfailed, cut }) => {
        if (tempfailed + cut > 0) {
          log.warn(
            { tempfailed, cut },
            'milter.shutdownGrace reached: messages in flight were answered tempfail (at their next command when between two); sessions silent 2 s more were closed (the MTA applies its milter default action)',
          );
        }
        await http?.close();
        await current.services.close();
      })
      .then(markStopped, (e: unknown) => {
        log.error({ err: e }, 'error while stopping');
        markStopped();
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (phase === 'stopping') log.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: stopping');
    else if (phase === 'binding' || phase === 'starting') {
      reloadWhenStarted = true;
      log.info({ signal: 'SIGHUP' }, 'SIGHUP during start-up: the config file is re-read once started');
    } else void reload();
  });

  const address = await server.listen(m.listen);
  metrics.milterListening(true);
  log.info({ listen: address, version }, 'milter listening');

  phase = 'starting';
  if (stopWhenBound !== undefined) stop(stopWhenBound);

  if (config.metrics.enabled && phase === 'starting') {
    http = new MetricsServer({ metrics, health: () => metrics.health(), offenders, onError: (err) => log.warn({ err }, 'metrics listener error') });
    try {
      const bound = await http.listen(config.metrics.port, config.metrics.address);
      log.info({ address: bound.address, port: bound.port }, 'metrics listening (/metrics, /healthz, /offenders)');
    } catch (e) {
      await server.close(0);
      throw e;
    }
  }

  // clamd down at start is a warning, not a reason to refuse to start: mail is tempfailed until it answers.
  const health = await current.services.scanner.checkNow();
  if (!health.up && phase === 'starting') {
    log.warn({ endpoints: health.endpoints.map((e) => ({ endpoint: e.endpoint, error: e.lastError })) }, 'no clamd endpoint answers: every message is tempfailed (4xx) until one does');
  }

  const reload = async (): Promise<void> => {
    if (options.configFile === undefined) {
      log.warn('SIGHUP ignored: running on the embedded defaults, there is no config file to re-read');
      return;
    }
    let next: GatewayConfig;
    try {
      next = await loadConfigFile(configSchema, options.configFile, options.overrides);
    } catch (e) {
      metrics.configReload(false);
      const problems = e instanceof ConfigError ? e.problems : [String(e)];
      log.error({ problems }, 'config reload refused; the running config stays in force');
      return;
    }
    // A stop that began while the file was read has closed the running services: building new ones now would
    // start clients (Redis, clamd probes) nothing closes.
    if (phase === 'stopping') {
      log.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: stopping');
      return;
    }
    for (const key of restartOnlyChanges(config, next)) log.warn({ key }, 'this setting changes only on restart');
    const old = current;
    current = newGeneration(next, old);
    server.setFilter(current.filter);
    server.setProgressInterval(next.milter.progressInterval);
    config = next;
    metrics.setBannedExtensions(next.attachments.bannedExtensions);
    metrics.configReload(true);
    old.retired = true;
    if (old.sessions === 0) await old.services.close();
    log.info({ file: options.configFile }, 'config reloaded: new sessions use it, open sessions finish with the old one');
  };

  if (phase === 'starting') phase = 'running';
  if (phase === 'running' && reloadWhenStarted) await reload();
  await stopped;
  log.info('stopped');
}
