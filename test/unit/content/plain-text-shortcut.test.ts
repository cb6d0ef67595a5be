// The shortcut for one unnamed text body must never see less than the MIME walk: every way a finding could
// hide in such a message sends it down the full walk.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attachmentsSchema } from 'postfix-milter-ts/content/attachment-config.js';
import { AttachmentInspector } from 'postfix-milter-ts/content/attachment-inspector.js';
import { PlainBodyWatch, plainTextBody } from 'postfix-milter-ts/content/plain-text-shortcut.js';
import { makeZip } from './zip-writer.js';

const CONFIG = attachmentsSchema.parse({});

const HEADER_CASES: ReadonlyArray<readonly [string, string, string | undefined]> = [
  ['no MIME headers at all', 'From: a@b\r\nSubject: hi', 'text/plain'],
  ['text/plain with a charset', 'Subject: hi\r\nContent-Type: text/plain; charset=utf-8', 'text/plain'],
  ['text/html, folded', 'Content-Type: text/html;\r\n\tcharset="us-ascii"', 'text/html'],
  ['7bit and 8bit encodings', 'Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit', 'text/plain'],
  ['a name parameter', 'Content-Type: text/plain; name="x.exe"', undefined],
  ['an RFC 2231 name', "Content-Type: text/plain; name*=UTF-8''x.exe", undefined],
  ['a folded name parameter', 'Content-Type: text/plain;\r\n name="x.exe"', undefined],
  ['any Content-Disposition', 'Content-Type: text/plain\r\nContent-Disposition: inline', undefined],
  ['base64 (can hide any bytes)', 'Content-Type: text/plain\r\nContent-Transfer-Encoding: base64', undefined],
  ['quoted-printable', 'Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable', undefined],
  ['multipart', 'Content-Type: multipart/mixed; boundary=x', undefined],
  ['an attached message', 'Content-Type: message/rfc822', undefined],
  ['two Content-Type headers', 'Content-Type: text/plain\r\nContent-Type: application/octet-stream', undefined],
  ['a line that is not a header', 'Subject: hi\r\nthis is not a header', undefined],
];

for (const [what, block, expected] of HEADER_CASES) {
  test(`header block: ${what} → ${expected ?? 'full walk'}`, () => {
    assert.equal(plainTextBody(block)?.contentType, expected);
  });
}

test('body watch: a `begin`, `=ybegin` or BinHex line, also cut between chunks, or a zip start needs the full walk', () => {
  const split = new PlainBodyWatch();
  split.write(Buffer.from('hello\r\nbe'));
  assert.equal(split.needsFullWalk, false);
  split.write(Buffer.from('gin 644 evil.exe\r\n'));
  assert.equal(split.needsFullWalk, true);
  const first = new PlainBodyWatch();
  first.write(Buffer.from('begin 644 x\r\n'));
  assert.equal(first.needsFullWalk, true);
  const zip = new PlainBodyWatch();
  zip.write(Buffer.from('P'));
  zip.write(Buffer.from('K\x03\x04'));
  assert.equal(zip.needsFullWalk, true);
  for (const start of ['=ybegin line=128 size=2 name=a.exe', '(This file must be converted with BinHex 4.0)']) {
    const watch = new PlainBodyWatch();
    watch.write(Buffer.from('hello\r\n'));
    watch.write(Buffer.from(start.slice(0, 20)));
    watch.write(Buffer.from(`${start.slice(20)}\r\n`));
    assert.equal(watch.needsFullWalk, true, start);
    const first = new PlainBodyWatch();
    first.write(Buffer.from(start));
    assert.equal(first.needsFullWalk, true, start);
  }
  const plain = new PlainBodyWatch();
  const text = Buffer.from('We will begin at nine.\r\nPK is a name. =ybegin (This file must be converted with BinHex)\r\n');
  plain.write(text);
  assert.equal(plain.needsFullWalk, false);
  assert.equal(plain.size, text.length);
});

async function inspect(raw: string | Buffer, sliceBytes: number) {
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'latin1');
  const inspector = new AttachmentInspector(CONFIG);
  for (let i = 0; i < bytes.length; i += sliceBytes) inspector.push(bytes.subarray(i, i + sliceBytes));
  const result = await inspector.finish();
  return { ...result, shortcut: inspector.usedShortcut };
}

const uuencodedExe = `begin 644 invoice.exe\r\n${'M'.repeat(61)}\r\n\`\r\nend\r\n`;
const zipWithExe = makeZip([{ name: 'setup.exe', data: Buffer.from('MZ fake') }]);

const MESSAGES: ReadonlyArray<readonly [string, string | Buffer, boolean, readonly string[]]> = [
  ['a plain text message', 'From: a@b\r\nSubject: hi\r\n\r\nHello,\r\nsee you.\r\n', true, []],
  ['an HTML message', 'Content-Type: text/html\r\n\r\n<p>hi</p>\r\n', true, []],
  ['a uuencoded .exe in a plain body', `Subject: x\r\n\r\nText first.\r\n${uuencodedExe}`, false, ['banned-extension']],
  ['a zip as an 8bit text body', Buffer.concat([Buffer.from('Content-Transfer-Encoding: 8bit\r\n\r\n'), zipWithExe]), false, ['archive-banned-member']],
  ['a named text part', 'Content-Type: text/plain; name="run.exe"\r\n\r\nhi\r\n', false, ['banned-extension']],
  ['a plain body larger than the shortcut keeps', `Subject: big\r\n\r\n${'a line of text\r\n'.repeat(80_000)}`, false, []],
];

for (const [what, raw, shortcut, kinds] of MESSAGES) {
  for (const slice of [7, 65_536]) {
    test(`${what} (pushed in ${slice}-byte pieces): ${shortcut ? 'shortcut' : 'full walk'}, findings ${kinds.join(', ') || 'none'}`, async () => {
      const r = await inspect(raw, slice);
      assert.equal(r.error, undefined);
      assert.equal(r.shortcut, shortcut);
      assert.deepEqual([...new Set(r.findings.map((f) => f.kind))].sort(), [...kinds].sort());
      assert.equal(r.parts.length > 0, true);
    });
  }
}
