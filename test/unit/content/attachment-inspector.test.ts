// Behaviour of the streaming inspector beyond the corpus: config switches, limits, ordering, abort.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { attachmentsSchema, defaultAttachmentsConfig } from 'postfix-milter-ts/content/attachment-config.js';
import { AttachmentInspector, inspectMessage } from 'postfix-milter-ts/content/attachment-inspector.js';
import type { InspectionResult } from 'postfix-milter-ts/content/finding.js';
import { SevenZipLister } from 'postfix-milter-ts/content/seven-zip-lister.js';
import { gzipNamed } from './gzip-writer.js';
import { makeRar } from './rar-writer.js';
import { yencode } from './yenc-writer.js';
import { SAMPLES, makeZip } from './zip-writer.js';

function message(parts: { headers: string; body: string }[]): Buffer {
  let out = 'From: a@example.net\r\nTo: b@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n';
  for (const p of parts) out += `--b\r\n${p.headers}\r\n${p.body}\r\n`;
  return Buffer.from(`${out}--b--\r\n`);
}
const file = (name: string, data: Buffer | string, type = 'application/octet-stream'): { headers: string; body: string } => ({
  headers: `Content-Type: ${type}\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n`,
  body: Buffer.from(data).toString('base64').replace(/.{76}/g, '$&\r\n'),
});

