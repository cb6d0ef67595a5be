import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ADDED_TO_UNION, DEFAULT_BANNED_EXTENSIONS, EXCLUDED_FROM_UNION, PEER_UNION_EXTENSIONS } from 'postfix-milter-ts/content/banned-extensions.js';
import { doubleExtension, extensionsOf, hasClsid, lastExtension, normaliseFileName } from 'postfix-milter-ts/content/file-name.js';
import { decodeEncodedWords, namesFromHeaderLines } from 'postfix-milter-ts/content/mime-names.js';

describe('normaliseFileName', () => {
  const cases: [raw: string, name: string, flags?: { bidi?: boolean; invisible?: boolean; run?: boolean }][] = [
    ['Setup.EXE', 'setup.exe'],
    ['  report.pdf  ', 'report.pdf'],
    ['x.exe.', 'x.exe'],
    ['x.exe. . .', 'x.exe'],
    ['doc.pdf   .exe', 'doc.pdf.exe', {}],
    ['doc.pdf          .exe', 'doc.pdf.exe', { run: true }],
    ['photo\u202Egnp.exe', 'photognp.exe', { bidi: true }],
    ['a\u2066b\u2069.scr', 'ab.scr', { bidi: true }],
    ['inv\u200Boice.e\u200Dxe', 'invoice.exe', { invisible: true }],
    ['\uFEFFfile.js', 'file.js', { invisible: true }],
    ['soft\u00ADhyphen.vbs', 'softhyphen.vbs', { invisible: true }],
    ['tab\there.bat', 'tab here.bat'],
    ['nbsp\u00A0.exe', 'nbsp.exe'],
    ['C:\\Users\\x\\evil.exe', 'evil.exe'],
    ['dir/sub/evil.exe', 'evil.exe'],
    ['invoice.js/', 'invoice.js'], // a trailing separator does not hide the name
    ['dir\\invoice.js\\\\', 'invoice.js'],
    ['x.exe::$DATA', 'x.exe'],
    ['Cafe\u0301.pdf', 'caf\u00e9.pdf'], // NFC
    ['', ''],
  ];
  for (const [raw, name, flags = {}] of cases) {
    test(`${JSON.stringify(raw)} → ${JSON.stringify(name)}`, () => {
      const n = normaliseFileName(raw);
      assert.equal(n.name, name);
      assert.equal(n.hadBidiControls, flags.bidi ?? false);
      assert.equal(n.hadInvisible, flags.invisible ?? false);
      assert.equal(n.hadWhitespaceRun, flags.run ?? false);
    });
  }

  test('time linear in the name: runs of 200,000 spaces, dots, slashes or NULs before one more character', () => {
    for (const run of [' ', '.', '/', '\\', '\0', ' .']) {
      const raw = `${run.repeat(200_000)}x`;
      const t0 = performance.now();
      normaliseFileName(raw);
      normaliseFileName(`${raw}.exe${run.repeat(200_000)}`);
      const ms = performance.now() - t0;
      assert.ok(ms < 500, `${JSON.stringify(run)}: ${ms.toFixed(0)} ms`);
    }
  });
});

describe('extension analysis', () => {
  const banned = new Set(['exe', 'scr', 'vbs', 'js']);
  const isBanned = (e: string): boolean => banned.has(e);
  const cases: [name: string, last: string, double: string | undefined, clsid: boolean][] = [
    ['invoice.pdf.exe', 'exe', 'pdf', false],
    ['invoice.exe', 'exe', undefined, false],
    ['my.holiday.photos.exe', 'exe', undefined, false], // 'photos' is 6 letters: not a fake extension
    ['report.2024.exe', 'exe', undefined, false], // numbers and dates are not extensions
    ['payment.wed.exe', 'exe', undefined, false],
    ['archive.exe.exe', 'exe', undefined, false],
    ['image.jpg.scr', 'scr', 'jpg', false],
    ['letter.doc.js', 'js', 'doc', false],
    ['report.pdf.html', 'html', undefined, false],
    ['a.tar.gz', 'gz', undefined, false],
    ['.bashrc', 'bashrc', undefined, false],
    ['noext', '', undefined, false],
    ['readme.txt.{3050f4d8-98b5-11cf-bb82-00aa00bdce0b}', '{3050f4d8-98b5-11cf-bb82-00aa00bdce0b}', undefined, true],
    ['x.{aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee}.txt', 'txt', undefined, true],
    ['notes {draft}.txt', 'txt', undefined, false],
  ];
  for (const [name, last, dbl, clsid] of cases) {
    test(name, () => {
      assert.equal(lastExtension(name), last);
      assert.equal(doubleExtension(name, isBanned)?.inner, dbl);
      assert.equal(hasClsid(name), clsid);
    });
  }
  test('extensionsOf lists last first', () => {
    assert.deepEqual(extensionsOf('a.tar.gz'), ['gz', 'tar']);
  });
});

