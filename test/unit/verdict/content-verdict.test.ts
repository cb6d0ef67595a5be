// Findings combine by severity; a failure never lets mail through; reply texts are safe.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeReplyCode } from '@postfix-milter-ts/protocol';
import { actionsSchema, type ActionsConfig } from 'postfix-milter-ts/verdict/actions-config.js';
import { decideContentVerdict, type ContentChecks } from 'postfix-milter-ts/verdict/content-verdict.js';

const DEFAULTS: ActionsConfig = actionsSchema.parse({});
const CLEAN: ContentChecks = { attachments: [], failures: [], oversize: false };
const EXE = { kind: 'banned-extension', rule: 'banned-extension', name: 'invoice.pdf.exe', extension: 'exe' };
const SCAN_DOWN = { check: 'virus', reason: 'unreachable', detail: 'connect ECONNREFUSED /run/clamav/clamd.ctl' } as const;

const CASES: ReadonlyArray<readonly [string, ContentChecks, Partial<ActionsConfig>, string, string | undefined]> = [
  ['clean mail is accepted with the scanned header', CLEAN, {}, 'accepted', undefined],
  ['a virus is rejected naming it', { ...CLEAN, virus: 'Win.Worm.Mydoom-1.UNOFFICIAL' }, {}, 'rejected', '554 5.7.0 Message refused: virus Win.Worm.Mydoom-1.UNOFFICIAL'],
  ['a banned file is rejected naming it', { ...CLEAN, attachments: [EXE] }, {}, 'rejected', '554 5.7.0 Message refused: attachment "invoice.pdf.exe" (banned-extension .exe)'],
  ['a scanner failure tempfails', { ...CLEAN, failures: [SCAN_DOWN] }, {}, 'tempfailed', '451 4.7.1 Message could not be checked for viruses and dangerous content, try again later'],
  ['a virus rejects even when the attachment check failed', { ...CLEAN, virus: 'Eicar', failures: [{ check: 'attachments', reason: 'parse', detail: 'x' }] }, {}, 'rejected', '554 5.7.0 Message refused: virus Eicar'],
  ['a banned file rejects even when the scanner failed', { ...CLEAN, attachments: [EXE], failures: [SCAN_DOWN] }, {}, 'rejected', '554 5.7.0 Message refused: attachment "invoice.pdf.exe" (banned-extension .exe)'],
  ['a tag action does not let unscanned mail through: failure tempfails', { ...CLEAN, attachments: [EXE], failures: [SCAN_DOWN] }, { attachment: 'tag' }, 'tempfailed', '451 4.7.1 Message could not be checked for viruses and dangerous content, try again later'],
  ['oversize is refused with 552 5.3.4 by default', { ...CLEAN, oversize: true }, {}, 'rejected', '552 5.3.4 Message too large to be checked for viruses'],
  ['oversize may tempfail', { ...CLEAN, oversize: true }, { oversize: 'tempfail' }, 'tempfailed', '452 4.3.4 Message too large to be checked now, try again later'],
  ['oversize may be accepted, marked unscanned', { ...CLEAN, oversize: true }, { oversize: 'accept' }, 'accepted', undefined],
  ['a banned file inside an oversize message still rejects', { ...CLEAN, oversize: true, attachments: [EXE] }, { oversize: 'accept' }, 'rejected', '554 5.7.0 Message refused: attachment "invoice.pdf.exe" (banned-extension .exe)'],
  ['per-rule action overrides the attachment default', { ...CLEAN, attachments: [{ kind: 'encrypted-archive', rule: 'encrypted-archive', name: 'x.zip' }] }, { byRule: { 'encrypted-archive': 'quarantine' } }, 'quarantined', undefined],
  ['the strongest action wins: reject over quarantine', { ...CLEAN, virus: 'Eicar', attachments: [EXE] }, { attachment: 'quarantine' }, 'rejected', '554 5.7.0 Message refused: virus Eicar'],
  ['discard', { ...CLEAN, virus: 'Eicar' }, { virus: 'discard' }, 'discarded', undefined],
  ['tempfail action on a finding', { ...CLEAN, virus: 'Eicar' }, { virus: 'tempfail' }, 'tempfailed', '451 4.7.0 Message held back: virus Eicar, try again later'],
  ['tag accepts with headers', { ...CLEAN, virus: 'Eicar' }, { virus: 'tag' }, 'tagged', undefined],
  ['two findings about one file name it once', { ...CLEAN, attachments: [EXE, { kind: 'dangerous-content', rule: 'pe', name: 'invoice.pdf.exe' }] }, {}, 'rejected', '554 5.7.0 Message refused: attachment "invoice.pdf.exe" (banned-extension .exe)'],
  ['an unnamed part is called one', { ...CLEAN, attachments: [{ kind: 'dangerous-content', rule: 'pe', name: '' }] }, {}, 'rejected', '554 5.7.0 Message refused: unnamed attachment (pe)'],
  ['a structure finding names no file', { ...CLEAN, attachments: [{ kind: 'malformed-mime', rule: 'too-many-parts', name: '' }] }, {}, 'rejected', '554 5.7.0 Message refused: message structure (too-many-parts)'],
  ['several findings are summarised', { ...CLEAN, attachments: [EXE, { ...EXE, name: 'b.scr', extension: 'scr' }] }, {}, 'rejected', '554 5.7.0 Message refused: attachment "invoice.pdf.exe" (banned-extension .exe) and 1 more'],
];