describe('AttachmentInspector', () => {
  test('config switches turn rules off', async () => {
    const raw = message([file('invoice.pdf.exe', 'x'), file('a.{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}', 'x')]);
    const on = await inspectMessage(raw, defaultAttachmentsConfig());
    assert.deepEqual([...new Set(on.findings.map((f) => f.kind))].sort(), ['banned-extension', 'clsid-extension', 'double-extension']);
    const off = await inspectMessage(raw, attachmentsSchema.parse({ checkDoubleExtension: false, checkClsid: false, allowedExtensions: ['exe'] }));
    assert.deepEqual(off.findings, []);
    const disabled = await inspectMessage(raw, attachmentsSchema.parse({ enabled: false }));
    assert.deepEqual(disabled, { findings: [], parts: [] });
  });

  test('dangerous types and banned declared types are configurable', async () => {
    const raw = message([file('data.bin', SAMPLES.pe(), 'application/x-msdownload')]);
    const d = await inspectMessage(raw, defaultAttachmentsConfig());
    assert.deepEqual(d.findings.map((f) => f.rule).sort(), ['declared-type', 'pe']);
    const none = await inspectMessage(raw, attachmentsSchema.parse({ dangerousTypes: [], bannedContentTypes: [] }));
    assert.deepEqual(none.findings, []);
  });

  test('a zip over archives.maxBytes is an archive-limit finding (or allowed by policy)', async () => {
    const big = makeZip([{ name: 'noise.bin', data: Buffer.from(Array.from({ length: 40_000 }, (_, i) => (i * 7919) & 0xff)), store: true }]);
    const raw = message([file('big.zip', big, 'application/zip')]);
    const r = await inspectMessage(raw, attachmentsSchema.parse({ archives: { maxBytes: 16 * 1024 } }));
    assert.deepEqual(r.findings.map((f) => `${f.kind}/${f.rule}`), ['archive-limit/archive-too-large']);
    const allowed = await inspectMessage(raw, attachmentsSchema.parse({ archives: { maxBytes: 16 * 1024, unlistable: 'allow' } }));
    assert.deepEqual(allowed.findings, []);
  });

  test('attached messages nest only to maxMessageDepth', async () => {
    let inner = 'Subject: leaf\r\nContent-Type: text/plain\r\n\r\nhello\r\n';
    for (let i = 0; i < 4; i++) inner = `Subject: level ${i}\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n${inner}`;
    const r = await inspectMessage(Buffer.from(inner), attachmentsSchema.parse({ maxMessageDepth: 3 }));
    assert.deepEqual(r.findings.map((f) => `${f.kind}/${f.rule}`), ['archive-limit/message-depth']);
    const ok = await inspectMessage(Buffer.from(inner), attachmentsSchema.parse({ maxMessageDepth: 6 }));
    assert.deepEqual(ok.findings, []);
  });

  test('a zip behind other bytes is listed when the part is named or declared a zip', async () => {
    const zip = makeZip([{ name: 'readme.txt', data: 'hi' }, { name: 'invoice.exe', data: SAMPLES.pe() }]);
    const kinds = async (raw: Buffer): Promise<string[]> => [...new Set((await inspectMessage(raw, defaultAttachmentsConfig())).findings.map((f) => `${f.kind}/${f.rule}`))].sort();
    const want = ['archive-banned-member/banned-extension', 'dangerous-content/pe'];
    assert.deepEqual(await kinds(message([file('docs.zip', Buffer.concat([Buffer.from('X'), zip]))])), want);
    assert.deepEqual(await kinds(message([file('docs', Buffer.concat([SAMPLES.pdf(), zip]), 'application/zip')])), want);
    assert.deepEqual(await kinds(message([{ headers: 'Content-Type: text/plain\r\n', body: `begin 644 docs.zip\r\n${uuencodeLines(Buffer.concat([Buffer.alloc(64, 0x20), zip]))}\`\r\nend` }])), want);
    // The same bytes under another name are not kept whole: only their first bytes are judged.
    assert.deepEqual(await kinds(message([file('photo.jpg', Buffer.concat([SAMPLES.jpeg(), zip]), 'image/jpeg')])), []);
  });

  test('an unnamed text body is judged for binary types only', async () => {
    const body = (type: string, data: Buffer): Buffer =>
      Buffer.from(`From: a@example.net\r\nTo: b@example.org\r\nContent-Type: ${type}\r\nContent-Transfer-Encoding: base64\r\n\r\n${data.toString('base64')}\r\n`);
    const rules = async (raw: Buffer): Promise<string[]> => (await inspectMessage(raw, defaultAttachmentsConfig())).findings.map((f) => f.rule);
    const pe = ['pe', 'pe-as-declared-type'];
    assert.deepEqual(await rules(body('text/plain', SAMPLES.pe())), pe);
    assert.deepEqual(await rules(message([{ headers: 'Content-Transfer-Encoding: base64\r\n', body: SAMPLES.pe().toString('base64') }])), pe);
    // A script or a `#!` line in a body is ordinary text.
    assert.deepEqual(await rules(body('text/plain', Buffer.from('#!/bin/sh\necho hello\n'))), []);
    // The shortcut for plain 8-bit bodies judges the same bytes.
    const plain = Buffer.concat([Buffer.from('From: a@example.net\r\nTo: b@example.org\r\nContent-Type: text/plain\r\n\r\n'), SAMPLES.pe()]);
    const inspector = new AttachmentInspector(defaultAttachmentsConfig());
    inspector.push(plain);
    const r = await inspector.finish();
    assert.equal(inspector.usedShortcut, true);
    assert.deepEqual(r.findings.map((f) => f.rule), pe);
  });

  test('a NUL in an attachment name ends it for the reader: both readings are checked', async () => {
    const raw = message([{ headers: "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*=''invoice.exe%00.pdf\r\n", body: 'JVBERi0xLjcK' }]);
    const r = await inspectMessage(raw, defaultAttachmentsConfig());
    assert.deepEqual(r.findings.map((f) => `${f.kind}/${f.rule}/${f.extension ?? ''}`), ['banned-extension/banned-extension/exe']);
  });

  test('a message split with message/partial is refused by its declared type, at the top or inside', async () => {
    const zipHalf = makeZip([{ name: 'invoice.exe', data: SAMPLES.pe() }]).subarray(0, 40).toString('base64');
    const top = Buffer.from(`From: a@example.net\r\nTo: b@example.org\r\nMIME-Version: 1.0\r\nContent-Type: message/partial; id="x@example.net"; number=1; total=2\r\n\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n${zipHalf}\r\n`);
    const inside = message([{ headers: 'Content-Type: message/partial; id="x@example.net"; number=2; total=2\r\n', body: 'AAAA' }]);
    for (const raw of [top, inside]) {
      const r = await inspectMessage(raw, defaultAttachmentsConfig());
      assert.deepEqual(r.findings.map((f) => `${f.kind}/${f.rule}`), ['dangerous-content/declared-type']);
    }
  });

  test('headers a client could read another way are a finding: what it would show was never checked', async () => {
    const raw = Buffer.from(
      'From: a@example.net\r\nContent-Type: text/plain\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n' +
        '--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1\r\nContent-Type: application/javascript; name="invoice.js"\r\n\r\nx\r\n--b1--\r\n',
    );
    const r = await inspectMessage(raw, defaultAttachmentsConfig());
    assert.deepEqual(r.findings.map((f) => `${f.kind}/${f.rule}/${f.path}`), ['malformed-mime/ambiguous-structure/message']);
  });

  test('an unnamed HTML body that hands the browser a file is judged (Outlook shows one after an attachment as ATT00001.htm)', async () => {
    const smuggler = '<html><body><script>var b = new Blob([atob("TVo=")]); var a = document.createElement("a"); a.href = URL.createObjectURL(b); a.download = "invoice.exe"; a.click();</script></body></html>';
    const raw = message([file('report.pdf', SAMPLES.pdf(), 'application/pdf'), { headers: 'Content-Type: text/html; charset=utf-8\r\n', body: smuggler }]);
    const r = await inspectMessage(raw, defaultAttachmentsConfig());
    assert.deepEqual(r.findings.map((f) => `${f.kind}/${f.rule}`), ['dangerous-content/html-smuggling']);
    // An HTML body with ordinary script, and the same smuggling page as the only body (the plain-text shortcut), likewise.
    const ordinary = message([{ headers: 'Content-Type: text/html; charset=utf-8\r\n', body: '<html><script>document.title = "x"</script><p>hi</p></html>' }]);
    assert.deepEqual((await inspectMessage(ordinary, defaultAttachmentsConfig())).findings, []);
    const only = Buffer.from(`From: a@example.net\r\nContent-Type: text/html\r\n\r\n${smuggler}\r\n`);
    assert.deepEqual((await inspectMessage(only, defaultAttachmentsConfig())).findings.map((f) => f.rule), ['html-smuggling']);
  });

  test('a smuggling page whose code follows a 300 KB payload is judged, as an attachment, a body and the only body', async () => {
    const page = `<html><body><script>var f = "${'TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAA'.repeat(6400)}";\nvar b = new Blob([atob(f)]); var a = document.createElement("a"); a.href = URL.createObjectURL(b); a.download = "invoice.iso"; a.click();</script></body></html>`;
    const attached = message([file('invoice.html', page, 'text/html')]);
    assert.deepEqual((await inspectMessage(attached, defaultAttachmentsConfig())).findings.map((f) => `${f.rule}/${f.path}`), ['html-smuggling/part 1']);
    const body = message([file('report.pdf', SAMPLES.pdf(), 'application/pdf'), { headers: 'Content-Type: text/html\r\n', body: page }]);
    assert.deepEqual((await inspectMessage(body, defaultAttachmentsConfig())).findings.map((f) => f.rule), ['html-smuggling']);
    const only = Buffer.from(`From: a@example.net\r\nContent-Type: text/html\r\n\r\n${page}\r\n`);
    assert.deepEqual((await inspectMessage(only, defaultAttachmentsConfig())).findings.map((f) => f.rule), ['html-smuggling']);
  });

  test('too many parts is malformed-mime', async () => {
    const raw = message(Array.from({ length: 6 }, (_, i) => file(`f${i}.txt`, 'x', 'text/plain')));
    const r = await inspectMessage(raw, attachmentsSchema.parse({ maxParts: 5 }));
    assert.deepEqual([...new Set(r.findings.map((f) => `${f.kind}/${f.rule}`))], ['malformed-mime/too-many-parts']);
  });

  test('part summaries name every part with its real type', async () => {
    const r = await inspectMessage(message([file('a.pdf', SAMPLES.pdf(), 'application/pdf'), file('b.zip', makeZip([{ name: 'x.txt', data: 'x' }]), 'application/zip')]), defaultAttachmentsConfig());
    assert.deepEqual(r.parts.map((p) => [p.path, p.contentType, p.detectedType, p.archiveMembers]), [
      ['part 1', 'application/pdf', 'pdf', undefined],
      ['part 2', 'application/zip', 'zip', 1],
    ]);
  });

  test('findings and parts are in document order, the parts of an attached message before its own summary', async () => {
    // The zip in part 1 is listed asynchronously and finishes after the later parts: the order stays the message's.
    const attached = `Subject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="i"\r\n\r\n--i\r\n${file('inner.exe', 'x').headers}\r\neA==\r\n--i--\r\n`;
    const raw = message([
      file('a.zip', makeZip([{ name: 'x.exe', data: 'x' }]), 'application/zip'),
      { headers: 'Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n', body: Buffer.from(attached).toString('base64').replace(/.{76}/g, '$&\r\n') },
      file('b.scr', 'x'),
    ]);
    for (const step of [raw.length, 5]) {
      const inspector = new AttachmentInspector(defaultAttachmentsConfig());
      for (let i = 0; i < raw.length; i += step) inspector.push(raw.subarray(i, i + step));
      const r = await inspector.finish();
      assert.deepEqual(r.findings.map((f) => `${f.path}: ${f.name}`), ['part 1 > a.zip > x.exe: x.exe', 'part 2 > message > part 1: inner.exe', 'part 3: b.scr']);
      assert.deepEqual(r.parts.map((p) => p.path), ['part 1', 'part 2 > message > part 1', 'part 2', 'part 3']);
    }
  });

  test('abort() releases the message; finish() then reports it was aborted', async () => {
    const inspector = new AttachmentInspector(defaultAttachmentsConfig());
    inspector.push(message([file('a.exe', 'x')]).subarray(0, 200));
    inspector.abort();
    inspector.push(Buffer.from('more'));
    const r = await inspector.finish();
    assert.equal(r.error, 'inspection aborted');
  });

  test('finish() twice is a programming error', async () => {
    const inspector = new AttachmentInspector(defaultAttachmentsConfig());
    inspector.push(Buffer.from('Subject: x\r\n\r\nhi\r\n'));
    await inspector.finish();
    await assert.rejects(inspector.finish(), /twice/);
  });

  test('the config schema is strict and names the bad key', () => {
    assert.throws(() => attachmentsSchema.parse({ bannedExtension: ['exe'] }), /bannedExtension/);
    assert.throws(() => attachmentsSchema.parse({ archives: { encrypted: 'maybe' } }), /encrypted/);
    assert.deepEqual(attachmentsSchema.parse({ bannedExtensions: ['.EXE', ' Scr '] }).bannedExtensions, ['exe', 'scr']);
  });
});

