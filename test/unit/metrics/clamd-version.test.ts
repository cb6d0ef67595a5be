import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseClamdVersion } from 'postfix-milter-ts/metrics/clamd-version.js';

test('engine, daily database version and its build time (local time, as clamd prints it)', () => {
  const v = parseClamdVersion('ClamAV 1.0.7/27400/Tue Sep 24 08:37:31 2024\n');
  assert.equal(v?.engine, '1.0.7');
  assert.equal(v?.signatureVersion, 27400);
  assert.equal(v?.signatureTime?.getTime(), new Date(2024, 8, 24, 8, 37, 31).getTime());
});

test('a clamd without a loaded database reports only its engine', () => {
  assert.deepEqual(parseClamdVersion('ClamAV 1.4.2'), { engine: '1.4.2' });
});

test('the NUL terminator of z-commands is ignored', () => {
  assert.equal(parseClamdVersion('ClamAV 1.0.7/27400/Tue Sep 24 08:37:31 2024\0')?.signatureVersion, 27400);
});

test('an unreadable date keeps the version', () => {
  assert.deepEqual(parseClamdVersion('ClamAV 1.0.7/27400/not a date'), { engine: '1.0.7', signatureVersion: 27400 });
});

test('anything else is not a version reply', () => {
  assert.equal(parseClamdVersion('PONG'), undefined);
  assert.equal(parseClamdVersion('UNKNOWN COMMAND'), undefined);
  assert.equal(parseClamdVersion(''), undefined);
});
