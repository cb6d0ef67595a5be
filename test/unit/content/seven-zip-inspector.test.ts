// RAR, 7z, tar and gzip archives listed by 7-Zip (7z-wasm) in its worker thread: member names judged like zip
// members, password protection, what cannot be listed, the limits, and the worker's time limit.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { crc32, gzipSync } from 'node:zlib';
import { type AttachmentsConfig, attachmentsSchema } from 'postfix-milter-ts/content/attachment-config.js';
import type { ArchiveContext } from 'postfix-milter-ts/content/archive-context.js';
import { inspectZip } from 'postfix-milter-ts/content/archive-inspector.js';
import { compileContentRules } from 'postfix-milter-ts/content/content-rules.js';
import { compileNameRules } from 'postfix-milter-ts/content/name-rules.js';
import { SerialQueue } from 'postfix-milter-ts/content/serial-queue.js';
import { type ArchiveLister, ArchiveListerBusyError, SevenZipLister } from 'postfix-milter-ts/content/seven-zip-lister.js';
import { inspectWithSevenZip } from 'postfix-milter-ts/content/seven-zip-inspector.js';
import { gzipNamed, gzipWithZeros, makeTar, makeTarBomb, makeTgz, tarHeader } from './gzip-writer.js';
import { makeRar } from './rar-writer.js';
import { makeWithSevenZip } from './seven-zip-writer.js';
import { SAMPLES, makeZip } from './zip-writer.js';

const lister = new SevenZipLister();
after(() => lister.close());

function ctx(archives: Record<string, unknown> = {}): ArchiveContext {
  const config: AttachmentsConfig = attachmentsSchema.parse({ archives });
  return { limits: config.archives, names: compileNameRules(config), content: compileContentRules(config), budget: { expandedLeft: config.archives.maxExpandedBytes }, cancelled: () => false, lister, listingTurns: new SerialQueue() };
}

async function kindsAndRules(archive: Buffer, c = ctx()): Promise<string[]> {
  const r = await inspectWithSevenZip(archive, 'a.rar', 'part 2 > a.rar', c);
  return [...new Set(r.findings.map((f) => `${f.kind}/${f.rule}`))].sort();
}

/** A 7z whose (Copy-coded) packed header claims to unpack to `unpackBytes`: 7-Zip allocates that before reading it. */
function sevenZipClaimingPackedHeader(unpackBytes: number): Buffer {
  // 7z's NUMBER in its 9-byte form: 0xff, then 8 bytes little-endian.
  const num = (v: number): Buffer => {
    const b = Buffer.alloc(9);
    b[0] = 0xff;
    b.writeBigUInt64LE(BigInt(v), 1);
    return b;
  };
  const packed = Buffer.alloc(16);
  // kEncodedHeader: kPackInfo (at 0, one stream of 16 bytes), kUnpackInfo (one folder, one Copy coder, its size).
  const header = Buffer.concat([
    Buffer.from([0x17, 0x06]), num(0), num(1), Buffer.from([0x09]), num(packed.length), Buffer.from([0x00]),
    Buffer.from([0x07, 0x0b]), num(1), Buffer.from([0x00]), num(1), Buffer.from([0x01, 0x00]),
    Buffer.from([0x0c]), num(unpackBytes), Buffer.from([0x00, 0x00]),
  ]);
  const startHeader = Buffer.alloc(20);
  startHeader.writeBigUInt64LE(BigInt(packed.length), 0);
  startHeader.writeBigUInt64LE(BigInt(header.length), 8);
  startHeader.writeUInt32LE(crc32(header), 16);
  const signature = Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4, 0, 0, 0, 0]);
  signature.writeUInt32LE(crc32(startHeader), 8);
  return Buffer.concat([signature, startHeader, packed, header]);
}

