import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseVirusName } from 'postfix-milter-ts/metrics/virus-name.js';

const CASES: ReadonlyArray<readonly [string, string, string, boolean]> = [
  // name as clamd reports it, platform, category, official
  ['Win.Worm.Mydoom-1', 'Win', 'Worm', true],
  ['Win.Test.EICAR_HDB-1', 'Win', 'Test', true],
  ['Doc.Dropper.Agent-6338880-0', 'Doc', 'Dropper', true],
  ['Pdf.Exploit.CVE_2018_4990-6539232-0', 'Pdf', 'Exploit', true],
  ['Html.Phishing.Bank-1234', 'Html', 'Phishing', true],
  ['Email.Trojan.Agent-1', 'Email', 'Trojan', true],
  ['Andr.Ransomware.Locker-1', 'Andr', 'Ransomware', true],
  ['Heuristics.Encrypted.Zip', 'Heuristics', 'Encrypted', true],
  ['Heuristics.Phishing.Email.SpoofedDomain', 'Heuristics', 'Phishing', true],
  ['Heuristics.Limits.Exceeded.MaxFileSize', 'Heuristics', 'Limits', true],
  ['PUA.Win.Packer.Upx-1', 'Win', 'PUA', true],
  ['win.trojan.lowercase-1', 'Win', 'Trojan', true],
  ['Doc.Trojan.Agent-123.UNOFFICIAL', 'Doc', 'Trojan', false],
  ['Sanesecurity.Junk.12345.UNOFFICIAL', 'other', 'other', false],
  ['Eicar-Test-Signature', 'other', 'other', true],
  ['Win.Unheardof.Thing-1', 'Win', 'other', true],
  ['Atari.Worm.Old-1', 'other', 'Worm', true],
  ['', 'other', 'other', true],
  ['Win.Trojan', 'other', 'other', true],
  ['..', 'other', 'other', true],
];

for (const [name, platform, category, official] of CASES) {
  test(`${JSON.stringify(name)} → platform ${platform}, category ${category}${official ? '' : ', unofficial'}`, () => {
    assert.deepEqual(parseVirusName(name), { platform, category, official });
  });
}