/** uuencoded lines (45 bytes each) without the final empty line. */
function uuencodeLines(data: Buffer): string {
  const enc = (n: number): string => String.fromCharCode(n === 0 ? 0x60 : n + 0x20);
  let out = '';
  for (let i = 0; i < data.length; i += 45) {
    const line = data.subarray(i, i + 45);
    out += enc(line.length);
    for (let j = 0; j < line.length; j += 3) {
      const [a = 0, b = 0, c = 0] = line.subarray(j, j + 3);
      out += enc(a >> 2) + enc(((a & 3) << 4) | (b >> 4)) + enc(((b & 15) << 2) | (c >> 6)) + enc(c & 63);
    }
    out += '\r\n';
  }
  return out;
}

/** `kind/rule` of every finding, in order. */
async function findingsOf(raw: Buffer): Promise<string[]> {
  const r = await inspectMessage(raw, defaultAttachmentsConfig());
  assert.equal(r.error, undefined);
  return r.findings.map((f) => `${f.kind}/${f.rule}`);
}

describe('transfer encodings as a mail client reads them', () => {
  const part = (encoding: string, body: string, type = 'application/octet-stream; name="report.dat"'): Buffer =>
    message([{ headers: `Content-Type: ${type}\r\nContent-Transfer-Encoding: ${encoding}\r\n`, body }]);

  test('`base64; x=1`, `base64 x` and `base64,x` are base64', async () => {
    for (const encoding of ['base64; x=1', 'base64 x', 'base64,x']) {
      assert.deepEqual(await findingsOf(part(encoding, SAMPLES.pe().toString('base64'))), ['dangerous-content/pe'], encoding);
    }
  });

  test('x-uuencode, x-uue, uuencode and uue are decoded', async () => {
    for (const encoding of ['x-uuencode', 'x-uue', 'uuencode', 'uue']) {
      assert.deepEqual(await findingsOf(part(encoding, `begin 644 report.dat\r\n${uuencodeLines(SAMPLES.pe())}\`\r\nend`)), ['dangerous-content/pe'], encoding);
    }
  });

  test('an encoding not understood on a binary part is ambiguous, and its names are still judged', async () => {
    assert.deepEqual(await findingsOf(part('x-gzip64', 'H4sIAAAA', 'application/octet-stream; name="invoice.exe"')), [
      'banned-extension/banned-extension',
      'malformed-mime/ambiguous-structure',
    ]);
    assert.deepEqual(await findingsOf(part('"base64"', SAMPLES.pe().toString('base64'))), ['malformed-mime/ambiguous-structure']);
    // A text part is shown as the text it is.
    assert.deepEqual(await findingsOf(part('x-gzip64', 'hello', 'text/plain')), []);
  });
});

