// A reload applies a milter.*, metrics.* or log.* key, or says that it waits for a restart: never neither.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { RELOADED_KEYS, RESTART_ONLY_KEYS, restartOnlyChanges } from 'postfix-milter-ts/config/restart-only.js';
import { configSchema, DEFAULT_CONFIG } from 'postfix-milter-ts/config/schema.js';

const README = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');

function leafKeys(value: unknown, path: string): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [path];
  return Object.entries(value).flatMap(([k, v]) => leafKeys(v, `${path}.${k}`));
}

test('every milter.*, metrics.* and log.* key is either applied by a reload or restart-only', () => {
  const keys = (['milter', 'metrics', 'log'] as const).flatMap((section) => leafKeys(DEFAULT_CONFIG[section], section));
  assert.deepEqual([...RELOADED_KEYS, ...RESTART_ONLY_KEYS].sort(), keys.sort());
});

test('a reload names the restart-only keys it changes, and only those', () => {
  const next = configSchema.parse({
    milter: { listen: 'inet:127.0.0.1:20031', progressInterval: '1s', shutdownGrace: '5s' },
    metrics: { offenders: { size: 7 } },
    log: { syslog: { port: 1514 } },
    clamav: { endpoints: ['inet:127.0.0.1:3311'] },
  });
  assert.deepEqual(restartOnlyChanges(DEFAULT_CONFIG, next), ['milter.listen', 'metrics.offenders.size', 'log.syslog.port']);
  assert.deepEqual(restartOnlyChanges(DEFAULT_CONFIG, DEFAULT_CONFIG), []);
});

test("the README's Signals paragraph lists every restart-only key", () => {
  const signals = README.slice(README.indexOf('Signals:'), README.indexOf('## ', README.indexOf('Signals:')));
  for (const key of RESTART_ONLY_KEYS) assert.ok(signals.includes(`\`${key}\``) || signals.includes(`\`${key.split('.')[0]}.*\``), key);
});