describe('inspectWithSevenZip', () => {
  test('a RAR 5 with an executable in a folder: the member is reported with its path', async () => {
    const r = await inspectWithSevenZip(makeRar([{ name: 'docs/invoice.exe', data: SAMPLES.pe() }, { name: 'readme.txt', data: 'hi' }]), 'a.rar', 'part 2 > a.rar', ctx());
    assert.deepEqual(r.findings, [{ kind: 'archive-banned-member', rule: 'banned-extension', name: 'docs/invoice.exe', extension: 'exe', path: 'part 2 > a.rar > docs/invoice.exe' }]);
    assert.equal(r.members, 2);
  });

  test('a clean RAR 5 and a clean 7z have no findings', async () => {
    assert.deepEqual(await kindsAndRules(makeRar([{ name: 'report.pdf', data: SAMPLES.pdf() }, { name: 'notes.txt', data: 'x' }])), []);
    assert.deepEqual(await kindsAndRules(await makeWithSevenZip('7z', [{ name: 'report.pdf', data: SAMPLES.pdf() }])), []);
  });

  const cases: [label: string, archive: () => Buffer | Promise<Buffer>, want: string[], c?: () => ArchiveContext][] = [
    ['7z with a script', () => makeWithSevenZip('7z', [{ name: 'a/b/run.js', data: 'x' }]), ['archive-banned-member/banned-extension']],
    ['7z with a double extension', () => makeWithSevenZip('7z', [{ name: 'invoice.pdf.scr', data: 'x' }]), ['archive-banned-member/banned-extension', 'archive-banned-member/double-extension']],
    ['tar with a shortcut', () => makeWithSevenZip('tar', [{ name: 'photo.lnk', data: 'x' }]), ['archive-banned-member/banned-extension']],
    ['gzip whose header names an executable', () => gzipNamed('invoice.exe', 'MZ'), ['archive-banned-member/banned-extension']],
    ['gzip without a name', () => gzipSync(Buffer.from('log line\n')), []],
    // More than a tar header's worth of text: not a tar (its checksum fails), so the gzip's own name is judged.
    ['gzip of a text file named invoice.exe', () => gzipNamed('invoice.exe', 'log line\n'.repeat(200)), ['archive-banned-member/banned-extension']],
    // 7-Zip prints control characters as `_`: the name cannot hide its extension on a line of its own.
    ['RAR name with a newline before the real extension', () => makeRar([{ name: 'readme.txt\nSize = 3.exe', data: 'x' }]), ['archive-banned-member/banned-extension']],
    ['RAR name with a right-to-left override', () => makeRar([{ name: 'x\u202egpj.exe', data: 'x' }]), ['archive-banned-member/banned-extension']],
    ['RAR 5 with a password-protected member', () => makeRar([{ name: 'secret.pdf', data: Buffer.alloc(16), encrypted: true }]), ['encrypted-archive/encrypted-archive']],
    ['7z with a password: names visible, member encrypted', () => makeWithSevenZip('7z', [{ name: 'secret.pdf', data: 'x' }], { password: 'pw' }), ['encrypted-archive/encrypted-archive']],
    ['7z with a password, names visible: an executable is still seen', () => makeWithSevenZip('7z', [{ name: 'run.exe', data: 'x' }], { password: 'pw' }), ['archive-banned-member/banned-extension', 'encrypted-archive/encrypted-archive']],
    ['7z with encrypted names: unlistable', () => makeWithSevenZip('7z', [{ name: 'run.exe', data: 'x' }], { password: 'pw', encryptNames: true }), ['archive-limit/archive-unreadable']],
    ['RAR 5 with encrypted headers: unlistable', () => makeRar([], { encryptedHeaders: true }), ['archive-limit/archive-unreadable']],
    ['RAR 5 cut short', () => makeRar([{ name: 'a.txt', data: 'x'.repeat(100) }]).subarray(0, 40), ['archive-limit/archive-unreadable']],
    ['encrypted names with unlistable: allow', () => makeWithSevenZip('7z', [{ name: 'run.exe', data: 'x' }], { password: 'pw', encryptNames: true }), [], () => ctx({ unlistable: 'allow' })],
    ['password-protected member with encrypted: allow', () => makeRar([{ name: 'secret.pdf', data: Buffer.alloc(16), encrypted: true }]), [], () => ctx({ encrypted: 'allow' })],
    ['more members than maxMembers', () => makeRar([{ name: 'a.txt', data: 'x' }, { name: 'b.txt', data: 'x' }, { name: 'c.txt', data: 'x' }]), ['archive-limit/archive-members'], () => ctx({ maxMembers: 2 })],
    ['members larger in sum than maxExpandedBytes', () => makeRar([{ name: 'a.txt', data: 'x'.repeat(3000) }]), ['archive-limit/archive-expanded-size'], () => ctx({ maxExpandedBytes: 2000 })],
  ];
  for (const [label, archive, want, c] of cases) {
    test(label, async () => assert.deepEqual(await kindsAndRules(await archive(), c?.()), want));
  }

  test('a .tgz: the tar inside is listed, its members reported at the .tgz\'s path', async () => {
    const tgz = await makeTgz([{ name: 'readme.txt', data: 'hi' }, { name: 'invoice.exe', data: SAMPLES.pe() }]);
    const r = await inspectWithSevenZip(tgz, 'x.tgz', 'part 2 > x.tgz', ctx());
    assert.deepEqual(r.findings, [{ kind: 'archive-banned-member', rule: 'banned-extension', name: 'invoice.exe', extension: 'exe', path: 'part 2 > x.tgz > invoice.exe' }]);
    assert.deepEqual(await kindsAndRules(await makeTgz([{ name: 'notes.txt', data: 'x' }, { name: 'logs/today.txt', data: 'y' }])), []);
  });

  test('a .tar.gz of 27 MB of logs, more than archives.maxBytes: walked within the expanded-size budget, no finding', async () => {
    const log = Array.from({ length: 450_000 }, (_, i) => `2026-11-23T09:25:58Z app[${i % 977}]: request ${i} served in ${i % 31} ms\n`).join('');
    assert.ok(log.length > 27_000_000);
    const tgz = gzipSync(makeTar([{ name: 'logs/app.log', data: log }, { name: 'logs/README', data: 'rotated daily' }]));
    const c = ctx();
    const r = await inspectWithSevenZip(tgz, 'logs.tar.gz', 'part 2 > logs.tar.gz', c);
    assert.deepEqual(r.findings, []);
    assert.equal(r.members, 3);
    // The tar's whole size is spent from the budget, as decompressed.
    assert.ok(c.budget.expandedLeft < c.limits.maxExpandedBytes - 27_000_000);
  });

  test('an old-format (v7) tar, without the ustar magic, in a .tgz: its members are walked like any tar\'s', async () => {
    const tgz = gzipSync(makeTar([{ name: 'readme.txt', data: 'hi' }, { name: 'invoice.exe', data: SAMPLES.pe() }], 'v7'));
    const r = await inspectWithSevenZip(tgz, 'docs.tgz', 'part 2 > docs.tgz', ctx());
    assert.deepEqual(r.findings, [{ kind: 'archive-banned-member', rule: 'banned-extension', name: 'invoice.exe', extension: 'exe', path: 'part 2 > docs.tgz > invoice.exe' }]);
  });

  test('a tar bomb in a gzip stops at the first limit it reaches, at once', async () => {
    const started = performance.now();
    // One 600 MB member: over the 512 MB budget by its header alone, before its data is decompressed.
    const bomb = makeTarBomb(600);
    assert.deepEqual(await kindsAndRules(bomb), ['archive-limit/archive-expanded-size']);
    // Members before the limit are still judged.
    const afterExe = gzipWithZeros(Buffer.concat([makeTar([{ name: 'run.exe', data: 'MZ' }]).subarray(0, 1024), tarHeader('zeros.bin', 600 * 1024 * 1024)]), 600);
    assert.deepEqual(await kindsAndRules(afterExe), ['archive-banned-member/banned-extension', 'archive-limit/archive-expanded-size']);
    // Many small members: the walk stops one past maxMembers.
    const many = gzipSync(makeTar(Array.from({ length: 5000 }, (_, i) => ({ name: `f${i}.txt`, data: '' }))));
    const r = await inspectWithSevenZip(many, 'x.tgz', 'part 2 > x.tgz', ctx());
    assert.deepEqual(r.findings.map((f) => f.rule), ['archive-members']);
    assert.equal(r.members, 1 + 2000);
    assert.ok(performance.now() - started < 3000, 'stops at the limit');
  });

  test('a .tgz whose tar is cut short after its first header: archive-unreadable (or allowed by policy)', async () => {
    const data = randomBytes(64 * 1024);
    const cutGzip = gzipSync(makeTar([{ name: 'a.bin', data }])).subarray(0, 20 * 1024);
    const cutTar = gzipSync(makeTar([{ name: 'a.bin', data }], 'v7').subarray(0, 4096));
    for (const tgz of [cutGzip, cutTar]) {
      assert.deepEqual(await kindsAndRules(tgz), ['archive-limit/archive-unreadable']);
      assert.deepEqual(await kindsAndRules(tgz, ctx({ unlistable: 'allow' })), []);
    }
  });

  test('a .tgz whose walk runs past archives.listTimeout (endless empty blocks after the tar): archive-unreadable', async () => {
    // 7-Zip is not what is timed here: a stand-in lists the gzip at once.
    const quick: ArchiveLister = { list: () => Promise.resolve({ names: ['archive~'], encrypted: false, expandedBytes: 0, complete: true }) };
    const padded = gzipWithZeros(makeTar([{ name: 'a.txt', data: 'x' }]), 2000);
    const c = { ...ctx({ listTimeout: '100ms', maxExpandedBytes: '4G' }), lister: quick };
    const started = performance.now();
    assert.deepEqual(await kindsAndRules(padded, c), ['archive-limit/archive-unreadable']);
    assert.ok(performance.now() - started < 1000, 'stops at the time limit');
  });

  test('a message aborted during the outer listing, or between the tar\'s entries, is not walked further', async () => {
    const abortedAfter = (checks: number): ArchiveContext => {
      let n = 0;
      return { ...ctx(), cancelled: () => ++n > checks };
    };
    const tgz = gzipSync(makeTar([{ name: 'readme.txt', data: 'hi' }, { name: 'invoice.exe', data: 'MZ' }]));
    // Checked before the outer listing, after it, then at each entry.
    assert.deepEqual(await inspectWithSevenZip(tgz, 'x.tgz', 'part 2 > x.tgz', abortedAfter(1)), { findings: [], members: 0, listed: new Set() });
    assert.deepEqual(await kindsAndRules(tgz, abortedAfter(3)), []);
    assert.deepEqual(await kindsAndRules(tgz, abortedAfter(4)), ['archive-banned-member/banned-extension']);
  });

  test('a 7z that makes 7-Zip ask for a gigabyte of memory: refused, unreadable', async () => {
    const listing = await lister.list(sevenZipClaimingPackedHeader(1024 * 1024 * 1024), 10, 10_000);
    assert.match(listing.error ?? '', /listing needs more than 536870912 bytes of memory/);
    assert.deepEqual(await kindsAndRules(sevenZipClaimingPackedHeader(1024 * 1024 * 1024)), ['archive-limit/archive-unreadable']);
  });

  test('a RAR inside a zip is listed too', async () => {
    const zip = makeZip([{ name: 'inner.rar', data: makeRar([{ name: 'x.exe', data: 'MZ' }]) }]);
    const r = await inspectZip(zip, 'a.zip', 'part 2 > a.zip', 1, ctx());
    assert.deepEqual(r.findings.map((f) => `${f.kind}/${f.rule} ${f.path}`), ['archive-banned-member/banned-extension part 2 > a.zip > inner.rar > x.exe']);
  });
});

