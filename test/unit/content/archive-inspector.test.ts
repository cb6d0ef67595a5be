import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AttachmentsConfig, attachmentsSchema } from 'postfix-milter-ts/content/attachment-config.js';
import { inspectZip, zipStartOffset } from 'postfix-milter-ts/content/archive-inspector.js';
import { compileContentRules } from 'postfix-milter-ts/content/content-rules.js';
import { compileNameRules } from 'postfix-milter-ts/content/name-rules.js';
import { SerialQueue } from 'postfix-milter-ts/content/serial-queue.js';
import { sharedArchiveLister } from 'postfix-milter-ts/content/seven-zip-lister.js';
import { decodeCp437 } from 'postfix-milter-ts/content/zip-names.js';
import { SAMPLES, makeZip } from './zip-writer.js';

function ctx(overrides: Record<string, unknown> = {}, archives: Record<string, unknown> = {}): Parameters<typeof inspectZip>[4] {
  const config: AttachmentsConfig = attachmentsSchema.parse({ ...overrides, archives });
  return { limits: config.archives, names: compileNameRules(config), content: compileContentRules(config), budget: { expandedLeft: config.archives.maxExpandedBytes }, cancelled: () => false, lister: sharedArchiveLister, listingTurns: new SerialQueue() };
}

async function kindsAndRules(zip: Buffer, c = ctx()): Promise<string[]> {
  const r = await inspectZip(zip, 'a.zip', 'part 2 > a.zip', 1, c);
  return [...new Set(r.findings.map((f) => `${f.kind}/${f.rule}`))].sort();
}

