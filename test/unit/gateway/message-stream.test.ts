// MessageStream rebuilds the message bytes from milter events: headers as received (gathered and handed on at
// the blank line), then the body, in order, to the scanner.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageStream } from 'postfix-milter-ts/gateway/message-stream.js';
import type { VirusScan } from 'postfix-milter-ts/scanner/clamd-scanner.js';
import type { ScanResult } from 'postfix-milter-ts/scanner/scan-result.js';

class RecordingScan implements VirusScan {
  readonly writes: string[] = [];
  aborted = false;
  readonly endpoint = undefined;
  bytesWritten = 0;
  write(data: Uint8Array): Promise<void> {
    this.writes.push(Buffer.from(data).toString('latin1'));
    this.bytesWritten += data.length;
    return Promise.resolve();
  }
  finish(): Promise<ScanResult> {
    return Promise.resolve({ type: 'clean' });
  }
  abort(): void {
    this.aborted = true;
  }
}

test('headers go to the scanner in one write at the blank line, folded lines back to CRLF, then the body', async () => {
  const scan = new RecordingScan();
  const stream = new MessageStream(scan, undefined, 1_000_000);
  assert.equal(stream.header('From', ' a@example.org'), undefined);
  assert.equal(stream.header('Subject', ' one\n two'), undefined);
  assert.deepEqual(scan.writes, []);
  await stream.endOfHeaders();
  await stream.body(Buffer.from('Hello.\r\n'));
  assert.deepEqual(scan.writes, ['From: a@example.org\r\nSubject: one\r\n two\r\n\r\n', 'Hello.\r\n']);
  assert.equal(stream.bytes, 43 + 8);
});

test('without an end-of-headers event the headers still come first: before the body, or at the end', async () => {
  const scan = new RecordingScan();
  const stream = new MessageStream(scan, undefined, 1_000_000);
  stream.header('X-A', ' 1');
  await stream.body(Buffer.from('body'));
  assert.deepEqual(scan.writes, ['X-A: 1\r\n', 'body']);

  const onlyHeaders = new RecordingScan();
  const s2 = new MessageStream(onlyHeaders, undefined, 1_000_000);
  s2.header('X-B', ' 2');
  await s2.end();
  assert.deepEqual(onlyHeaders.writes, ['X-B: 2\r\n']);
  assert.equal(await s2.end(), undefined, 'nothing left the second time');
});

test('many headers are handed on in 64 KiB batches, not held whole', () => {
  const scan = new RecordingScan();
  const stream = new MessageStream(scan, undefined, 10_000_000);
  const value = ` ${'x'.repeat(990)}`;
  let flushed = 0;
  for (let i = 0; i < 200; i++) if (stream.header(`X-Filler-${i}`, value) !== undefined) flushed++;
  assert.ok(flushed >= 2, `${flushed} flushes`);
  for (const w of scan.writes) assert.ok(w.length >= 64 * 1024 && w.length < 66 * 1024, `${w.length} bytes in one write`);
});

test('past maxScanBytes the scan is dropped (oversize), also when the headers alone are too large', async () => {
  const scan = new RecordingScan();
  const stream = new MessageStream(scan, undefined, 100);
  stream.header('X-Long', ` ${'y'.repeat(200)}`);
  await stream.endOfHeaders();
  assert.equal(stream.oversize, true);
  assert.equal(scan.aborted, true);
  assert.deepEqual(scan.writes, []);
});
