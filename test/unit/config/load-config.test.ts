// Every config error names the file, the line and the key, and says what was expected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfigText } from 'postfix-milter-ts/config/load-config.js';
import { configSchema, DEFAULT_CONFIG } from 'postfix-milter-ts/config/schema.js';

function problems(text: string): string[] {
  try {
    parseConfigText(configSchema, text, 'gw.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

test('no file and an empty file give the embedded defaults: loopback listener, safe limits', () => {
  assert.deepEqual(parseConfigText(configSchema, '', 'gw.yaml'), DEFAULT_CONFIG);
  assert.deepEqual(parseConfigText(configSchema, '# nothing\n', 'gw.yaml'), DEFAULT_CONFIG);
  assert.equal(DEFAULT_CONFIG.milter.listen, 'inet:127.0.0.1:10031');
  assert.equal(DEFAULT_CONFIG.milter.progressInterval, 5000);
});

test('durations and sizes are read the way administrators write them', () => {
  const c = parseConfigText(configSchema, 'milter:\n  idleTimeout: 2m\n  progressInterval: 1500ms\n  shutdownGrace: 10\n  maxPacketSize: 2M\n', 'gw.yaml');
  assert.equal(c.milter.idleTimeout, 120_000);
  assert.equal(c.milter.progressInterval, 1500);
  assert.equal(c.milter.shutdownGrace, 10_000);
  assert.equal(c.milter.maxPacketSize, 2 * 1024 * 1024);
});

const CASES: ReadonlyArray<readonly [string, string, RegExp]> = [
  ['unknown top-level key', 'milter:\n  listen: inet:127.0.0.1:1\nrelays:\n  x: 1\n', /^gw\.yaml:3: \(top level\): unknown key 'relays'$/],
  ['unknown nested key', 'milter:\n  maxSessions: 5\n  maxSesions: 6\n', /^gw\.yaml:3: milter: unknown key 'maxSesions'$/],
  ['wrong type', 'milter:\n  maxSessions: many\n', /^gw\.yaml:2: milter\.maxSessions: expected number, got "many"$/],
  ['not a positive integer', 'milter:\n\n  maxSessions: -3\n', /^gw\.yaml:3: milter\.maxSessions: .*>0/],
  ['bad duration', 'milter:\n  idleTimeout: soon\n', /^gw\.yaml:2: milter\.idleTimeout: .*duration such as 30s/],
  ['bad listen address', 'milter:\n  listen: 127.0.0.1:10031\n', /^gw\.yaml:2: milter\.listen: listen address "127\.0\.0\.1:10031": unknown transport '127\.0\.0\.1'/],
  ['bad enum', 'log:\n  level: verbose\n', /^gw\.yaml:2: log\.level: .*"fatal"\|"error"\|"warn"\|"info"\|"debug"\|"trace"|^gw\.yaml:2: log\.level: .*fatal.*trace/],
  ['section not a mapping', 'milter: yes\n', /^gw\.yaml:1: milter: expected object, got "yes"$/],
  ['YAML syntax error', 'milter:\n  listen: [unclosed\n', /^gw\.yaml:\d+: YAML syntax: /],
  ['duplicate key', 'milter:\n  maxSessions: 1\n  maxSessions: 2\n', /^gw\.yaml:3: YAML syntax: Map keys must be unique/],
  ['bad socket mode', 'milter:\n  socketMode: rw-rw----\n', /^gw\.yaml:2: milter\.socketMode: an octal mode such as 0660$/],
];

for (const [what, text, expected] of CASES) {
  test(`refused with file, line and key: ${what}`, () => {
    const p = problems(text);
    assert.ok(p.some((line) => expected.test(line)), `got:\n${p.join('\n')}`);
  });
}

test('several problems are all reported, each on its own line', () => {
  const p = problems('milter:\n  maxSessions: 0\n  idleTimeout: x\nlog:\n  level: loud\n');
  assert.equal(p.length, 3);
  assert.deepEqual(
    p.map((l) => l.split(':').slice(0, 3).join(':')),
    ['gw.yaml:2: milter.maxSessions', 'gw.yaml:3: milter.idleTimeout', 'gw.yaml:5: log.level'],
  );
});