describe('yEnc, as Thunderbird decodes it', () => {
  const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
  const head = 'From: a@example.net\r\nTo: b@example.org\r\nSubject: t\r\n';

  test('a yEnc block in a body without Content-Type is judged by its name and content', async () => {
    assert.deepEqual(await findingsOf(latin1(`${head}\r\nHello,\r\n${yencode(SAMPLES.pe(), 'invoice.exe')}`)), [
      'banned-extension/banned-extension',
      'dangerous-content/pe',
    ]);
    const r = await inspectMessage(latin1(`${head}\r\n${yencode(SAMPLES.pe(), 'report.dat')}`), defaultAttachmentsConfig());
    assert.deepEqual(r.parts.map((p) => [p.path, p.contentType, p.detectedType]), [
      ['part 1', 'text/plain', 'text'],
      ['part 1 > yencoded', 'application/x-yencode', 'pe'],
    ]);
  });

  test('a zip in a yEnc block is listed', async () => {
    const zip = makeZip([{ name: 'invoice.exe', data: SAMPLES.pe() }]);
    const raw = latin1(`${head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n${yencode(zip, 'docs.zip')}--b--\r\n`);
    assert.deepEqual(await findingsOf(raw), ['archive-banned-member/banned-extension', 'dangerous-content/pe']);
  });

  test('a part with Content-Transfer-Encoding: x-yencode is decoded', async () => {
    const raw = latin1(
      `${head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n` +
        `Content-Type: application/octet-stream; name="report.dat"\r\nContent-Transfer-Encoding: x-yencode\r\n\r\n${yencode(SAMPLES.pe(), 'report.dat')}--b--\r\n`,
    );
    assert.deepEqual(await findingsOf(raw), ['dangerous-content/pe']);
  });
});

