// A whole queue file: envelope, headers and content as `postcat -bh` shows them, pointer-spliced headers,
// extracted recipients, the content limit (and the jump over the body), corrupt files.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readQueueFile } from 'postfix-milter-ts/queue/queue-file.js';
import { QueueFileError, memorySource } from 'postfix-milter-ts/queue/record.js';
import { buildQueueFile } from './queue-file-builder.js';

const ENVELOPE = [
  ['T', '1795357256 138470'],
  ['A', 'create_time=1795357256'],
  ['F', 'root'],
  ['S', 'bad@evil.example'],
  ['A', 'dsn_orig_rcpt=rfc822;x@remote.example'],
  ['O', 'x@remote.example'],
  ['R', 'x@remote.example'],
  ['D', 'done@remote.example'],
] as const;

const LONG = 'long'.repeat(1000);

function sample(extra: { heap?: boolean } = {}) {
  return buildQueueFile({
    envelope: ENVELOPE,
    content: [
      ['N', 'Received: by mta.example.test (Postfix)'],
      ['N', '\tid 23A102103AF; Sun, 22 Nov 2026 14:20:56 +0000'],
      ['N', 'Subject: test'],
      ...(extra.heap ? ([['p', 'added']] as const) : ([['p', 'none']] as const)),
      ['N', ''],
      ['N', 'body line'],
      ['L', LONG.slice(0, 2048)],
      ['L', LONG.slice(2048, 4000)],
      ['N', LONG.slice(4000)],
      ['N', 'last'],
    ],
    extracted: [
      ['R', 'extracted@remote.example'],
      ['r', 'receipt@remote.example'],
    ],
    ...(extra.heap ? { heap: { added: [['N', 'X-Virus-Scanned: by a milter']] } } : {}),
  });
}

const TEXT = `Received: by mta.example.test (Postfix)\n\tid 23A102103AF; Sun, 22 Nov 2026 14:20:56 +0000\nSubject: test\n\nbody line\n${LONG}\nlast\n`;

test('envelope, headers and content of a queue file', async () => {
  const { bytes } = sample();
  const m = await readQueueFile(memorySource(bytes), { maxContentBytes: 1024 * 1024 });
  assert.equal(m.sender, 'bad@evil.example');
  assert.deepEqual(m.recipients, ['x@remote.example', 'extracted@remote.example']);
  assert.deepEqual(m.deliveredRecipients, ['done@remote.example']);
  assert.equal(m.arrival?.toISOString(), new Date(1795357256 * 1000).toISOString());
  assert.equal(m.headers.toString(), 'Received: by mta.example.test (Postfix)\n\tid 23A102103AF; Sun, 22 Nov 2026 14:20:56 +0000\nSubject: test\n');
  assert.equal(m.content?.toString(), TEXT);
  assert.equal(m.contentSize, TEXT.length);
  assert.equal(m.oversize, false);
});

test('a header appended through a pointer record (as cleanup does for milter edits) is read in place', async () => {
  const { bytes } = sample({ heap: true });
  const m = await readQueueFile(memorySource(bytes), { maxContentBytes: 1024 * 1024 });
  assert.match(m.headers.toString(), /Subject: test\nX-Virus-Scanned: by a milter\n$/);
  assert.equal(m.content?.toString(), TEXT.replace('Subject: test\n', 'Subject: test\nX-Virus-Scanned: by a milter\n'));
});

test('content beyond the limit is not kept; the reader jumps to the extracted records', async () => {
  const { bytes } = sample();
  const m = await readQueueFile(memorySource(bytes), { maxContentBytes: 100 });
  assert.equal(m.content, undefined);
  assert.equal(m.oversize, true);
  assert.match(m.headers.toString(), /Subject: test/);
  assert.deepEqual(m.recipients, ['x@remote.example', 'extracted@remote.example'], 'extracted recipients are still found');
  // Headers only (no content wanted): not oversize, recipients complete.
  const h = await readQueueFile(memorySource(bytes), { maxContentBytes: 0 });
  assert.equal(h.content, undefined);
  assert.equal(h.oversize, false);
  assert.deepEqual(h.recipients, ['x@remote.example', 'extracted@remote.example']);
});

test('a maildrop file (no size record) is read linearly', async () => {
  const { bytes } = buildQueueFile({ sizeRecord: false, envelope: [['T', '1 2'], ['S', ''], ['R', 'a@b.example']], content: [['N', 'Subject: x'], ['N', ''], ['N', 'hi']] });
  const m = await readQueueFile(memorySource(bytes), { maxContentBytes: 0 });
  assert.equal(m.sender, '', 'the null sender');
  assert.deepEqual(m.recipients, ['a@b.example']);
  assert.equal(m.headers.toString(), 'Subject: x\n');
  assert.equal(m.contentSize, 'Subject: x\n\nhi\n'.length);
});

test('a truncated queue file is a QueueFileError, whatever the cut', async () => {
  const { bytes } = sample({ heap: true });
  for (const cut of [1, 2, 50, 120, Math.floor(bytes.length / 2), bytes.length - 40, bytes.length - 1]) {
    await assert.rejects(readQueueFile(memorySource(bytes.subarray(0, cut)), { maxContentBytes: 1 << 20 }), (e: unknown) => e instanceof QueueFileError, `cut at ${cut}`);
  }
  // An unexpected record type inside the content.
  const bad = buildQueueFile({ envelope: [['S', 'a@b']], content: [['N', 'x'], ['S', 'oops']] });
  await assert.rejects(readQueueFile(memorySource(bad.bytes), { maxContentBytes: 1 << 20 }), /unexpected record 'S' in the message content/);
});
