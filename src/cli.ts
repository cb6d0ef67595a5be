#!/usr/bin/env node
// The command line. Exit codes follow sysexits(3) where one fits: 64 usage, 69 unavailable, 78 config.
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { fetchOffenders, formatOffenders } from './commands/offenders.js';
import { scanFiles } from './commands/scan.js';
import { configureSweepQueueCommand } from './commands/sweep-queue.js';
import { configForFile } from './config/config-text.js';
import { ConfigError, loadConfigFile, parseConfigText } from './config/load-config.js';
import { configOverrides, type OverrideFlags } from './config/overrides.js';
import { configSchema, type GatewayConfig } from './config/schema.js';
import { createLogger } from './log.js';
import { MetricsListenError } from './metrics/metrics-server.js';
import { serve } from './serve.js';

const EX_USAGE = 64;
const EX_UNAVAILABLE = 69;
const EX_CONFIG = 78;

// `postfix-milter-ts scan *.eml | head`: a closed pipe ends the command quietly, as Unix tools do.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

function fail(message: string, code: number): never {
  process.stderr.write(`postfix-milter-ts: ${message}\n`);
  process.exit(code);
}

/** The config file (or the embedded defaults) with flag and environment overrides; exits 78 when invalid. */
async function readConfig(file: string | undefined, flags: OverrideFlags): Promise<GatewayConfig> {
  const overrides = configOverrides(flags);
  try {
    return file ? await loadConfigFile(configSchema, file, overrides) : parseConfigText(configSchema, '', '(embedded defaults)', overrides);
  } catch (e) {
    if (e instanceof ConfigError) fail(`invalid configuration:\n${e.message}`, EX_CONFIG);
    throw e;
  }
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const LOG_FLUSH_GRACE_MS = 2000;

/** The per-host settings `serve` and `check-config` take from flags (see config/overrides.ts). */
function withHostOptions(command: Command): Command {
  return command
    .addOption(new Option('-l, --listen <address>', 'milter address: inet:HOST:PORT, inet6:[HOST]:PORT or unix:/PATH (env MILTER_LISTEN)'))
    .addOption(new Option('--clamd <endpoint>', 'clamd endpoint, repeatable: unix:/PATH or inet:HOST:PORT (env CLAMD_ENDPOINTS, comma-separated)').argParser(collect))
    .addOption(new Option('--metrics-listen <host:port>', 'metrics listener, e.g. 127.0.0.1:10032 (env METRICS_LISTEN)'));
}

type HostOptions = { listen?: string; clamd?: string[]; metricsListen?: string };

const hostFlags = (opts: HostOptions): OverrideFlags => ({ listen: opts.listen, clamd: opts.clamd, metricsListen: opts.metricsListen });

const program = new Command()
  .name('postfix-milter-ts')
  .description('Mail gateway milter for Postfix and Sendmail: relay-abuse defense, attachment and ClamAV verdicts, Prometheus metrics')
  .version(`postfix-milter-ts ${pkg.version}`, '-V, --version')
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EX_USAGE));

withHostOptions(
  program
    .command('serve')
    .description('run the milter (on the embedded defaults unless --config is given); SIGHUP reloads, SIGTERM drains')
    .option('-c, --config <file>', 'YAML config file'),
)
  .action(async (opts: HostOptions & { config?: string }) => {
    const flags = hostFlags(opts);
    const config = await readConfig(opts.config, flags);
    const output = createLogger(config.log);
    const log = output.log;
    try {
      await serve({ config, configFile: opts.config, overrides: configOverrides(flags), version: pkg.version, log });
      // Stopped: the last lines get a bounded time to go out (a syslog daemon may be gone).
      await output.close(LOG_FLUSH_GRACE_MS);
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { address?: unknown };
      const flag = e instanceof MetricsListenError ? '--metrics-listen (or metrics.enabled: false)' : '--listen';
      // A UNIX socket in a directory that does not exist fails with EACCES or ENOENT; say which directory.
      const socketDir = typeof err.address === 'string' && err.address.startsWith('/') ? dirname(err.address) : undefined;
      const hint =
        socketDir !== undefined && !existsSync(socketDir)
          ? `: the directory ${socketDir} does not exist (create it for the milter user, or choose another with --listen)`
          : err.code === 'EADDRINUSE'
            ? `: the address is in use (another milter running? choose another with ${flag})`
            : err.code === 'EACCES'
              ? e instanceof MetricsListenError
                ? `: permission denied (a port below 1024: choose another with ${flag})`
                : ': permission denied (a port below 1024, or a socket directory the milter user cannot write)'
              : '';
      log.fatal({ err }, 'cannot start');
      await output.close(LOG_FLUSH_GRACE_MS);
      fail(`cannot start: ${err.message}${hint}`, EX_UNAVAILABLE);
    }
  });