describe('Content-Type: text, without a subtype, is a text body', () => {
  const raw = (body: string): Buffer => Buffer.from(`From: a@example.net\r\nTo: b@example.org\r\nContent-Type: text\r\n\r\n${body}`, 'latin1');

  test('its uuencoded and yEnc blocks are judged', async () => {
    const want = ['banned-extension/banned-extension', 'dangerous-content/pe'];
    assert.deepEqual(await findingsOf(raw(`Hello,\r\nbegin 644 invoice.exe\r\n${uuencodeLines(SAMPLES.pe())}\`\r\nend\r\n`)), want);
    assert.deepEqual(await findingsOf(raw(`Hello,\r\n${yencode(SAMPLES.pe(), 'invoice.exe')}`)), want);
  });

  test('its text is judged as a body text is: a script in it is ordinary mail', async () => {
    assert.deepEqual(await findingsOf(raw('#!/bin/sh\necho hello\n')), []);
  });
});

test('a message/news part is walked like an attached message', async () => {
  const inner = `Subject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="i"\r\n\r\n--i\r\n${file('report.dat', SAMPLES.pe()).headers}\r\n${SAMPLES.pe().toString('base64')}\r\n--i--\r\n`;
  const r = await inspectMessage(message([{ headers: 'Content-Type: message/news\r\n', body: inner }]), defaultAttachmentsConfig());
  assert.deepEqual(r.findings.map((f) => `${f.path}: ${f.kind}/${f.rule}`), ['part 1 > message > part 1: dangerous-content/pe']);
  assert.deepEqual(r.parts.map((p) => [p.path, p.contentType]), [
    ['part 1 > message > part 1', 'application/octet-stream'],
    ['part 1', 'message/news'],
  ]);
});

test('an attached message is judged by what it holds, not by its name (often its subject)', async () => {
  const inner = (attachment: string): string =>
    `Subject: Your order at shop.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="i"\r\n\r\n--i\r\n${file(attachment, 'x').headers}\r\neA==\r\n--i--\r\n`;
  for (const type of ['message/rfc822', 'message/global', 'message/news']) {
    const forwarded = (attachment: string): Buffer => message([{ headers: `Content-Type: ${type}; name="Your order at shop.com"\r\nContent-Disposition: attachment; filename="Your order at shop.com"\r\n`, body: inner(attachment) }]);
    assert.deepEqual(await findingsOf(forwarded('receipt.pdf')), [], type);
    const r = await inspectMessage(forwarded('invoice.exe'), defaultAttachmentsConfig());
    assert.deepEqual(r.findings.map((f) => `${f.path}: ${f.name}`), ['part 1 > Your order at shop.com > part 1: invoice.exe'], type);
  }
});

