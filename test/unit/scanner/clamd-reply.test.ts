// clamd's INSTREAM replies, as clamd 1.x sends them, mapped to scan results. Anything unrecognised must fail.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseScanReply, parseSessionScanReply } from 'postfix-milter-ts/scanner/clamd-reply.js';
import type { ScanResult } from 'postfix-milter-ts/scanner/scan-result.js';

type Expected = ScanResult['type'] | `failed:${string}`;

const table: readonly (readonly [string, Expected, string?])[] = [
  ['stream: OK\0', 'clean'],
  ['stream: OK\n', 'clean'],
  ['stream: OK', 'clean'],
  ['stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0', 'infected', 'Eicar-Test-Signature.UNOFFICIAL'],
  ['stream: Win.Test.EICAR_HDB-1 FOUND\0', 'infected', 'Win.Test.EICAR_HDB-1'],
  ['stream: Heuristics.Encrypted.Zip FOUND\0', 'infected', 'Heuristics.Encrypted.Zip'],
  ['stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0', 'failed:size-limit'],
  ['stream: Heuristics.Limits.Exceeded.MaxScanTime FOUND\0', 'failed:timeout'],
  ['INSTREAM size limit exceeded. ERROR\0', 'failed:size-limit'],
  ['1: INSTREAM size limit exceeded. ERROR\0', 'failed:size-limit'],
  ['stream: Can\'t allocate memory ERROR\0', 'failed:error'],
  ['stream: Error writing to temporary file ERROR\0', 'failed:error'],
  // Contains "OK" and would pass a naive includes('OK') check.
  ['stream: lstat() failed: OK? ERROR\0', 'failed:error'],
  ['ENGINE VERSION MISMATCH: 1.4.6 != 1.0.7. ERROR\0', 'failed:error'],
  ['COMMAND READ TIMED OUT\0', 'failed:protocol'],
  ['UNKNOWN COMMAND\0', 'failed:protocol'],
  ['PONG\0', 'failed:protocol'],
  ['\0', 'failed:protocol'],
  ['stream: OK FOUND OK\0', 'failed:protocol'],
  ['stream:OK\0', 'failed:protocol'],
  ['stream: OK trailing\0', 'failed:protocol'],
  ['\x01\x02garbage\xff\0', 'failed:protocol'],
];

for (const [reply, expected, signature] of table) {
  test(`reply ${JSON.stringify(reply)} → ${expected}`, () => {
    const result = parseScanReply(Buffer.from(reply, 'latin1'));
    if (expected.startsWith('failed:')) {
      assert.equal(result.type, 'failed');
      assert.equal(result.type === 'failed' ? result.reason : undefined, expected.slice('failed:'.length));
      assert.ok(result.type === 'failed' && result.detail.length > 0, 'a failure says why');
    } else {
      assert.equal(result.type, expected);
      if (signature !== undefined) assert.deepEqual(result, { type: 'infected', signature });
    }
  });
}

test('a failure detail shows the reply with control characters escaped and bounded in length', () => {
  const result = parseScanReply(`stream: ${'\x07'.repeat(5)}${'x'.repeat(1000)} ERROR\0`);
  assert.equal(result.type, 'failed');
  if (result.type !== 'failed') return;
  assert.doesNotMatch(result.detail, /\x07/);
  assert.ok(result.detail.length < 300, `detail is ${result.detail.length} chars`);
});

// On an IDSESSION connection every reply starts with the number of the request it answers.
const sessionTable: readonly (readonly [string, number, Expected, string?])[] = [
  ['1: stream: OK\0', 1, 'clean'],
  ['12: stream: OK\0', 12, 'clean'],
  ['2: stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0', 2, 'infected', 'Eicar-Test-Signature.UNOFFICIAL'],
  ['3: INSTREAM size limit exceeded. ERROR\0', 3, 'failed:size-limit'],
  ['1: stream: Can\'t allocate memory ERROR\0', 1, 'failed:error'],
  ['1: stream: Heuristics.Limits.Exceeded.MaxScanTime FOUND\0', 1, 'failed:timeout'],
  // Another request's answer: the connection is out of step, even for a clean or infected verdict.
  ['2: stream: OK\0', 1, 'failed:protocol'],
  ['1: stream: Eicar-Test-Signature FOUND\0', 2, 'failed:protocol'],
  ['0: stream: OK\0', 1, 'failed:protocol'],
  // No id at all: a verdict is not believed; an error stays an error.
  ['stream: OK\0', 1, 'failed:protocol'],
  ['stream: Eicar-Test-Signature FOUND\0', 1, 'failed:protocol'],
  ['INSTREAM size limit exceeded. ERROR\0', 1, 'failed:size-limit'],
  ['COMMAND READ TIMED OUT\0', 1, 'failed:protocol'],
  ['1:stream: OK\0', 1, 'failed:protocol'],
  ['1: 1: stream: OK\0', 1, 'failed:protocol'],
  ['1: \x01garbage\0', 1, 'failed:protocol'],
  ['1: \0', 1, 'failed:protocol'],
];

for (const [reply, id, expected, signature] of sessionTable) {
  test(`session reply ${JSON.stringify(reply)} to request ${id} → ${expected}`, () => {
    const result = parseSessionScanReply(Buffer.from(reply, 'latin1'), id);
    if (expected.startsWith('failed:')) {
      assert.equal(result.type, 'failed', JSON.stringify(result));
      assert.equal(result.type === 'failed' ? result.reason : undefined, expected.slice('failed:'.length));
      assert.ok(result.type === 'failed' && result.detail.length > 0, 'a failure says why');
    } else {
      assert.equal(result.type, expected);
      if (signature !== undefined) assert.deepEqual(result, { type: 'infected', signature });
    }
  });
}
