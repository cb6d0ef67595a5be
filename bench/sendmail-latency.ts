// Per-session and per-command latency through a real Sendmail 8.17 (unpacked privately, never installed) with
// our milter over TCP with TCP_NODELAY only, TCP with TCP_NODELAY + TCP_QUICKACK (src/tcp-quickack.ts as the
// server's afterTcpRead), and a UNIX socket. Sendmail writes each macro packet and its command as two small
// writes; with Nagle on its side the command waits for our delayed ACK unless we acknowledge at once
// (../shared/running-real-servers.md measured one session at 0.27 s → 0.006 s with both options).
// Per command: the time from our sending an SMTP command to Sendmail's reply, for the commands that make
// Sendmail talk to the milter (connect+greeting, EHLO, MAIL, RCPT, DATA end), median over the sessions.
//   node dist-test/bench/sendmail-latency.js [sessions]
import { mkdir, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { MilterServer } from '@postfix-milter-ts/protocol';
import { SendmailInstance } from '../test/harness/sendmail-instance.js';
import { SmtpClient } from '../test/harness/smtp-client.js';
import { EVERY_STAGE_FILTER, measureSocketModes } from './socket-modes.js';

const SESSIONS = Number(process.argv[2] ?? 30);
const WARM_UP = 3;

const filter = EVERY_STAGE_FILTER;

// `data` is DATA, the content and the final dot (the milter's DATA, header, body and end-of-message exchanges).
const STEPS = ['greeting', 'ehlo', 'mail', 'rcpt', 'data', 'quit'] as const;
type Step = (typeof STEPS)[number];

interface Row {
  readonly mode: string;
  readonly sessionMeanMs: number;
  readonly sessionP50Ms: number;
  readonly sessionP95Ms: number;
  /** Median per SMTP step. */
  readonly stepP50Ms: Record<Step, number>;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function timed<T>(record: number[], fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  record.push(performance.now() - t0);
  return r;
}

async function measure(mode: string, listen: string, afterTcpRead?: (s: Socket) => void): Promise<Row> {
  const server = new MilterServer(filter, { unixSocketMode: 0o666, ...(afterTcpRead ? { afterTcpRead } : {}) });
  const address = await server.listen(listen);
  const sendmail = new SendmailInstance({ milter: address, milterTimeouts: { connect: '5s', send: '10s', read: '10s', eom: '30s' } });
  await sendmail.start();
  const sessions: number[] = [];
  const steps = Object.fromEntries(STEPS.map((s) => [s, [] as number[]])) as Record<Step, number[]>;
  try {
    const body = `Subject: latency\r\nFrom: a@example.test\r\nTo: bench@example.test\r\n\r\n${'line of text\r\n'.repeat(50)}`;
    for (let i = 0; i < SESSIONS + WARM_UP; i++) {
      const local = Object.fromEntries(STEPS.map((s) => [s, [] as number[]])) as Record<Step, number[]>;
      const t0 = performance.now();
      const smtp = await timed(local.greeting, () => SmtpClient.connect({ host: '127.0.0.1', port: sendmail.smtpPort, timeoutMs: 30_000 }));
      await timed(local.ehlo, () => smtp.ehlo('bench.example'));
      const mail = await timed(local.mail, () => smtp.mailFrom('<a@example.test>'));
      const rcpt = await timed(local.rcpt, () => smtp.rcptTo('<bench@example.test>'));
      const data = await timed(local.data, () => smtp.data(body));
      if (mail.code !== 250 || rcpt.code !== 250 || data.final?.code !== 250) {
        throw new Error(`${mode}: refused: ${mail.raw} / ${rcpt.raw} / ${data.data.raw} / ${data.final?.raw ?? ''}`);
      }
      await timed(local.quit, () => smtp.quit());
      if (i >= WARM_UP) {
        sessions.push(performance.now() - t0);
        for (const s of STEPS) steps[s].push(...local[s]);
      }
    }
  } finally {
    await sendmail.stop();
    await server.close(1000);
  }
  return {
    mode,
    sessionMeanMs: sessions.reduce((a, b) => a + b, 0) / sessions.length,
    sessionP50Ms: percentile(sessions, 0.5),
    sessionP95Ms: percentile(sessions, 0.95),
    stepP50Ms: Object.fromEntries(STEPS.map((s) => [s, percentile(steps[s], 0.5)])) as Record<Step, number>,
  };
}

const rows: Row[] = (await measureSocketModes(measure, (a, b) => a.sessionMeanMs < b.sessionMeanMs)).map(([, r]) => r);

const fmt = (n: number, w: number): string => n.toFixed(1).padStart(w);
console.log(`\nOne SMTP session through Sendmail 8.17 and our milter (EHLO, MAIL, RCPT, DATA with 3 headers and a small body, QUIT), ${SESSIONS} sessions per mode:`);
console.log(`mode                                 session mean  p50     p95   | median per command (ms): ${STEPS.join(' ')}`);
for (const r of rows) {
  console.log(
    `${r.mode.padEnd(36)} ${fmt(r.sessionMeanMs, 8)} ${fmt(r.sessionP50Ms, 7)} ${fmt(r.sessionP95Ms, 7)}   | ${STEPS.map((s) => fmt(r.stepP50Ms[s], s.length)).join(' ')}`,
  );
}
const base = (rows[0] as Row).sessionMeanMs;
console.log(`speed-up over TCP_NODELAY alone: TCP_QUICKACK ${(base / (rows[1] as Row).sessionMeanMs).toFixed(1)}x, UNIX socket ${(base / (rows[2] as Row).sessionMeanMs).toFixed(1)}x`);
await mkdir('bench/results', { recursive: true });
await writeFile('bench/results/sendmail-latency.json', JSON.stringify({ at: new Date().toISOString(), node: process.version, sessions: SESSIONS, rows }, null, 2));
