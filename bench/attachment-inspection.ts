// Messages per second of attachment inspection (AttachmentInspector alone, no MTA, no clamd) for a few
// message sizes; prints a table and writes bench/results/attachment-inspection.json.
//   npx tsc -b && node dist-test/bench/attachment-inspection.js
import { writeFileSync } from 'node:fs';
import { defaultAttachmentsConfig } from 'postfix-milter-ts/content/attachment-config.js';
import { inspectMessage } from 'postfix-milter-ts/content/attachment-inspector.js';
import { makeZip } from '../test/unit/content/zip-writer.js';

function messageWith(kind: 'pdf' | 'zip', bytes: number): Buffer {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 2654435761) >>> 24;
  const payload = kind === 'zip' ? makeZip([{ name: 'data.bin', data, store: true }, { name: 'readme.txt', data: 'hello' }]) : Buffer.concat([Buffer.from('%PDF-1.7\n'), data]);
  const name = kind === 'zip' ? 'data.zip' : 'report.pdf';
  return Buffer.from(
    `From: a@example.net\r\nTo: b@example.org\r\nSubject: bench\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n${'Some text. '.repeat(200)}\r\n--b\r\nContent-Type: application/octet-stream; name="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${payload.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n--b--\r\n`,
  );
}

const config = defaultAttachmentsConfig();
const rows: { case: string; messageBytes: number; messages: number; seconds: number; messagesPerSecond: number; mbPerSecond: number }[] = [];
for (const [kind, size] of [['pdf', 100_000], ['pdf', 1_000_000], ['zip', 1_000_000], ['pdf', 7_000_000], ['zip', 7_000_000]] as const) {
  const raw = messageWith(kind, size);
  await inspectMessage(raw, config); // warm-up
  const n = size >= 5_000_000 ? 5 : size >= 1_000_000 ? 20 : 100;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = await inspectMessage(raw, config);
    if (r.error !== undefined || r.findings.length > 0) throw new Error(`unexpected result ${JSON.stringify(r)}`);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  rows.push({ case: `${kind} ${(size / 1e6).toFixed(1)} MB attachment`, messageBytes: raw.length, messages: n, seconds: +seconds.toFixed(3), messagesPerSecond: +(n / seconds).toFixed(1), mbPerSecond: +((n * raw.length) / 1e6 / seconds).toFixed(1) });
}
console.table(rows);
const out = new URL('../../bench/results/attachment-inspection.json', import.meta.url);
writeFileSync(out, `${JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2)}\n`);
console.log(`written to ${out.pathname}`);
