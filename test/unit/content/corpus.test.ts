// Runs every message of the fixture corpus (test/fixtures/messages, index expected.json) through the
// attachment inspector with the default configuration and checks the verdict and the finding kinds.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { defaultAttachmentsConfig } from 'postfix-milter-ts/content/attachment-config.js';
import { AttachmentInspector, inspectMessage } from 'postfix-milter-ts/content/attachment-inspector.js';

const dir = new URL('../../../../test/fixtures/messages/', import.meta.url);
const expected = JSON.parse(readFileSync(new URL('expected.json', dir), 'utf8')) as Record<string, { verdict: 'accept' | 'refuse'; kinds: string[]; why: string }>;

describe('fixture corpus', () => {
  test('has at least 25 messages, every .eml indexed and every index entry present', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.eml')).sort();
    assert.ok(files.length >= 25, `${files.length} messages`);
    assert.deepEqual(files, Object.keys(expected).sort());
  });

  for (const [file, want] of Object.entries(expected)) {
    test(`${file}: ${want.verdict} (${want.why})`, async () => {
      const raw = readFileSync(new URL(file, dir));
      const result = await inspectMessage(raw, defaultAttachmentsConfig());
      assert.equal(result.error, undefined);
      const kinds = [...new Set(result.findings.map((f) => f.kind))].sort();
      assert.deepEqual(kinds, want.kinds, JSON.stringify(result.findings));
      assert.equal(result.findings.length > 0 ? 'refuse' : 'accept', want.verdict);
    });
  }

  test('byte-at-a-time and one-chunk feeding give the same findings', async () => {
    for (const file of ['rfc2231-continued.eml', 'nested-zip.eml', 'uuencoded-exe.eml', 'attached-message-with-exe.eml']) {
      const raw = readFileSync(new URL(file, dir));
      const whole = new AttachmentInspector(defaultAttachmentsConfig());
      whole.push(raw);
      const a = await whole.finish();
      const tiny = new AttachmentInspector(defaultAttachmentsConfig());
      for (let i = 0; i < raw.length; i += 7) tiny.push(raw.subarray(i, i + 7));
      const b = await tiny.finish();
      assert.deepEqual(b.findings, a.findings, file);
    }
  });
});