describe('a part named or declared a zip with no zip in it', () => {
  const zipPart = (body: string, headers = 'Content-Type: application/zip; name="docs.zip"\r\n'): Buffer => message([{ headers, body }]);
  const unreadable = ['archive-limit/archive-unreadable'];

  test('is unreadable as an archive: refused when archives.unlistable is reject', async () => {
    assert.deepEqual(await findingsOf(zipPart('this is not a zip')), unreadable);
    assert.deepEqual(await findingsOf(zipPart('this is not a zip', 'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="docs.zip"\r\n')), unreadable);
    // A zip sent without its transfer encoding is not one either.
    assert.deepEqual(await findingsOf(zipPart(makeZip([{ name: 'a.txt', data: 'hi' }]).toString('base64'))), unreadable);
    assert.deepEqual(await findingsOf(message([{ headers: 'Content-Type: text/plain\r\n', body: `begin 644 docs.zip\r\n${uuencodeLines(Buffer.from('this is not a zip'))}\`\r\nend` }])), unreadable);
    const allowed = await inspectMessage(zipPart('this is not a zip'), attachmentsSchema.parse({ archives: { unlistable: 'allow' } }));
    assert.deepEqual(allowed.findings, []);
  });

  test('is too large when it is over archives.maxBytes', async () => {
    const big = Buffer.concat([Buffer.from('X'), makeZip([{ name: 'noise.bin', data: Buffer.from(Array.from({ length: 40_000 }, (_, i) => (i * 7919) & 0xff)), store: true }])]);
    const r = await inspectMessage(message([file('big.zip', big, 'application/zip')]), attachmentsSchema.parse({ archives: { maxBytes: 16 * 1024 } }));
    assert.deepEqual(r.findings.map((f) => `${f.kind}/${f.rule}`), ['archive-limit/archive-too-large']);
  });

  test('is nothing to refuse when it is empty', async () => {
    assert.deepEqual(await findingsOf(zipPart('')), []);
  });
});

describe('archives listed by 7-Zip: one message lists its archives one at a time', () => {
  const inspect = async (raw: Buffer, lister: SevenZipLister, archives: Record<string, unknown> = {}): Promise<InspectionResult> => {
    const inspector = new AttachmentInspector(attachmentsSchema.parse({ archives }), lister);
    inspector.push(raw);
    return inspector.finish();
  };

  test('a message with 40 gzipped logs is listed whole, not refused as overload', async () => {
    const lister = new SevenZipLister();
    try {
      const logs = Array.from({ length: 40 }, (_, i) => file(`app-${i}.log.gz`, gzipNamed(`app-${i}.log`, `line ${i}\n`), 'application/gzip'));
      const r = await inspect(message(logs), lister);
      assert.equal(r.error, undefined);
      assert.deepEqual(r.findings, []);
      assert.deepEqual(r.parts.map((p) => p.archiveMembers), Array.from({ length: 40 }, () => 1));
    } finally {
      await lister.close();
    }
  });

  test("one message's archives that each take the whole listTimeout do not make another message's archive wait past it", async () => {
    // A stand-in for 7-Zip: gzips are never answered (each runs to its time limit), anything else at once.
    const worker = `import { parentPort } from 'node:worker_threads';
      parentPort.on('message', (r) => { if (r.data[0] !== 0x1f) parentPort.postMessage({ id: r.id, listing: { names: ['a.txt'], encrypted: false, expandedBytes: 1, complete: true } }); });`;
    const lister = new SevenZipLister({ workerUrl: new URL(`data:text/javascript,${encodeURIComponent(worker)}`) });
    try {
      const slow = message(Array.from({ length: 4 }, (_, i) => file(`slow-${i}.log.gz`, gzipNamed(`slow-${i}.log`, 'x'), 'application/gzip')));
      const other = message([file('docs.rar', makeRar([{ name: 'a.txt', data: 'x' }]), 'application/vnd.rar')]);
      const [, r] = await Promise.all([inspect(slow, lister, { listTimeout: '200ms' }), inspect(other, lister, { listTimeout: '200ms' })]);
      assert.equal(r.error, undefined);
      assert.deepEqual(r.findings, []);
    } finally {
      await lister.close();
    }
  });
});
