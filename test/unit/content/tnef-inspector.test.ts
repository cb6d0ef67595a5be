// The files inside TNEF (winmail.dat) judged as the attachments Outlook shows them as: names by the attachment
// rules, content by its real type, archives among them listed; and what cannot be read, or is too much, is an
// archive-limit finding, never an exception.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { attachmentsSchema, defaultAttachmentsConfig } from 'postfix-milter-ts/content/attachment-config.js';
import { inspectMessage } from 'postfix-milter-ts/content/attachment-inspector.js';
import type { Finding, InspectionResult } from 'postfix-milter-ts/content/finding.js';
import { buildMessage } from '../../harness/mail-builder.js';
import { PROPERTY_TYPES, type TnefFile, makeTnef, mapiProperty } from './tnef-writer.js';
import { SAMPLES, makeZip } from './zip-writer.js';

/** A message whose second part is `content` under `name`, declared application/ms-tnef unless said otherwise. */
async function inspect(content: Buffer, options: { name?: string; type?: string; config?: Record<string, unknown> } = {}): Promise<InspectionResult> {
  const raw = buildMessage({ subject: 'tnef', attachment: { name: options.name ?? 'winmail.dat', type: options.type ?? 'application/ms-tnef', content } });
  return inspectMessage(Buffer.from(raw), options.config ? attachmentsSchema.parse(options.config) : defaultAttachmentsConfig());
}

const described = (findings: readonly Finding[]): string[] => findings.map((f) => `${f.kind}/${f.rule} ${f.path}`);
const winmail = (...files: TnefFile[]): Buffer => makeTnef(files);
const notAProgram = 'plain words, no program';