describe('inspectZip', () => {
  test('a clean zip has no findings and counts its members', async () => {
    const r = await inspectZip(makeZip([{ name: 'a.pdf', data: SAMPLES.pdf() }, { name: 'dir/', data: '' }, { name: 'dir/b.txt', data: 'hi' }]), 'a.zip', 'part 2 > a.zip', 1, ctx());
    assert.deepEqual(r.findings, []);
    assert.equal(r.members, 3);
  });

  test('a banned member is reported with its path', async () => {
    const r = await inspectZip(makeZip([{ name: 'docs/inner.exe', data: 'x' }]), 'a.zip', 'part 2 > a.zip', 1, ctx());
    assert.deepEqual(r.findings, [{ kind: 'archive-banned-member', rule: 'banned-extension', name: 'docs/inner.exe', extension: 'exe', path: 'part 2 > a.zip > docs/inner.exe' }]);
  });

  const cases: [label: string, zip: () => Buffer, want: string[], c?: () => ReturnType<typeof ctx>][] = [
    ['double extension member', () => makeZip([{ name: 'invoice.pdf.scr', data: 'x' }]), ['archive-banned-member/banned-extension', 'archive-banned-member/double-extension']],
    ['PE content under a harmless name', () => makeZip([{ name: 'notes.txt', data: SAMPLES.pe() }]), ['dangerous-content/pe', 'type-mismatch/pe-as-extension']],
    ['hostile path names are still listed (yauzl would refuse them)', () => makeZip([{ name: '../../evil.exe', data: 'x' }, { name: '/abs/evil2.bat', data: 'y' }]), ['archive-banned-member/banned-extension']],
    ['nested zip, 2 levels', () => makeZip([{ name: 'in.zip', data: makeZip([{ name: 'x.vbs', data: 'x' }]) }]), ['archive-banned-member/banned-extension']],
    ['nested zip stored (not deflated)', () => makeZip([{ name: 'in.zip', data: makeZip([{ name: 'x.vbs', data: 'x' }]), store: true }]), ['archive-banned-member/banned-extension']],
    ['nesting deeper than maxDepth', () => makeZip([{ name: 'l2.zip', data: makeZip([{ name: 'l3.zip', data: makeZip([{ name: 'ok.txt', data: 'x' }]) }]) }]), ['archive-limit/archive-depth'], () => ctx({}, { maxDepth: 2 })],
    ['nesting within maxDepth', () => makeZip([{ name: 'l2.zip', data: makeZip([{ name: 'l3.zip', data: makeZip([{ name: 'ok.txt', data: 'x' }]) }]) }]), [], () => ctx({}, { maxDepth: 3 })],
    ['a shell script in a source zip (shebang is not dangerous by default)', () => makeZip([{ name: 'build.sh', data: '#!/bin/sh\nmake\n' }, { name: 'notes.txt', data: '#!/bin/bash\necho\n' }]), []],
    ['a shell script when shebang is listed in dangerousTypes', () => makeZip([{ name: 'build.sh', data: '#!/bin/sh\nmake\n' }]), ['dangerous-content/shebang'], () => ctx({ dangerousTypes: ['pe', 'shebang'] })],
    ['encrypted member (reject policy)', () => makeZip([{ name: 'secret.pdf', data: 'x', encrypted: true }]), ['encrypted-archive/encrypted-archive']],
    ['encrypted member (allow policy)', () => makeZip([{ name: 'secret.pdf', data: 'x', encrypted: true }]), [], () => ctx({}, { encrypted: 'allow' })],
    ['encrypted member names are still checked', () => makeZip([{ name: 'run.exe', data: 'x', encrypted: true }]), ['archive-banned-member/banned-extension'], () => ctx({}, { encrypted: 'allow' })],
    ['too many members', () => makeZip(Array.from({ length: 12 }, (_, i) => ({ name: `f${i}.txt`, data: 'x' }))), ['archive-limit/archive-members'], () => ctx({}, { maxMembers: 10 })],
    ['zip bomb ratio', () => makeZip([{ name: 'zeros.bin', data: Buffer.alloc(8 * 1024 * 1024) }]), ['archive-limit/archive-ratio']],
    ['expanded size over the message budget (declared sizes)', () => makeZip([{ name: 'a.txt', data: 'x', declaredSize: 3000 }, { name: 'b.txt', data: 'y', declaredSize: 3000 }]), ['archive-limit/archive-expanded-size'], () => ctx({}, { maxExpandedBytes: 5000 })],
    ['not a zip at all (unlistable, reject)', () => Buffer.from('PK\x03\x04 truncated garbage'), ['archive-limit/archive-unreadable']],
    ['not a zip at all (unlistable, allow)', () => Buffer.from('PK\x03\x04 truncated garbage'), [], () => ctx({}, { unlistable: 'allow' })],
    ['concatenated zips: members hidden from the central directory', () => Buffer.concat([makeZip([{ name: 'hidden.exe', data: 'x' }]), makeZip([{ name: 'shown.txt', data: 'y' }])]), ['archive-banned-member/banned-extension', 'archive-limit/archive-unreadable']],
    ['allowedExtensions removes a banned one', () => makeZip([{ name: 'setup.cab', data: 'x' }]), [], () => ctx({ allowedExtensions: ['.CAB'] })],
    ['office document with media', () => SAMPLES.ooxml('word'), []],
    ['a folder name in the header, a file in the Unicode Path field', () => makeZip([{ name: 'docs/', data: SAMPLES.pe(), unicodePath: 'invoice.exe' }]), ['archive-banned-member/banned-extension', 'dangerous-content/pe']],
    ['a folder name with data is a file', () => makeZip([{ name: 'docs/', data: SAMPLES.pe() }]), ['dangerous-content/pe']],
    ['a real folder', () => makeZip([{ name: 'docs/', data: '' }, { name: 'docs/a.txt', data: 'x' }]), []],
    ['a NUL ends the member name for unzip', () => makeZip([{ name: 'invoice.exe\0.txt', data: 'WScript.Echo(1)' }]), ['archive-banned-member/banned-extension']],
  ];
  for (const [label, zip, want, c] of cases) {
    test(label, async () => assert.deepEqual(await kindsAndRules(zip(), c?.()), want));
  }

  test('yields to the event loop on big archives', async () => {
    const zip = makeZip(Array.from({ length: 1500 }, (_, i) => ({ name: `f${i}.txt`, data: 'x', store: true })));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const r = await inspectZip(zip, 'a.zip', 'p', 1, ctx());
    clearInterval(timer);
    assert.equal(r.members, 1500);
    assert.ok(ticks > 0, 'a timer ran while listing');
  });

  test('zipStartOffset finds a zip behind other bytes, as unzip does', () => {
    const zip = makeZip([{ name: 'invoice.exe', data: 'x' }]);
    assert.equal(zipStartOffset(zip), 0);
    assert.equal(zipStartOffset(Buffer.concat([Buffer.from('X'), zip])), 1);
    assert.equal(zipStartOffset(Buffer.concat([SAMPLES.pdf(), zip])), SAMPLES.pdf().length);
    // An end record whose directory would start before the buffer, and none at all.
    assert.equal(zipStartOffset(zip.subarray(10)), undefined);
    assert.equal(zipStartOffset(SAMPLES.pdf()), undefined);
  });

  test('CP437 table covers the upper half', () => {
    assert.equal(decodeCp437(Uint8Array.from([0x80, 0xe1, 0xff, 0x41])), 'Çß\u00a0A');
  });
});
