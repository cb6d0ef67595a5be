#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ConfigError, loadConfigFile } from './config/load-config.js';
import { configSchema, DEFAULT_CONFIG, type GatewayConfig } from './config/schema.js';
import { createLogger } from './log.js';
import { serve } from './serve.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('postfix-milter-ts')
  .description('Mail gateway milter for Postfix and Sendmail')
  .version(pkg.version, '-V, --version');

program
  .command('serve')
  .description('run the milter (embedded defaults unless --config is given)')
  .option('-c, --config <file>', 'YAML config file')
  .addOption(new Option('-l, --listen <address>', 'listen address: inet:HOST:PORT, inet6:[HOST]:PORT or unix:/PATH').env('MILTER_LISTEN'))
  .action(async (opts: { config?: string; listen?: string }) => {
    let config: GatewayConfig;
    try {
      config = opts.config ? await loadConfigFile(configSchema, opts.config) : DEFAULT_CONFIG;
    } catch (e) {
      if (e instanceof ConfigError) {
        process.stderr.write(`postfix-milter-ts: ${e.message}\n`);
        process.exit(78); // EX_CONFIG
      }
      throw e;
    }
    if (opts.listen) config = { ...config, milter: { ...config.milter, listen: opts.listen } };
    const log = createLogger(config.log.level);
    try {
      await serve(config, log);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const hint =
        err.code === 'EADDRINUSE' ? ' (another process listens there: stop it or choose --listen)' : err.code === 'EACCES' ? ' (permission denied)' : '';
      process.stderr.write(`postfix-milter-ts: cannot start: ${err.message}${hint}\n`);
      process.exit(69); // EX_UNAVAILABLE
    }
  });

program
  .command('version')
  .description('print the version')
  .action(() => {
    process.stdout.write(`postfix-milter-ts ${pkg.version}\n`);
  });

await program.parseAsync();