describe('attachments inside TNEF', () => {
  test('invoice.exe by its long name only: a banned extension, reported inside winmail.dat', async () => {
    const r = await inspect(winmail({ longName: 'invoice.exe', data: notAProgram }));
    assert.deepEqual(r.findings, [{ kind: 'banned-extension', rule: 'banned-extension', name: 'invoice.exe', extension: 'exe', path: 'part 2 > winmail.dat > invoice.exe' }]);
  });

  test('invoice.exe by its 8.3 title only', async () => {
    const r = await inspect(winmail({ title: 'INVOICE.EXE', data: notAProgram }));
    assert.deepEqual(r.findings, [{ kind: 'banned-extension', rule: 'banned-extension', name: 'INVOICE.EXE', extension: 'exe', path: 'part 2 > winmail.dat > INVOICE.EXE' }]);
  });

  test('a UTF-16 (PT_UNICODE) long name', async () => {
    const r = await inspect(winmail({ longName: 'Rechnung für März.exe', unicode: true, data: notAProgram }));
    assert.deepEqual(described(r.findings), ['banned-extension/banned-extension part 2 > winmail.dat > Rechnung für März.exe']);
    assert.equal(r.findings[0]?.name, 'Rechnung für März.exe');
  });

  test('every name is judged: an innocent title does not hide the long name or the display name', async () => {
    const byLong = await inspect(winmail({ title: 'REPORT.TXT', longName: 'report.txt.scr', data: notAProgram }));
    assert.deepEqual(described(byLong.findings), ['banned-extension/banned-extension part 2 > winmail.dat > REPORT.TXT', 'double-extension/double-extension part 2 > winmail.dat > REPORT.TXT']);
    const byDisplay = await inspect(winmail({ longName: 'report.txt', displayName: 'report.js', data: notAProgram }));
    assert.deepEqual(described(byDisplay.findings), ['banned-extension/banned-extension part 2 > winmail.dat > report.txt']);
    assert.equal(byDisplay.findings[0]?.name, 'report.js');
  });

  test('a program under an innocent name: dangerous type pe (from attAttachData or from the data property)', async () => {
    const want = ['dangerous-content/pe part 2 > winmail.dat > report.txt', 'type-mismatch/pe-as-extension part 2 > winmail.dat > report.txt'];
    assert.deepEqual(described((await inspect(winmail({ longName: 'report.txt', data: SAMPLES.pe() }))).findings), want);
    assert.deepEqual(described((await inspect(winmail({ longName: 'report.txt', dataProperty: SAMPLES.pe() }))).findings), want);
  });

  test('a zip inside TNEF is listed like an attached zip', async () => {
    const zip = makeZip([{ name: 'readme.txt', data: 'hi' }, { name: 'scripts/run.js', data: 'WScript.Echo(1)' }]);
    const r = await inspect(winmail({ longName: 'docs.zip', data: zip }));
    assert.deepEqual(described(r.findings), ['archive-banned-member/banned-extension part 2 > winmail.dat > docs.zip > scripts/run.js']);
  });

  test('a clean text file and PDF: no findings, and the part is summarised as TNEF with its files', async () => {
    const r = await inspect(winmail({ title: 'NOTES.TXT', longName: 'notes.txt', data: 'hello\n' }, { longName: 'report.pdf', data: SAMPLES.pdf() }));
    assert.deepEqual(r.findings, []);
    const part = r.parts.find((p) => p.path === 'part 2');
    assert.equal(part?.detectedType, 'tnef');
    assert.equal(part?.archiveMembers, 2);
  });

  test("an embedded message's display name is its subject, not a file name: not judged", async () => {
    const r = await inspect(winmail({ displayName: 'Your order at shop.com', embeddedMessage: true }, { longName: 'notes.txt', data: 'x' }));
    assert.deepEqual(r.findings, []);
  });

  test('an IMessage object does not make a file an embedded message: its display name is still judged', async () => {
    const iidIMessage = Buffer.from('0703020000000000c000000000000046', 'hex');
    const object = mapiProperty(PROPERTY_TYPES.object, 0x3701, [Buffer.concat([iidIMessage, Buffer.from('x')])]);
    const r = await inspect(winmail({ displayName: 'invoice.js', data: 'WScript.Echo(1)', extraProperties: [object] }));
    assert.deepEqual(described(r.findings), ['banned-extension/banned-extension part 2 > winmail.dat > invoice.js']);
  });

  test('the attachments of an embedded message are judged too: Outlook opens them from the embedded item', async () => {
    const r = await inspect(winmail({ displayName: 'Re: your order', embeddedMessage: true, embeddedFiles: [{ longName: 'invoice.exe', data: SAMPLES.pe() }] }));
    assert.deepEqual(described(r.findings), [
      'banned-extension/banned-extension part 2 > winmail.dat > attachment 1 > invoice.exe',
      'dangerous-content/pe part 2 > winmail.dat > attachment 1 > invoice.exe',
    ]);
  });

  describe('what cannot be read is unlistable (archives.unlistable), and what came before it is still judged', () => {
    const exeThenPdf = winmail({ longName: 'invoice.exe', data: notAProgram }, { longName: 'report.pdf', data: SAMPLES.pdf() });

    test('cut short inside the second file', async () => {
      const r = await inspect(exeThenPdf.subarray(0, exeThenPdf.length - 20));
      assert.deepEqual(described(r.findings), ['banned-extension/banned-extension part 2 > winmail.dat > invoice.exe', 'archive-limit/archive-unreadable part 2 > winmail.dat']);
    });

    test('an attribute length past the end', async () => {
      const broken = Buffer.from(exeThenPdf);
      // The last attribute (attAttachment) ends with its checksum; its length field sits before its data.
      const lastAttribute = broken.lastIndexOf(Buffer.from([0x02, 0x05, 0x90, 0x06, 0x00]));
      broken.writeUInt32LE(0x7fffffff, lastAttribute + 5);
      const r = await inspect(broken);
      assert.deepEqual(described(r.findings), ['banned-extension/banned-extension part 2 > winmail.dat > invoice.exe', 'archive-limit/archive-unreadable part 2 > winmail.dat']);
    });

    test('garbage after the signature', async () => {
      const garbage = Buffer.concat([Buffer.from([0x78, 0x9f, 0x3e, 0x22, 0x01, 0x00]), Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff))]);
      assert.deepEqual(described((await inspect(garbage)).findings), ['archive-limit/archive-unreadable part 2 > winmail.dat']);
    });

    test('allowed by policy: no finding', async () => {
      assert.deepEqual((await inspect(exeThenPdf.subarray(0, 40), { config: { archives: { unlistable: 'allow' } } })).findings, []);
    });
  });

  test('a part named winmail.dat or declared application/ms-tnef without the TNEF signature is unreadable', async () => {
    const notTnef = Buffer.from('this is not TNEF at all, just words');
    assert.deepEqual(described((await inspect(notTnef, { type: 'application/octet-stream' })).findings), ['archive-limit/archive-unreadable part 2']);
    assert.deepEqual(described((await inspect(notTnef, { name: 'mail.bin' })).findings), ['archive-limit/archive-unreadable part 2']);
    // The same bytes under another name and type are ordinary content.
    assert.deepEqual((await inspect(notTnef, { name: 'notes.txt', type: 'text/plain' })).findings, []);
  });

  test('limits: attachments per stream, expanded bytes per message, size held, TNEF within TNEF', async () => {
    const three = winmail({ longName: 'a.txt', data: 'a' }, { longName: 'b.txt', data: 'b' }, { longName: 'c.txt', data: 'c' });
    assert.deepEqual(described((await inspect(three, { config: { archives: { maxMembers: 2 } } })).findings), ['archive-limit/archive-members part 2 > winmail.dat']);

    const big = winmail({ longName: 'a.txt', data: 'x'.repeat(3000) });
    assert.deepEqual(described((await inspect(big, { config: { archives: { maxExpandedBytes: 2000 } } })).findings), ['archive-limit/archive-expanded-size part 2 > winmail.dat']);

    const noise = Buffer.from(Array.from({ length: 40_000 }, (_, i) => (i * 7919) & 0xff));
    const large = winmail({ longName: 'noise.bin', data: noise });
    assert.deepEqual(described((await inspect(large, { config: { archives: { maxBytes: 16 * 1024 } } })).findings), ['archive-limit/archive-too-large part 2']);

    const nested = winmail({ longName: 'winmail.dat', data: winmail({ longName: 'invoice.exe', data: notAProgram }) });
    assert.deepEqual(described((await inspect(nested)).findings), ['banned-extension/banned-extension part 2 > winmail.dat > winmail.dat > invoice.exe']);
    assert.deepEqual(described((await inspect(nested, { config: { maxMessageDepth: 1 } })).findings), ['archive-limit/message-depth part 2 > winmail.dat']);
  });

  test('a chain of four forwards (embedded messages) is within the default depth, and the innermost file is judged', async () => {
    let files: TnefFile[] = [{ longName: 'invoice.exe', data: notAProgram }];
    for (let i = 0; i < 3; i++) files = [{ displayName: `Fw: ${i}`, embeddedMessage: true, embeddedFiles: files }];
    const r = await inspect(winmail(...files));
    assert.deepEqual(described(r.findings), ['banned-extension/banned-extension part 2 > winmail.dat > attachment 1 > attachment 1 > attachment 1 > invoice.exe']);
  });
});
