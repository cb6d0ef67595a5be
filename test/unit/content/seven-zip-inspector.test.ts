// RAR, 7z, tar and gzip archives listed by 7-Zip (7z-wasm) in its worker thread: member names judged like zip
// members, password protection, what cannot be listed, the limits, and the worker's time limit.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { type AttachmentsConfig, attachmentsSchema } from 'postfix-milter-ts/content/attachment-config.js';
import type { ArchiveContext } from 'postfix-milter-ts/content/archive-context.js';
import { inspectZip } from 'postfix-milter-ts/content/archive-inspector.js';
import { compileContentRules } from 'postfix-milter-ts/content/content-rules.js';
import { compileNameRules } from 'postfix-milter-ts/content/name-rules.js';
import { ArchiveListerBusyError, SevenZipLister } from 'postfix-milter-ts/content/seven-zip-lister.js';
import { inspectWithSevenZip } from 'postfix-milter-ts/content/seven-zip-inspector.js';
import { makeRar } from './rar-writer.js';
import { makeWithSevenZip } from './seven-zip-writer.js';
import { SAMPLES, makeZip } from './zip-writer.js';

const lister = new SevenZipLister();
after(() => lister.close());

function ctx(archives: Record<string, unknown> = {}): ArchiveContext {
  const config: AttachmentsConfig = attachmentsSchema.parse({ archives });
  return { limits: config.archives, names: compileNameRules(config), content: compileContentRules(config), budget: { expandedLeft: config.archives.maxExpandedBytes }, cancelled: () => false, lister };
}

async function kindsAndRules(archive: Buffer, c = ctx()): Promise<string[]> {
  const r = await inspectWithSevenZip(archive, 'a.rar', 'part 2 > a.rar', c);
  return [...new Set(r.findings.map((f) => `${f.kind}/${f.rule}`))].sort();
}

/** gzip with the original file name in its header (FLG.FNAME), as `gzip file` writes it. */
function gzipNamed(name: string, data: string): Buffer {
  const plain = gzipSync(Buffer.from(data));
  const head = Buffer.from(plain.subarray(0, 10));
  head[3] = 0x08;
  return Buffer.concat([head, Buffer.from(`${name}\0`, 'latin1'), plain.subarray(10)]);
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