describe('SevenZipLister', () => {
  test('a listing over its time limit is incomplete, the worker is replaced, and the next listing works', async () => {
    const own = new SevenZipLister();
    try {
      const slow = await own.list(makeRar([{ name: 'a.txt', data: 'x' }]), 10, 1);
      assert.equal(slow.complete, false);
      assert.match(slow.error ?? '', /longer than 1 ms/);
      const next = await own.list(makeRar([{ name: 'a.txt', data: 'x' }]), 10, 10_000);
      assert.deepEqual(next, { names: ['a.txt'], encrypted: false, expandedBytes: 1, complete: true });
      assert.equal(own.workersStarted, 2);
    } finally {
      await own.close();
    }
  });

  test('archives beyond the waiting limit are refused as busy, not judged', async () => {
    const own = new SevenZipLister({ maxWaiting: 1 });
    try {
      const rar = makeRar([{ name: 'a.txt', data: 'x' }]);
      const first = own.list(rar, 10, 10_000);
      const second = own.list(rar, 10, 10_000);
      await assert.rejects(own.list(rar, 10, 10_000), ArchiveListerBusyError);
      assert.equal((await first).complete, true);
      assert.equal((await second).complete, true);
    } finally {
      await own.close();
    }
  });

  test('a worker that fails is our fault, not the archive\'s: the listing is refused (the message tempfails), not judged', async () => {
    const own = new SevenZipLister({ workerUrl: new URL('data:text/javascript,throw new Error("cannot load 7-Zip")') });
    try {
      const rar = makeRar([{ name: 'a.txt', data: 'x' }]);
      await assert.rejects(own.list(rar, 10, 10_000), /the 7-Zip worker stopped: cannot load 7-Zip/);
      await assert.rejects(own.list(rar, 10, 10_000), /the 7-Zip worker stopped/);
      assert.equal(own.workersStarted, 2);
    } finally {
      await own.close();
    }
  });

  test('the worker stops when idle and starts again on demand', async () => {
    const own = new SevenZipLister({ idleMs: 50 });
    try {
      const rar = makeRar([{ name: 'a.txt', data: 'x' }]);
      assert.equal((await own.list(rar, 10, 10_000)).complete, true);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await own.list(rar, 10, 10_000)).complete, true);
      assert.equal(own.workersStarted, 2);
    } finally {
      await own.close();
    }
  });
});