describe('default banned list', () => {
  test('is the 169-entry peer union minus the documented exclusions', () => {
    assert.equal(new Set(PEER_UNION_EXTENSIONS).size, 169);
    for (const ext of Object.keys(EXCLUDED_FROM_UNION)) assert.ok(PEER_UNION_EXTENSIONS.includes(ext), ext);
    for (const ext of Object.keys(ADDED_TO_UNION)) assert.ok(!PEER_UNION_EXTENSIONS.includes(ext), ext);
    assert.equal(DEFAULT_BANNED_EXTENSIONS.length, 169 - Object.keys(EXCLUDED_FROM_UNION).length + Object.keys(ADDED_TO_UNION).length);
    assert.deepEqual(DEFAULT_BANNED_EXTENSIONS, [...DEFAULT_BANNED_EXTENSIONS].sort());
  });
  test('holds what all three peers ban, and none of the office/document types', () => {
    for (const ext of ['exe', 'pif', 'scr', 'vbs', 'cpl', 'bat', 'cmd', 'com', 'js', 'lnk', 'iso', 'hta', 'vhd', 'img', 'one', 'msix']) assert.ok(DEFAULT_BANNED_EXTENSIONS.includes(ext), ext);
    for (const ext of ['docx', 'xlsx', 'pptx', 'pdf', 'html', 'ics', 'vcs', 'jpg', 'png', 'zip', 'emf']) assert.ok(!DEFAULT_BANNED_EXTENSIONS.includes(ext), ext);
  });
});

describe('names from raw MIME header lines', () => {
  const cases: [line: string, names: string[]][] = [
    ['Content-Disposition: attachment; filename="a.exe"', ['a.exe']],
    ['Content-Type: application/octet-stream; name=a.exe', ['a.exe']],
    ["Content-Disposition: attachment; filename*=UTF-8''%E2%80%AEgnp.exe", ['\u202Egnp.exe']],
    ["Content-Disposition: attachment; filename*=iso-8859-1'en'r%E9sum%E9.scr", ['r\u00e9sum\u00e9.scr']],
    ["Content-Disposition: attachment;\r\n filename*0*=UTF-8''in; filename*1*=voice.pdf.e; filename*2=xe", ['invoice.pdf.exe']],
    ['Content-Disposition: attachment; filename*1="oice.exe"; filename*0="inv"', ['invoice.exe']],
    ["Content-Disposition: attachment; filename=\"evil.exe\"; filename*=UTF-8''safe.txt", ['evil.exe', 'safe.txt']],
    ['Content-Disposition: attachment; filename="a.txt"; filename="b.exe"', ['a.txt', 'b.exe']],
    ['Content-Type: x/y; name="=?UTF-8?Q?rechnung=2Ejs?="', ['rechnung.js']],
    ['Content-Type: x/y; name="=?UTF-8?B?aW52?= =?UTF-8?B?b2ljZS5leGU=?="', ['invoice.exe']],
    ['Content-Disposition: attachment (note; filename=fake.exe); filename="real.pdf"', ['real.pdf']],
    ['Content-Disposition: attachment; filename="quo\\"ted.exe"', ['quo"ted.exe']],
    [`Content-Disposition: attachment; filename="${Buffer.from('photo\u202Egnp.exe').toString('latin1')}"`, ['photo\u202Egnp.exe']],
    ['X-Other: filename=x.exe', []],
    // Thunderbird starts parameters at the first `;` or `,`, or at the start when there is neither.
    ['Content-Disposition: attachment, filename="invoice.js"', ['invoice.js']],
    ['Content-Disposition: filename="invoice.js"', ['invoice.js']],
    ['Content-Type: application/octet-stream, name="invoice.js"', ['invoice.js']],
    ['Content-Type: application/octet-stream; charset=x, name=invoice.js', ['invoice.js']],
    ['Content-Type: application/octet-stream; name=invoice.pdf,.exe', ['invoice.pdf', 'invoice.pdf,.exe']],
    ['Content-Type: application/octet-stream', []],
    ['Content-Disposition: attachment', []],
    // Older headers that name the part by their whole value.
    ['Content-Name: invoice.js', ['invoice.js']],
    ['X-Sun-Data-Name: =?UTF-8?Q?invoice=2Ejs?=', ['invoice.js']],
    // UTF-7, which the WHATWG decoder does not know.
    ['Content-Type: x/y; name="=?utf-7?Q?invoice+AC4-js?="', ['invoice.js']],
    ["Content-Disposition: attachment; filename*=utf-7''invoice+AC4-js", ['invoice.js']],
  ];
  for (const [line, names] of cases) {
    test(JSON.stringify(line), () => {
      const key = line.slice(0, line.indexOf(':')).toLowerCase();
      assert.deepEqual(namesFromHeaderLines([{ key, line }]), names);
    });
  }
  test('decodeEncodedWords leaves plain text alone', () => {
    assert.equal(decodeEncodedWords('plain.txt'), 'plain.txt');
  });
});
