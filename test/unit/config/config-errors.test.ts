// Issue #6, "every config error case gives a message naming key and line": every section of the schema, unknown
// keys at every level, a wrong type at every key, bad durations/sizes/addresses/CIDRs/enums/ranges, overrides
// from flags and the environment, and the command line's exit codes (78 bad config, 69 cannot start, 0 clean stop).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { ConfigError, loadConfigFile, parseConfigText, type ConfigOverride } from 'postfix-milter-ts/config/load-config.js';
import { configOverrides } from 'postfix-milter-ts/config/overrides.js';
import { configForFile } from 'postfix-milter-ts/config/config-text.js';
import { configSchema, DEFAULT_CONFIG } from 'postfix-milter-ts/config/schema.js';
import { freeLoopbackPort } from '../../harness/free-port.js';
import { GatewayProcess } from '../../harness/gateway-process.js';
import { run, type CommandResult } from '../../harness/run-command.js';
import { literalPattern } from '../../harness/literal-pattern.js';

const FILE = 'gw.yaml';
/** One problem as the loader formats it: `FILE:LINE: key.path: what is wrong`. */
const PROBLEM = /^gw\.yaml:(\d+): ([^:]+): (.+)$/;

function problems(text: string, overrides: readonly ConfigOverride[] = []): string[] {
  try {
    parseConfigText(configSchema, text, FILE, overrides);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${String(e)}`);
    assert.ok(e.problems.length > 0);
    return [...e.problems];
  }
  assert.fail(`accepted:\n${text}`);
}

interface Parsed {
  readonly line: number;
  readonly key: string;
  readonly what: string;
}

function parsed(problem: string): Parsed | undefined {
  const m = PROBLEM.exec(problem);
  return m ? { line: Number(m[1]), key: m[2] as string, what: m[3] as string } : undefined;
}

/** Asserts one problem is at `line`, names `key` and says `what` (what was expected). */
function assertProblem(all: readonly string[], line: number, key: string, what: RegExp): void {
  const hit = all.map(parsed).find((p) => p !== undefined && p.line === line && p.key === key);
  assert.ok(hit, `no problem at line ${line} naming ${key}; got:\n${all.join('\n')}`);
  assert.match(hit.what, what, `line ${line} ${key}`);
}

/** The 1-based line of the first line of `text` matching `pattern`. */
function lineOf(text: string, pattern: RegExp): number {
  const i = text.split('\n').findIndex((l) => pattern.test(l));
  assert.ok(i >= 0, `no line matching ${pattern} in:\n${text}`);
  return i + 1;
}

// ---------------------------------------------------------------------------------------------------------
// Systematic: every mapping of the schema refuses an unknown key; every key refuses a value of the wrong type.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isMapping(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Records (free keys) rather than fixed mappings: `actions.byRule`. */
const RECORDS = new Set(['actions.byRule']);

/** Every fixed mapping (section, subsection…) of the effective config, by path. */
function mappings(value: Json, path: string[] = []): string[][] {
  if (!isMapping(value) || RECORDS.has(path.join('.'))) return [];
  return [path, ...Object.entries(value).flatMap(([k, v]) => mappings(v, [...path, k]))];
}

/** Every key that holds a value (scalar, list or record), by path. */
function leaves(value: Json, path: string[] = []): string[][] {
  if (!isMapping(value) || RECORDS.has(path.join('.'))) return path.length > 0 ? [path] : [];
  return Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]));
}

function at(value: Json, path: readonly string[]): Json {
  let v = value;
  for (const k of path) v = isMapping(v) ? (v[k] as Json) : null;
  return v;
}

/** `{a: {b: {c: leaf}}}` for path [a, b, c]. */
function nest(path: readonly string[], leaf: Json): Json {
  return path.reduceRight<Json>((inner, key) => ({ [key]: inner }), leaf);
}

// As a config file writes them (durations and sizes with units): the cases below are files.
const DEFAULTS = JSON.parse(JSON.stringify(configForFile(configSchema, DEFAULT_CONFIG))) as Json;
const SECTIONS = ['milter', 'relay', 'rateLimit', 'attachments', 'clamav', 'actions', 'metrics', 'log'];

test('the cases below cover every section of the schema', () => {
  assert.deepEqual(Object.keys(DEFAULT_CONFIG).sort(), [...SECTIONS].sort());
  assert.deepEqual(Object.keys(configSchema.shape).sort(), [...SECTIONS].sort());
});

describe('an unknown key is refused at every level, naming the level and the line of the key', () => {
  const all = mappings(DEFAULTS);
  test('every mapping of the schema is checked', () => {
    // top level, 8 sections, log.syslog, metrics.offenders, attachments.archives, actions.scannedHeader,
    // rateLimit.store/untrusted/trusted/authenticated and their limits.
    assert.ok(all.length >= 20, `only ${all.length} mappings`);
  });
  for (const path of all) {
    const where = path.length === 0 ? '(top level)' : path.join('.');
    test(where, () => {
      // The mapping with its own defaults (so the unknown key is the only problem) plus a misspelt key.
      const own = at(DEFAULTS, path);
      assert.ok(isMapping(own));
      const scalarSiblings = Object.fromEntries(Object.entries(own).filter(([, v]) => !isMapping(v)));
      const text = stringify(nest(path, { ...scalarSiblings, misspeltKey: 1 }));
      const p = problems(text);
      assert.equal(p.length, 1, p.join('\n'));
      assertProblem(p, lineOf(text, /^\s*misspeltKey:/), where, /^unknown key 'misspeltKey'$/);
    });
  }
});

describe('a value of the wrong type is refused at every key, naming the key, its line and what was expected', () => {
  const all = leaves(DEFAULTS);
  test('every key of the schema is checked', () => {
    assert.ok(all.length >= 80, `only ${all.length} keys`);
  });
  for (const path of all) {
    const key = path.join('.');
    test(key, () => {
      // A mapping where a scalar or list belongs; a list where a record belongs.
      const wrong: Json = RECORDS.has(key) ? ['x'] : { oops: 1 };
      const text = stringify(nest(path, wrong));
      const leafLine = lineOf(text, new RegExp(`^${' '.repeat(2 * (path.length - 1))}${path.at(-1) ?? ''}:`));
      assertProblem(problems(text), leafLine, key, /expected/i);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// By hand: what administrators get wrong, section by section. [section, what, yaml, line, key, expected text]

type Case = readonly [section: string, what: string, yaml: string, line: number, key: string, expected: RegExp];

const CASES: readonly Case[] = [
  // milter
  ['milter', 'listen without a transport', 'milter:\n  listen: 127.0.0.1:10031\n', 2, 'milter.listen', /unknown transport '127\.0\.0\.1'.*expected inet:HOST:PORT/],
  ['milter', 'relative UNIX socket path', 'milter:\n  listen: unix:milter.sock\n', 2, 'milter.listen', /must be absolute/],
  ['milter', 'listen port out of range', 'milter:\n  listen: inet:127.0.0.1:70000\n', 2, 'milter.listen', /port/],
  ['milter', 'bad duration', '# comment\nmilter:\n  idleTimeout: 10 minutes\n', 3, 'milter.idleTimeout', /a duration such as 30s, 5m or 250ms/],
  ['milter', 'negative duration', 'milter:\n  shutdownGrace: -1\n', 2, 'milter.shutdownGrace', />=0/],
  ['milter', 'duration over what a timer can hold', 'milter:\n  idleTimeout: 25d\n', 2, 'milter.idleTimeout', /^at most 24d \(a bare number is seconds\)$/],
  ['milter', 'milliseconds written as a bare number (read as seconds)', 'milter:\n  progressInterval: 5000000\n', 2, 'milter.progressInterval', /at most 24d/],
  ['milter', 'duration of the wrong type', 'milter:\n  progressInterval: true\n', 2, 'milter.progressInterval', /expected number or string, got true/],
  ['milter', 'bad size', 'milter:\n  maxPacketSize: 10X\n', 2, 'milter.maxPacketSize', /a size such as 512K, 10M or 1G/],
  ['milter', 'fractional count', 'milter:\n  maxSessions: 2.5\n', 2, 'milter.maxSessions', /int/i],
  ['milter', 'quoted boolean', 'milter:\n  tcpQuickAck: "yes"\n', 2, 'milter.tcpQuickAck', /expected boolean, got "yes"/],
  ['milter', 'bad socket mode', 'milter:\n  socketMode: "0999"\n', 2, 'milter.socketMode', /an octal mode such as 0660/],
  // relay
  ['relay', 'CIDR prefix too long', 'relay:\n  trustedNetworks: [10.0.0.0/33]\n', 2, 'relay.trustedNetworks.0', /'10\.0\.0\.0\/33' is not an IPv4 or IPv6 address or CIDR/],
  ['relay', 'bad CIDR as the second list item', 'relay:\n  trustedNetworks:\n    - 10.0.0.0/8\n    - 10.0.0.0/8/8\n', 4, 'relay.trustedNetworks.1', /not an IPv4 or IPv6 address or CIDR/],
  ['relay', 'IPv6 CIDR prefix too long', 'relay:\n  trustedNetworks: ["2001:db8::/129"]\n', 2, 'relay.trustedNetworks.0', /not an IPv4 or IPv6 address or CIDR/],
  // A whole address family in trustedNetworks is an open relay, however it is written.
  ['relay', 'every IPv4 address', 'relay:\n  trustedNetworks:\n    - 127.0.0.0/8\n    - 0.0.0.0/0\n', 4, 'relay.trustedNetworks.1', /^'0\.0\.0\.0\/0' covers every IPv4 address: trusting it makes an open relay/],
  ['relay', 'every IPv6 address', 'relay:\n  trustedNetworks: ["::/0"]\n', 2, 'relay.trustedNetworks.0', /^'::\/0' covers every IPv6 address: trusting it makes an open relay/],
  ['relay', 'every IPv4 address, IPv4-mapped (Postfix matches no client with it)', 'relay:\n  trustedNetworks: ["::ffff:0:0/96"]\n', 2, 'relay.trustedNetworks.0', /^'::ffff:0:0\/96' covers every IPv4 address/],
  ['relay', 'a shorter IPv4-mapped prefix', 'relay:\n  trustedNetworks: ["::ffff:0.0.0.0/90"]\n', 2, 'relay.trustedNetworks.0', /covers every IPv4 address/],
  ['relay', 'a /0 written with a host part', 'relay:\n  trustedNetworks: [192.0.2.0/0]\n', 2, 'relay.trustedNetworks.0', /covers every IPv4 address/],
  ['relay', 'host name as a network', 'relay:\n  trustedNetworks: [mail.example.com]\n', 2, 'relay.trustedNetworks.0', /not an IPv4 or IPv6 address or CIDR/],
  ['relay', 'own address that is no address', 'relay:\n  ownAddresses: [gateway.example.com]\n', 2, 'relay.ownAddresses.0', /is not an IPv4 or IPv6 address/],
  ['relay', 'bad domain', 'relay:\n  localDomains:\n    - example.com\n    - "exa mple.com"\n', 4, 'relay.localDomains.1', /a domain such as example\.com/],
  ['relay', 'domain with an empty label', 'relay:\n  relayDomains: [bad..example]\n', 2, 'relay.relayDomains.0', /a domain such as example\.com/],
  ['relay', 'empty next hop', 'relay:\n  relayNextHops: ["  "]\n', 2, 'relay.relayNextHops.0', /a host name or address/],
  ['relay', 'zero recipients for bounces', 'relay:\n  nullSenderMaxRecipients: 0\n', 2, 'relay.nullSenderMaxRecipients', />0/],
  ['relay', 'number as a boolean', 'relay:\n  trustUnknownClientAddress: 1\n', 2, 'relay.trustUnknownClientAddress', /expected boolean, got 1/],
  ['relay', 'a list written as a string', 'relay:\n  trustedNetworks: 10.0.0.0/8\n', 2, 'relay.trustedNetworks', /expected array, got "10\.0\.0\.0\/8"/],
  // rateLimit
  ['rateLimit', 'bad window', 'rateLimit:\n  untrusted:\n    connections:\n      limit: 5\n      window: forever\n', 5, 'rateLimit.untrusted.connections.window', /a duration such as 30s/],
  ['rateLimit', 'limit without its window', 'rateLimit:\n  untrusted:\n    connections:\n      limit: 5\n', 3, 'rateLimit.untrusted.connections.window', /missing: expected number or string/],
  ['rateLimit', 'window without its limit', 'rateLimit:\n  trusted:\n    messages:\n      window: 1h\n', 3, 'rateLimit.trusted.messages.limit', /missing: expected number/],
  ['rateLimit', 'zero limit', 'rateLimit:\n  trusted:\n    recipients: { limit: 0, window: 1h }\n', 3, 'rateLimit.trusted.recipients.limit', />0/],
  ['rateLimit', 'prefix length out of range', 'rateLimit:\n  ipv4PrefixLength: 33\n', 2, 'rateLimit.ipv4PrefixLength', /<=32/],
  ['rateLimit', 'IPv6 prefix too short', 'rateLimit:\n  ipv6PrefixLength: 8\n', 2, 'rateLimit.ipv6PrefixLength', />=16/],
  ['rateLimit', 'unknown store type', 'rateLimit:\n  store:\n    type: memcached\n', 3, 'rateLimit.store.type', /Expected 'memory' \| 'redis'/],
  ['rateLimit', 'redis URL with another scheme', 'rateLimit:\n  store:\n    type: redis\n    url: http://127.0.0.1:6379\n', 4, 'rateLimit.store.url', /a redis:\/\/ or rediss:\/\/ URL/],
  ['rateLimit', 'bad redis fallback', 'rateLimit:\n  store:\n    type: redis\n    fallback: drop\n', 4, 'rateLimit.store.fallback', /expected one of "local"\|"tempfail"/],
  ['rateLimit', 'redis key of the memory store', 'rateLimit:\n  store:\n    type: memory\n    url: redis://x\n', 4, 'rateLimit.store', /unknown key 'url'/],
  ['rateLimit', 'connections for authenticated clients (counted by address)', 'rateLimit:\n  authenticated:\n    connections: {limit: 5}\n', 3, 'rateLimit.authenticated', /unknown key 'connections'/],
  ['rateLimit', 'too few keys', 'rateLimit:\n  maxKeys: 10\n', 2, 'rateLimit.maxKeys', />=100/],
  // attachments
  ['attachments', 'extension with a space', 'attachments:\n  bannedExtensions: [".e x e"]\n', 2, 'attachments.bannedExtensions.0', /an extension: letters, digits/],
  ['attachments', 'allowed extension with a path', 'attachments:\n  allowedExtensions:\n    - cab\n    - a/b\n', 4, 'attachments.allowedExtensions.1', /an extension/],
  ['attachments', 'extension list written as a string', 'attachments:\n  bannedExtensions: exe\n', 2, 'attachments.bannedExtensions', /expected array, got "exe"/],
  ['attachments', 'unknown dangerous type', 'attachments:\n  dangerousTypes: [pe, exe]\n', 2, 'attachments.dangerousTypes.1', /expected one of "pe"\|"elf"/],
  ['attachments', 'archive depth 0', 'attachments:\n  archives:\n    maxDepth: 0\n', 3, 'attachments.archives.maxDepth', />=1/],
  ['attachments', 'archive policy not reject/allow', 'attachments:\n  archives:\n    encrypted: quarantine\n', 3, 'attachments.archives.encrypted', /expected one of "reject"\|"allow"/],
  ['attachments', 'compression ratio below 2', 'attachments:\n  archives:\n    maxCompressionRatio: 1\n', 3, 'attachments.archives.maxCompressionRatio', />=2/],
  // clamav
  ['clamav', 'no endpoint', 'clamav:\n  endpoints: []\n', 2, 'clamav.endpoints', /at least one clamd endpoint/],
  ['clamav', 'endpoint port out of range', 'clamav:\n  endpoints:\n    - unix:/run/clamav/clamd.ctl\n    - inet:127.0.0.1:99999\n', 4, 'clamav.endpoints.1', /clamd endpoint "inet:127\.0\.0\.1:99999": port '99999'/],
  ['clamav', 'endpoint on port 0', 'clamav:\n  endpoints: [inet:127.0.0.1:0]\n', 2, 'clamav.endpoints.0', /port 0/],
  ['clamav', 'endpoint without a transport', 'clamav:\n  endpoints: [/run/clamav/clamd.ctl]\n', 2, 'clamav.endpoints.0', /expected unix:\/PATH, inet:HOST:PORT/],
  ['clamav', 'bad deadline', 'clamav:\n  scanDeadline: 2 minutes\n', 2, 'clamav.scanDeadline', /a duration such as 30s/],
  ['clamav', 'bad size', 'clamav:\n  maxScanBytes: lots\n', 2, 'clamav.maxScanBytes', /a size such as 512K/],
  ['clamav', 'chunk larger than the scan limit', 'clamav:\n  maxScanBytes: 1M\n  chunkSize: 2M\n', 3, 'clamav.chunkSize', /chunkSize must be more than 0 and at most maxScanBytes/],
  ['clamav', 'zero scans at once', 'clamav:\n  maxConcurrentScans: 0\n', 2, 'clamav.maxConcurrentScans', />0/],
  // actions
  ['actions', 'unknown action', 'actions:\n  virus: bounce\n', 2, 'actions.virus', /expected one of "reject"\|"tempfail"\|"discard"\|"quarantine"\|"tag"/],
  ['actions', 'bad rule name', 'actions:\n  byRule:\n    Encrypted_Archive: reject\n', 3, 'actions.byRule.Encrypted_Archive', /invalid key "Encrypted_Archive": a rule name such as encrypted-archive/],
  ['actions', 'bad action for a rule', 'actions:\n  byRule:\n    encrypted-archive: delete\n', 3, 'actions.byRule.encrypted-archive', /expected one of "reject"/],
  ['actions', 'oversize cannot be tagged', 'actions:\n  oversize: tag\n', 2, 'actions.oversize', /expected one of "reject"\|"tempfail"\|"accept"/],
  ['actions', 'header name with a space and colon', 'actions:\n  scannedHeader:\n    name: "X Scanned: yes"\n', 3, 'actions.scannedHeader.name', /a header field name/],
  ['actions', 'empty header value', 'actions:\n  scannedHeader:\n    value: ""\n', 3, 'actions.scannedHeader.value', />=1/],
  ['actions', 'bad tag header prefix', 'actions:\n  tagHeaderPrefix: "X:Gw"\n', 2, 'actions.tagHeaderPrefix', /a header field name prefix/],
  // metrics
  ['metrics', 'host name as an address', 'metrics:\n  address: localhost\n', 2, 'metrics.address', /an IP address such as 127\.0\.0\.1 or ::1 \(no host names\)/],
  ['metrics', 'port out of range', 'metrics:\n  port: 70000\n', 2, 'metrics.port', /<=65535/],
  ['metrics', 'port as a string', 'metrics:\n  port: "10032"\n', 2, 'metrics.port', /expected number, got "10032"/],
  ['metrics', 'offenders window under a minute', 'metrics:\n  offenders:\n    window: 10s\n', 3, 'metrics.offenders.window', /at least 1m/],
  ['metrics', 'offenders window not a duration', 'metrics:\n  offenders:\n    window: hourly\n', 3, 'metrics.offenders.window', /a duration such as 30s/],
  ['metrics', 'too many buckets', 'metrics:\n  offenders:\n    buckets: 61\n', 3, 'metrics.offenders.buckets', /<=60/],
  // log
  ['log', 'unknown level', 'log:\n  level: verbose\n', 2, 'log.level', /expected one of "fatal"\|"error"\|"warn"\|"info"\|"debug"\|"trace"/],
  ['log', 'unknown destination', 'log:\n  destination: file\n', 2, 'log.destination', /expected one of "stdout"\|"syslog"/],
  ['log', 'syslog over another protocol', 'log:\n  syslog:\n    protocol: sctp\n', 3, 'log.syslog.protocol', /expected one of "udp"\|"tcp"/],
  ['log', 'syslog tag with a space', 'log:\n  syslog:\n    tag: "my milter"\n', 3, 'log.syslog.tag', /a short program name/],
  ['log', 'syslog port 0', 'log:\n  syslog:\n    port: 0\n', 3, 'log.syslog.port', />=1/],
  ['log', 'empty syslog host', 'log:\n  syslog:\n    host: ""\n', 3, 'log.syslog.host', />=1/],
  // the file as a whole
  ['(file)', 'a list instead of a mapping', '- milter\n- relay\n', 1, '(top level)', /expected object, got \["milter","relay"\]/],
  ['(file)', 'a section that is not a mapping', 'relay: yes\n', 1, 'relay', /expected object, got "yes"/],
  ['(file)', 'a section that is a list', 'clamav:\n  - inet:127.0.0.1:3310\n', 1, 'clamav', /expected object/],
];

describe('each mistake is refused with file, line, key and what was expected', () => {
  test('every section has hand-written cases', () => {
    for (const s of SECTIONS) assert.ok(CASES.some(([section]) => section === s), `no case for ${s}`);
  });
  for (const [section, what, yaml, line, key, expected] of CASES) {
    test(`${section}: ${what}`, () => {
      const p = problems(yaml);
      for (const one of p) assert.match(one, PROBLEM, 'every problem is FILE:LINE: key: text');
      assertProblem(p, line, key, expected);
    });
  }
});

describe('YAML that does not parse names the line', () => {
  // [what, text, lines the parser may name (the mistake's, or the next where it notices), message]
  const SYNTAX: ReadonlyArray<readonly [string, string, readonly number[], RegExp]> = [
    ['a duplicate key', 'milter:\n  maxSessions: 1\n  maxSessions: 2\n', [3], /Map keys must be unique/],
    ['a duplicate section', 'log:\n  level: info\nmetrics:\n  port: 1\nlog:\n  level: warn\n', [5], /Map keys must be unique/],
    ['an unclosed flow list', 'relay:\n  trustedNetworks: [10.0.0.0/8\nlog:\n  level: info\n', [2, 3], /end with a \]/],
    ['a tab for indentation', 'milter:\n\tmaxSessions: 5\n', [2], /tab/i],
    ['a bad indentation', 'milter:\n  maxSessions: 5\n   idleTimeout: 5s\n', [2, 3], /./],
  ];
  for (const [what, yaml, lines, expected] of SYNTAX) {
    test(what, () => {
      const p = problems(yaml);
      const m = /^gw\.yaml:(\d+): YAML syntax: (.+)$/.exec(p[0] ?? '');
      assert.ok(m, p.join('\n'));
      assert.ok(lines.includes(Number(m[1])), p.join('\n'));
      assert.match(m[2] ?? '', expected);
    });
  }
});

test('an alias bomb is refused with the file and a line, not a crash', () => {
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (const [i, name] of ['b', 'c', 'd', 'e', 'f', 'g'].entries()) lines.push(`${name}: &${name} [${Array(10).fill(`*${['a', 'b', 'c', 'd', 'e', 'f'][i]}`).join(', ')}]`);
  const p = problems(`${lines.join('\n')}\n`);
  assert.equal(p.length, 1, p.join('\n'));
  assert.match(p[0] ?? '', /^gw\.yaml:1: YAML: Excessive alias count/);
});

test('a key left empty (its keys all commented out) takes its defaults, like a key not written', () => {
  const text = 'metrics:\n  # enabled: true\n  # port: 10032\nmilter:\n  progressInterval:\n';
  assert.deepEqual(parseConfigText(configSchema, text, 'gw.yaml'), DEFAULT_CONFIG);
});

test("check-config's effective configuration is a config file that reads back the same", () => {
  const custom = parseConfigText(configSchema, 'milter:\n  idleTimeout: 90s\nrateLimit:\n  store:\n    type: redis\n    url: redis://127.0.0.1:6390\n    commandTimeout: 300ms\nclamav:\n  maxScanBytes: 1500K\n', 'gw.yaml');
  for (const config of [DEFAULT_CONFIG, custom]) {
    const text = stringify(configForFile(configSchema, config));
    assert.deepEqual(parseConfigText(configSchema, text, 'effective.yaml'), config);
  }
  const shown = configForFile(configSchema, custom) as { milter: { idleTimeout: unknown }; clamav: { maxScanBytes: unknown; chunkSize: unknown } };
  assert.deepEqual([shown.milter.idleTimeout, shown.clamav.maxScanBytes, shown.clamav.chunkSize], ['90s', '1500K', '64K']);
});

test('several mistakes in different sections are all reported, each with its own line, in file order', () => {
  const text = ['milter:', '  listen: 127.0.0.1:1', 'relay:', '  trustedNetworks: [300.1.1.1/8]', 'clamav:', '  scanDeadline: later', 'log:', '  levl: info', ''].join('\n');
  const p = problems(text).map(parsed);
  assert.deepEqual(
    p.map((x) => x && `${x.line} ${x.key}`),
    ['2 milter.listen', '4 relay.trustedNetworks.0', '6 clamav.scanDeadline', '8 log'],
  );
});

test('values from flags and the environment are checked too and named by where they came from', () => {
  const fromFlag = problems('', configOverrides({ listen: 'localhost:10031' }, {}));
  assert.equal(fromFlag.length, 1);
  assert.match(fromFlag[0] ?? '', /^--listen: milter\.listen: listen address "localhost:10031"/);
  const fromEnv = problems('', configOverrides({}, { CLAMD_ENDPOINTS: 'unix:/run/clamav/clamd.ctl, 127.0.0.1' }));
  assert.match(fromEnv.join('\n'), /^environment CLAMD_ENDPOINTS: clamav\.endpoints\.1: clamd endpoint "127\.0\.0\.1"/m);
  const metrics = problems('', configOverrides({ metricsListen: 'localhost:9100' }, {}));
  assert.match(metrics.join('\n'), /^--metrics-listen: metrics\.address: an IP address/m);
  // The file's own mistakes keep their line next to an override's.
  const both = problems('log:\n  level: loud\n', configOverrides({}, { MILTER_LISTEN: 'inet:127.0.0.1' }));
  assert.ok(both.includes('gw.yaml:2: log.level: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"'), both.join('\n'));
  assert.ok(both.some((l) => l.startsWith('environment MILTER_LISTEN: milter.listen: ')), both.join('\n'));
  // A good override replaces the file's value without complaint.
  const ok = parseConfigText(configSchema, 'milter:\n  listen: 127.0.0.1:1\n', FILE, configOverrides({ listen: 'inet:127.0.0.1:2' }, {}));
  assert.equal(ok.milter.listen, 'inet:127.0.0.1:2');
});

// ipaddr.js's isValid() accepts the old inet_aton shorthands; the schema insists on four decimal parts so
// these typos are refused instead of being read as other addresses.
test('IPv4 shorthand (inet_aton forms) is refused as an address or network', () => {
  assert.ok(problems('relay:\n  ownAddresses: [192.168.1]\n').some((l) => l.startsWith('gw.yaml:2: relay.ownAddresses.0: ')));
  assert.ok(problems('relay:\n  trustedNetworks: [10.1/16]\n').some((l) => l.startsWith('gw.yaml:2: relay.trustedNetworks.0: ')));
});

test('a config file that cannot be read is named, with why', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pmt-config-errors-'));
  try {
    await assert.rejects(loadConfigFile(configSchema, join(dir, 'missing.yaml')), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.message, `${join(dir, 'missing.yaml')}: cannot read the config file (no such file)`);
      return true;
    });
    await assert.rejects(loadConfigFile(configSchema, dir), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${dir}: cannot read the config file (`));
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'metrics:\n  enabled: true\n  port: -1\n');
    await assert.rejects(loadConfigFile(configSchema, file), (e: unknown) => e instanceof ConfigError && e.problems[0] === `${file}:3: metrics.port: Too small: expected number to be >=0`);
    // Text that is not UTF-8 is refused, not read with replacement characters.
    const utf16 = join(dir, 'utf16.yaml');
    await writeFile(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('relay:\n  localDomains: [x.test]\n', 'utf16le')]));
    await assert.rejects(loadConfigFile(configSchema, utf16), (e: unknown) => e instanceof ConfigError && e.problems[0] === `${utf16}:1: not UTF-8 text (UTF-16? save the file as UTF-8)`);
    const latin1 = join(dir, 'latin1.yaml');
    await writeFile(latin1, Buffer.from('relay:\n  # M\u00fcller GmbH\n  localDomains: [x.test]\n', 'latin1'));
    await assert.rejects(loadConfigFile(configSchema, latin1), (e: unknown) => e instanceof ConfigError && e.problems[0] === `${latin1}:2: bytes that are not UTF-8 (Latin-1? save the file as UTF-8)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// The command line.

const CLI = new URL('../../../../dist/cli.js', import.meta.url).pathname;

function cli(args: readonly string[], env: Readonly<Record<string, string>> = {}, timeoutMs = 20_000, asUser?: { uid: number; gid: number }): Promise<CommandResult> {
  // Per-host variables of the caller must not leak into what is being tested.
  const base = { ...process.env };
  for (const k of ['MILTER_LISTEN', 'CLAMD_ENDPOINTS', 'METRICS_LISTEN']) delete base[k];
  return run(process.execPath, [CLI, ...args], { env: { ...base, ...env }, timeoutMs, ...(asUser ? { user: asUser } : {}) });
}

describe('command line', () => {
  let dir = '';
  /** A port nobody listens on (bound, then released). */
  let deadPort = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pmt-cli-'));
    deadPort = await freeLoopbackPort();
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  test('check-config BAD.yaml exits 78 (EX_CONFIG) with FILE:LINE: key on stderr, nothing on stdout', async () => {
    const bad = await file('bad.yaml', 'milter:\n  listen: inet:127.0.0.1:10031\nclamav:\n  endpoints:\n    - inet:127.0.0.1:3310\n  scanDeadline: 2 minutes\nlog:\n  level: chatty\n');
    const r = await cli(['check-config', bad]);
    assert.equal(r.code, 78, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^postfix-milter-ts: invalid configuration:$/m);
    const lines = r.stderr.split('\n');
    assert.ok(lines.includes(`${bad}:6: clamav.scanDeadline: a duration such as 30s, 5m or 250ms`), r.stderr);
    assert.ok(lines.some((l) => l.startsWith(`${bad}:8: log.level: `)), r.stderr);
  });

  test('check-config takes the file as serve does (--config FILE) too; two different files are a usage error', async () => {
    const bad = await file('bad-flag.yaml', 'milter:\n  maxSessions: -3\n');
    const r = await cli(['check-config', '--config', bad]);
    assert.equal(r.code, 78, r.stderr);
    assert.ok(r.stderr.split('\n').some((l) => l.startsWith(`${bad}:2: milter.maxSessions: `)), r.stderr);
    const good = await file('good-flag.yaml', 'milter:\n  maxSessions: 7\n');
    const g = await cli(['check-config', '-c', good]);
    assert.equal(g.code, 0, g.stderr);
    assert.equal((parse(g.stdout) as typeof DEFAULT_CONFIG).milter.maxSessions, 7);
    const same = await cli(['check-config', good, '--config', good]);
    assert.equal(same.code, 0, same.stderr);
    const two = await cli(['check-config', good, '--config', bad]);
    assert.equal(two.code, 64, two.stderr);
    assert.equal(two.stdout, '');
    assert.match(two.stderr, /two different files given/);
  });

  test('check-config with a YAML syntax error exits 78 naming the line', async () => {
    const bad = await file('syntax.yaml', 'relay:\n  localDomains: [example.com\n');
    const r = await cli(['check-config', bad]);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, new RegExp(`^${literalPattern(bad)}:\\d+: YAML syntax: `, 'm'));
  });

  test('check-config GOOD.yaml exits 0 printing the effective config: the file, then the defaults filled in', async () => {
    const good = await file('good.yaml', 'milter:\n  idleTimeout: 2m\n  maxPacketSize: 2M\nrelay:\n  localDomains: [Example.COM]\nattachments:\n  bannedExtensions: [.EXE, scr]\n');
    const r = await cli(['check-config', good]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, new RegExp(`^# ${literalPattern(good)}: valid\\.`));
    // Durations and sizes as a config file writes them; the whole output reads back as the same config.
    const shown = parse(r.stdout) as { milter: { idleTimeout: unknown; maxPacketSize: unknown } };
    assert.deepEqual([shown.milter.idleTimeout, shown.milter.maxPacketSize], ['2m', '2M']);
    const effective = parseConfigText(configSchema, r.stdout, 'stdout');
    assert.equal(effective.milter.idleTimeout, 120_000);
    assert.equal(effective.milter.maxPacketSize, 2 * 1024 * 1024);
    assert.deepEqual(effective.relay.localDomains, ['example.com']);
    assert.deepEqual(effective.attachments.bannedExtensions, ['exe', 'scr']);
    // Everything not in the file is the embedded default.
    assert.deepEqual(effective.clamav, DEFAULT_CONFIG.clamav);
    assert.deepEqual(effective.rateLimit, DEFAULT_CONFIG.rateLimit);
    assert.deepEqual(effective.log, DEFAULT_CONFIG.log);
    assert.equal(effective.milter.listen, DEFAULT_CONFIG.milter.listen);
  });

  test('check-config does not print a Redis password', async () => {
    const withPassword = await file('redis.yaml', 'rateLimit:\n  store:\n    type: redis\n    url: redis://pmtuser:s3cret@127.0.0.1:6390\n');
    const r = await cli(['check-config', withPassword]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /s3cret/);
    assert.match(r.stdout, /^ {4}url: redis:\/\/pmtuser:\*\*\*@127\.0\.0\.1:6390$/m);
    assert.match(r.stdout, /^# .*Redis password, shown as \*\*\*, put back/);
  });

  test('check-config without a file prints the embedded defaults; flags and environment override the file', async () => {
    const r = await cli(['check-config']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseConfigText(configSchema, r.stdout, 'stdout'), DEFAULT_CONFIG);
    const good = await file('per-host.yaml', 'milter:\n  listen: inet:127.0.0.1:10031\n');
    const o = await cli(['check-config', good, '--listen', 'unix:/run/pmt/milter.sock', '--metrics-listen', '[::1]:9999'], { CLAMD_ENDPOINTS: 'inet:127.0.0.1:3311' });
    assert.equal(o.code, 0, o.stderr);
    const effective = parse(o.stdout) as typeof DEFAULT_CONFIG;
    assert.equal(effective.milter.listen, 'unix:/run/pmt/milter.sock');
    assert.deepEqual(effective.clamav.endpoints, ['inet:127.0.0.1:3311']);
    assert.equal(effective.metrics.address, '::1');
    assert.equal(effective.metrics.port, 9999);
  });

  test('a bad --listen or MILTER_LISTEN exits 78 naming the flag or the variable', async () => {
    const flag = await cli(['check-config', '--listen', '10031']);
    assert.equal(flag.code, 78, flag.stderr);
    assert.match(flag.stderr, /^--listen: milter\.listen: listen address "10031"/m);
    const env = await cli(['serve'], { MILTER_LISTEN: 'inet:localhost' });
    assert.equal(env.code, 78, env.stderr);
    assert.match(env.stderr, /^environment MILTER_LISTEN: milter\.listen: /m);
  });

  test('serve with a config file that cannot be read exits 78 saying why', async () => {
    const missing = join(dir, 'nowhere.yaml');
    const r = await cli(['serve', '--config', missing]);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, new RegExp(`${literalPattern(missing)}: cannot read the config file \\(no such file\\)`));
    const directory = await cli(['serve', '--config', dir]);
    assert.equal(directory.code, 78, directory.stderr);
    assert.match(directory.stderr, /cannot read the config file \(a directory\)/);
  });

  test('serve with an unreadable (mode 000) config exits 78: permission denied', async () => {
    const locked = await file('locked.yaml', 'log:\n  level: info\n');
    await chmod(locked, 0o000);
    // Root reads any file: as root, run the command as `nobody`, as a service user would be.
    await chmod(dir, 0o755);
    const r = await cli(['serve', '--config', locked], {}, 20_000, process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /cannot read the config file \(permission denied\)/);
  });

  test('serve with an invalid config exits 78 before listening', async () => {
    const bad = await file('serve-bad.yaml', `milter:\n  listen: inet:127.0.0.1:${deadPort}\nmetrics:\n  enabled: true\n  port: 0\nactions:\n  virus: shrug\n`);
    const r = await cli(['serve', '--config', bad]);
    assert.equal(r.code, 78, r.stderr);
    assert.ok(r.stderr.split('\n').some((l) => l.startsWith(`${bad}:7: actions.virus: `)), r.stderr);
    assert.doesNotMatch(r.stdout, /milter listening/);
  });

  test('serve --listen on an address in use exits 69 with a clear message', async () => {
    const occupier = net.createServer();
    await new Promise<void>((resolve) => occupier.listen(0, '127.0.0.1', resolve));
    const port = (occupier.address() as net.AddressInfo).port;
    try {
      const cfg = await file('in-use.yaml', `clamav:\n  endpoints: [inet:127.0.0.1:${deadPort}]\nmetrics:\n  port: 0\n`);
      const r = await cli(['serve', '--config', cfg, '--listen', `inet:127.0.0.1:${port}`]);
      assert.equal(r.code, 69, `${r.stderr}\n${r.stdout}`);
      assert.match(r.stderr, new RegExp(`^postfix-milter-ts: cannot start: .*EADDRINUSE.*127\\.0\\.0\\.1:${port}: the address is in use \\(another milter running\\? choose another with --listen\\)$`, 'm'));
      // The JSON log says it too, for journald.
      assert.match(r.stdout, /"msg":"cannot start"/);
    } finally {
      await new Promise<void>((resolve) => occupier.close(() => resolve()));
    }
  });

  test('serve when the metrics port is in use exits 69 too, naming the metrics listener', async () => {
    const occupier = net.createServer();
    await new Promise<void>((resolve) => occupier.listen(0, '127.0.0.1', resolve));
    const port = (occupier.address() as net.AddressInfo).port;
    try {
      const cfg = await file('metrics-in-use.yaml', `milter:\n  listen: inet:127.0.0.1:0\nclamav:\n  endpoints: [inet:127.0.0.1:${deadPort}]\nmetrics:\n  port: ${port}\n`);
      const r = await cli(['serve', '--config', cfg]);
      assert.equal(r.code, 69, `${r.stderr}\n${r.stdout}`);
      assert.match(
        r.stderr,
        new RegExp(`^postfix-milter-ts: cannot start: metrics listener: cannot listen on 127\\.0\\.0\\.1:${port}: .*address already in use.*: the address is in use \\(another milter running\\? choose another with --metrics-listen \\(or metrics\\.enabled: false\\)\\)$`, 'm'),
      );
      // Said once in the JSON log's error message too (no second copy of the system error through a cause).
      const logged = JSON.parse(r.stdout.split('\n').find((l) => l.includes('"msg":"cannot start"')) ?? '{}') as { err?: { message?: string; code?: string } };
      assert.equal(logged.err?.message?.split('address already in use').length, 2, JSON.stringify(logged));
      assert.equal(logged.err?.code, 'EADDRINUSE');
    } finally {
      await new Promise<void>((resolve) => occupier.close(() => resolve()));
    }
  });

  test('serve on a UNIX socket in a directory that does not exist exits 69 naming the directory', async () => {
    const missing = join(dir, 'no-such-run-dir');
    const cfg = await file('socket-dir.yaml', `clamav:\n  endpoints: [inet:127.0.0.1:${deadPort}]\nmetrics:\n  port: 0\n`);
    const r = await cli(['serve', '--config', cfg, '--listen', `unix:${missing}/milter.sock`]);
    assert.equal(r.code, 69, `${r.stderr}\n${r.stdout}`);
    assert.match(r.stderr, new RegExp(`: the directory ${literalPattern(missing)} does not exist \\(create it for the milter user, or choose another with --listen\\)$`, 'm'));
  });

  test('clamd unreachable at start is only a warning: serve keeps running and stops with 0', async () => {
    const gateway = await GatewayProcess.start({
      config: `milter:\n  listen: inet:127.0.0.1:0\nclamav:\n  endpoints: [inet:127.0.0.1:${deadPort}]\n  connectTimeout: 1s\nmetrics:\n  port: 0\n`,
    });
    try {
      const warning = await gateway.waitForLog((l) => /no clamd endpoint answers/.test(l.msg), 10_000);
      assert.equal(warning.level, 40, 'logged as a warning');
      assert.match(warning.msg, /tempfailed \(4xx\) until one does/);
      assert.equal(gateway.exitCode, undefined, 'still running');
      assert.ok(!gateway.logs.some((l) => l.level >= 50), 'nothing logged as an error');
      // It still answers on the milter port.
      const [host, port] = gateway.milterAddress.replace(/^inet:/, '').split(':');
      await new Promise<void>((resolve, reject) => net.connect({ host, port: Number(port) }).once('connect', function (this: net.Socket) {
        this.destroy();
        resolve();
      }).once('error', reject));
    } finally {
      assert.equal(await gateway.stop(), 0);
    }
  });

  test('offenders with no milter on the metrics address exits 69 (EX_UNAVAILABLE) saying what to check', async () => {
    const port = await freeLoopbackPort();
    const r = await cli(['offenders', '--metrics-listen', `127.0.0.1:${port}`]);
    assert.equal(r.code, 69, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`nothing listens on 127\\.0\\.0\\.1:${port}: is the milter running with metrics enabled\\?`));
  });

  test('every command has --help and exits 0', async () => {
    const top = await cli(['--help']);
    assert.equal(top.code, 0, top.stderr);
    // The commands the top-level help lists (two-space indented names under "Commands:"), `help` aside.
    const listed = (top.stdout.split(/^Commands:$/m)[1] ?? '').split('\n').flatMap((l) => /^ {2}([a-z][a-z-]*)\b/.exec(l)?.[1] ?? []).filter((c) => c !== 'help');
    for (const required of ['serve', 'check-config', 'scan', 'offenders', 'version']) assert.ok(listed.includes(required), `${required} in:\n${top.stdout}`);
    const results = await Promise.all(listed.map(async (command) => [command, await cli([command, '--help'])] as const));
    for (const [command, r] of results) {
      assert.equal(r.code, 0, `${command}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: postfix-milter-ts ${command}`, 'm'), command);
    }
    const unknown = await cli(['serv']);
    assert.equal(unknown.code, 64, 'a usage error is EX_USAGE');
  });
});