withHostOptions(
  program
    .command('check-config')
    .description('validate a config file and print the effective configuration (defaults filled in) as YAML')
    .argument('[file]', 'YAML config file; without it, the embedded defaults')
    // The other commands name their file with --config; an administrator checking the file of a serve command
    // line should not have to rewrite it.
    .option('-c, --config <file>', 'the same, as serve takes it'),
)
  .action(async (positional: string | undefined, opts: HostOptions & { config?: string }) => {
    if (positional !== undefined && opts.config !== undefined && positional !== opts.config) {
      fail(`check-config: two different files given (${positional} and --config ${opts.config}); check one at a time`, EX_USAGE);
    }
    const file = positional ?? opts.config;
    const config = await readConfig(file, hostFlags(opts));
    // Output gets pasted into tickets and chats: a Redis password is not shown.
    const store = config.rateLimit.store;
    const password = /^(rediss?:\/\/[^:@/]*:)[^@/]+@/;
    const masked = store.type === 'redis' && password.test(store.url);
    const shown: GatewayConfig = masked ? { ...config, rateLimit: { ...config.rateLimit, store: { ...store, url: store.url.replace(password, '$1***@') } } } : config;
    process.stdout.write(
      `# ${file ?? 'embedded defaults'}: valid. The effective configuration, usable as a config file${masked ? ' (with the Redis password, shown as ***, put back)' : ''}:\n${stringify(configForFile(configSchema, shown))}`,
    );
  });

program
  .command('scan')
  .description('run the end-of-message verdict on .eml files offline; one JSON object per file. Exit 0 all accepted, 1 any refused, 2 on error')
  .argument('<files...>', 'messages as stored by an MTA (headers, blank line, body)')
  .option('-c, --config <file>', 'YAML config file (attachments, clamav, actions sections)')
  .addOption(new Option('--clamd <endpoint>', 'clamd endpoint, repeatable (env CLAMD_ENDPOINTS)').argParser(collect))
  .option('--no-virus-scan', 'attachment checks only, without clamd')
  .action(async (files: string[], opts: { config?: string; clamd?: string[]; virusScan: boolean }) => {
    const config = await readConfig(opts.config, { clamd: opts.clamd });
    const status = await scanFiles(files, config, { virusScan: opts.virusScan }, (r) => process.stdout.write(`${JSON.stringify(r)}\n`));
    process.exitCode = status;
  });

configureSweepQueueCommand(program.command('sweep-queue'));

program
  .command('offenders')
  .description("list the client addresses refused most often recently, from a running milter's metrics listener")
  .option('-c, --config <file>', 'YAML config file (to find the metrics listener)')
  .addOption(new Option('--metrics-listen <host:port>', 'metrics listener to ask (env METRICS_LISTEN)'))
  .option('--json', 'print the JSON as served')
  .action(async (opts: { config?: string; metricsListen?: string; json?: boolean }) => {
    const config = await readConfig(opts.config, { metricsListen: opts.metricsListen });
    try {
      const reply = await fetchOffenders(config.metrics.address, config.metrics.port);
      process.stdout.write(opts.json ? `${JSON.stringify(reply, null, 2)}\n` : `${formatOffenders(reply)}\n`);
    } catch (e) {
      fail((e as Error).message, EX_UNAVAILABLE);
    }
  });

program
  .command('version')
  .description('print the version')
  .action(() => {
    process.stdout.write(`postfix-milter-ts ${pkg.version}\n`);
  });

await program.parseAsync();
