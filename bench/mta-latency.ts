// Per-message latency through a real Postfix with our milter over TCP (with and without TCP_QUICKACK) and over
// a UNIX socket. Postfix writes each macro packet and its command as two small writes; with Nagle on its side
// the command waits for our delayed ACK unless we acknowledge at once. Prints a table and writes JSON.
//   node dist-test/bench/mta-latency.js [messages]
import { mkdir, writeFile } from 'node:fs/promises';
import { MilterServer } from '@postfix-milter-ts/protocol';
import { PostfixInstance } from '../test/harness/postfix-instance.js';
import { SmtpClient } from '../test/harness/smtp-client.js';
import { EVERY_STAGE_FILTER, measureSocketModes } from './socket-modes.js';

const MESSAGES = Number(process.argv[2] ?? 40);

const filter = EVERY_STAGE_FILTER;

interface Row {
  readonly mode: string;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function measure(mode: string, listen: string, afterTcpRead?: (s: import('node:net').Socket) => void): Promise<Row> {
  const server = new MilterServer(filter, { unixSocketMode: 0o666, ...(afterTcpRead ? { afterTcpRead } : {}) });
  const address = await server.listen(listen);
  const postfix = new PostfixInstance({ milter: address, mailboxes: ['bench'] });
  await postfix.start();
  try {
    const times: number[] = [];
    const body = `Subject: latency\r\nFrom: a@example.test\r\nTo: bench@example.test\r\n\r\n${'line of text\r\n'.repeat(50)}`;
    for (let i = 0; i < MESSAGES + 3; i++) {
      const t0 = performance.now();
      const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix.smtpPort });
      await smtp.ehlo('bench.example');
      const r = await smtp.sendMessage('<a@example.test>', ['<bench@example.test>'], body);
      await smtp.quit();
      if (r.final?.code !== 250) throw new Error(`${mode}: message refused: ${JSON.stringify(r)}`);
      if (i >= 3) times.push(performance.now() - t0); // first sessions warm up Postfix's processes
    }
    times.sort((a, b) => a - b);
    return { mode, meanMs: times.reduce((a, b) => a + b, 0) / times.length, p50Ms: percentile(times, 0.5), p95Ms: percentile(times, 0.95) };
  } finally {
    await postfix.stop();
    await server.close(1000);
  }
}

const rows: Row[] = (await measureSocketModes(measure, (a, b) => a.meanMs < b.meanMs)).map(([, r]) => r);

console.log(`\nOne SMTP session (EHLO, MAIL, RCPT, DATA with 5 headers and a small body, QUIT) through Postfix and our milter, ${MESSAGES} sessions each:`);
console.log('mode                                 mean ms   p50 ms   p95 ms');
for (const r of rows) console.log(`${r.mode.padEnd(36)} ${r.meanMs.toFixed(1).padStart(7)} ${r.p50Ms.toFixed(1).padStart(8)} ${r.p95Ms.toFixed(1).padStart(8)}`);
const base = rows[0]!.meanMs;
console.log(`speed-up of TCP_QUICKACK over TCP_NODELAY alone: ${(base / rows[1]!.meanMs).toFixed(1)}x; UNIX socket: ${(base / rows[2]!.meanMs).toFixed(1)}x`);
await mkdir('bench/results', { recursive: true });
await writeFile('bench/results/mta-latency.json', JSON.stringify({ at: new Date().toISOString(), node: process.version, messages: MESSAGES, rows }, null, 2));
