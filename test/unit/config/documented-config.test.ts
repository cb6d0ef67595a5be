// The documentation cannot drift from the schema: the commented example file is the embedded defaults and
// names every key; the README's reference table lists every key with its default.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseConfigText } from 'postfix-milter-ts/config/load-config.js';
import { configForFile } from 'postfix-milter-ts/config/config-text.js';
import { configSchema, DEFAULT_CONFIG } from 'postfix-milter-ts/config/schema.js';
import { literalPattern } from '../../harness/literal-pattern.js';

const ROOT = new URL('../../../../', import.meta.url);
const EXAMPLE = readFileSync(new URL('postfix-examples/gateway.yaml', ROOT), 'utf8');
const README = readFileSync(new URL('README.md', ROOT), 'utf8');

/** Leaf keys of the effective config, with their defaults; maps are leaves. */
function leaves(value: unknown, path = ''): Array<[string, unknown]> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.keys(value).length === 0 || path === 'actions.byRule') {
    return [[path, value]];
  }
  return Object.entries(value).flatMap(([k, v]) => leaves(v, path ? `${path}.${k}` : k));
}

function shown(v: unknown): string {
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

/** The README table as it must read. */
function referenceTable(): string {
  return ['| key | default |', '| --- | --- |', ...leaves(configForFile(configSchema, DEFAULT_CONFIG)).map(([k, v]) => `| \`${k}\` | \`${shown(v)}\` |`)].join('\n');
}

test('postfix-examples/gateway.yaml is valid and states the embedded defaults', () => {
  assert.deepEqual(parseConfigText(configSchema, EXAMPLE, 'gateway.yaml'), DEFAULT_CONFIG);
});

test('postfix-examples/gateway.yaml names every key (set or in a comment)', () => {
  const missing = leaves(DEFAULT_CONFIG)
    .map(([k]) => k)
    .filter((k) => !new RegExp(`(^\\s*#?|[{,])\\s*${literalPattern(k.split('.').at(-1) ?? '')}:`, 'm').test(EXAMPLE));
  assert.deepEqual(missing, []);
});

test("README's configuration reference lists every key with its default", () => {
  const start = README.indexOf('<!-- config-reference:start -->');
  const end = README.indexOf('<!-- config-reference:end -->');
  assert.ok(start >= 0 && end > start, 'README has the config-reference markers');
  const actual = README.slice(start + '<!-- config-reference:start -->'.length, end).trim();
  assert.equal(actual, referenceTable(), `update README.md between the markers with:\n${referenceTable()}`);
});
