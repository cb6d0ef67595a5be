import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ContentCollector } from 'postfix-milter-ts/content/content-collector.js';
import { MAGIC_HEAD_BYTES, MAGIC_TAIL_BYTES, MARKUP_TAIL_BYTES } from 'postfix-milter-ts/content/magic.js';

/** `size` bytes: `start`, then numbered filler lines, so any tail shows where it begins. */
function content(start: string, size: number): Buffer {
  let s = start;
  for (let i = 0; s.length < size; i++) s += `line ${i} of filler text\n`;
  return Buffer.from(s.slice(0, size), 'latin1');
}
function collect(bytes: Buffer, chunk: number, markupTail = true): ContentCollector {
  const c = new ContentCollector(10 * 1024 * 1024, false, markupTail);
  for (let i = 0; i < bytes.length; i += chunk) c.write(bytes.subarray(i, i + chunk));
  return c;
}

describe('ContentCollector: the tail', () => {
  const html = content('<!DOCTYPE html><html><body><script>var f = "', 300_000);
  for (const chunk of [57, 4096, 300_000]) {
    test(`HTML in ${chunk}-byte chunks: the last MARKUP_TAIL_BYTES`, () => {
      const c = collect(html, chunk);
      assert.deepEqual(c.head(), html.subarray(0, MAGIC_HEAD_BYTES));
      assert.deepEqual(c.tail(), html.subarray(-MARKUP_TAIL_BYTES));
    });
  }
  test('HTML a little past the head: the bytes after the head only', () => {
    const short = html.subarray(0, MAGIC_HEAD_BYTES + 100);
    assert.deepEqual(collect(short, 1000).tail(), short.subarray(MAGIC_HEAD_BYTES));
  });
  test('text that is no markup, or markupTail off: MAGIC_TAIL_BYTES', () => {
    const text = content('Dear customer,\n', 300_000);
    assert.deepEqual(collect(text, 4096).tail(), text.subarray(-MAGIC_TAIL_BYTES));
    assert.deepEqual(collect(html, 4096, false).tail(), html.subarray(-MAGIC_TAIL_BYTES));
  });
});