for (const [what, checks, overrides, label, reply] of CASES) {
  test(what, () => {
    const v = decideContentVerdict(checks, { ...DEFAULTS, ...overrides });
    assert.equal(v.label, label);
    assert.equal(v.reply ? encodeReplyCode(v.reply) : undefined, reply);
  });
}

test('headers: scanned header on clean mail, none when switched off, tag headers on tagged mail', () => {
  assert.deepEqual(decideContentVerdict(CLEAN, DEFAULTS).addHeaders, [['X-Virus-Scanned', 'postfix-milter-ts with ClamAV']]);
  assert.deepEqual(decideContentVerdict(CLEAN, { ...DEFAULTS, scannedHeader: { ...DEFAULTS.scannedHeader, enabled: false } }).addHeaders, []);
  assert.deepEqual(decideContentVerdict({ ...CLEAN, virus: 'Eicar', attachments: [EXE] }, { ...DEFAULTS, virus: 'tag', attachment: 'tag' }).addHeaders, [
    ['X-Gateway-Virus', 'Eicar'],
    ['X-Gateway-Attachment', 'banned-extension: invoice.pdf.exe'],
  ]);
  assert.deepEqual(decideContentVerdict({ ...CLEAN, oversize: true }, { ...DEFAULTS, oversize: 'accept' }).addHeaders, [
    ['X-Virus-Scanned', 'not scanned: message larger than the scan limit'],
  ]);
});

test('tag headers are bounded: ten findings, then one header counting the rest', () => {
  const many = Array.from({ length: 1500 }, (_, i) => ({ ...EXE, name: `m${i}.exe` }));
  const headers = decideContentVerdict({ ...CLEAN, attachments: many }, { ...DEFAULTS, attachment: 'tag' }).addHeaders;
  assert.equal(headers.length, 11);
  assert.deepEqual(headers[0], ['X-Gateway-Attachment', 'banned-extension: m0.exe']);
  assert.deepEqual(headers[9], ['X-Gateway-Attachment', 'banned-extension: m9.exe']);
  assert.deepEqual(headers[10], ['X-Gateway-Attachment', 'and 1490 more']);
});

test('attacker-controlled names are made safe: controls, non-ASCII, quotes, %, length', () => {
  const evil = { ...EXE, name: `100%\u0000\r\n250 ok "r\u00e9sum\u00e9\u202Egpj.exe${'x'.repeat(300)}` };
  const v = decideContentVerdict({ ...CLEAN, attachments: [evil] }, DEFAULTS);
  const text = encodeReplyCode(v.reply!);
  assert.doesNotMatch(text, /[\r\n\0]/);
  assert.match(text, /^554 5\.7\.0 Message refused: attachment "100%%\?\?\?250 ok 'resume\?gpj\.exex+\.\.\." \(banned-extension \.exe\)$/);
  assert.ok(text.length < 300, `reply is ${text.length} characters`);
});

test('quarantine carries a reason for the hold queue', () => {
  const v = decideContentVerdict({ ...CLEAN, virus: 'Eicar' }, { ...DEFAULTS, virus: 'quarantine' });
  assert.equal(v.action, 'quarantine');
  assert.equal(v.quarantineReason, 'virus Eicar');
});
