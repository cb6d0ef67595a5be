// Protocol-throughput benchmark: our milter (bench/ts-reference-milter.ts) against a libmilter reference
// (bench/reference-milter.c), both doing the same trivial work (continue everywhere, add one header at
// end of message), each in its own process, driven over loopback TCP by this process with the package's
// MilterClient speaking as Postfix does.
//
//   npm run bench                      # the benchmark (about 1-2 minutes)
//   node dist-test/bench/protocol-throughput.js --profile [CONC]
//                                      # the ts milter only, under `node --cpu-prof`, with a hot-spot summary
//
// Method: for each concurrency N (1, 10, 100) and milter, N connections are opened, negotiated with the
// Postfix offer and given CONNECT + HELO (untimed); then every connection sends M messages back to back
// (timed), each as Postfix sends one: MAIL, RCPT, DATA, 5 HEADERs, EOH, one ~2 KB BODY chunk, EOM, ABORT,
// every command preceded in the same write by a small macro packet. M is calibrated per milter from a
// warm-up and a short calibration run so that a run lasts about RUN_SECONDS. Runs alternate between the
// milters (C, ts, C+nodelay, C, ts, ...), REPS times; the median messages/s is reported (all runs are in
// the JSON). Latency = MAIL sent → EOM reply received, pooled over the timed runs. CPU = the milter
// process' utime+stime over the timed part, per message. "C+nodelay" is the same C milter with
// TCP_NODELAY on its sockets: a diagnostic showing libmilter without the Nagle/delayed-ACK stall on its
// two-packet EOM reply, not the baseline.
// Every reply is checked (continue everywhere, EOM: exactly one add-header with the expected value and a
// continue/accept final); anything else counts as a mismatch and makes the exit code 1.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { CommandReply, MilterClient as MilterClientType } from '@postfix-milter-ts/protocol/testing';
import { MilterClient, POSTFIX_OFFER } from '@postfix-milter-ts/protocol/testing';
import type { MacroPair, MilterCommand } from '@postfix-milter-ts/protocol';
import { freeLoopbackPort } from '../test/harness/free-port.js';

// ---------------------------------------------------------------------------------------------------------
// Settings

const CONCURRENCIES = [1, 10, 100] as const;
const REPS = 3;
const RUN_SECONDS = 2;
const WARMUP_SECONDS = 0.4;
const CALIBRATE_SECONDS = 0.6;
const MAX_TOTAL_MS = 170_000;
const REPLY_TIMEOUT_MS = 10_000;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TMP = path.join(ROOT, '.tmp', 'bench');
const RESULTS = path.join(ROOT, 'bench', 'results', 'protocol-throughput.json');

type MilterName = 'C' | 'ts' | 'C+nodelay';

// ---------------------------------------------------------------------------------------------------------
// The message, as Postfix 3.x would send it (macro lists are Postfix's defaults, see milter-protocol.md §6)

const QUEUE_ID = '4XyZ1a2b3cD';
const CONNECT_MACROS: MacroPair[] = [
  ['j', 'mx.example.net'],
  ['{daemon_name}', 'mx.example.net'],
  ['{daemon_addr}', '127.0.0.1'],
  ['v', 'Postfix 3.7.11'],
  ['_', 'localhost [127.0.0.1]'],
];
const HELO_MACROS: MacroPair[] = [];
const MAIL_MACROS: MacroPair[] = [
  ['{mail_addr}', 'alice@example.org'],
  ['{mail_host}', 'example.org'],
  ['{mail_mailer}', 'smtp'],
];
const RCPT_MACROS: MacroPair[] = [
  ['i', QUEUE_ID],
  ['{rcpt_addr}', 'bob@example.net'],
  ['{rcpt_host}', 'example.net'],
  ['{rcpt_mailer}', 'local'],
];
const I_MACRO: MacroPair[] = [['i', QUEUE_ID]];

const HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['Received', 'from client.example.org (localhost [127.0.0.1])\n\tby mx.example.net (Postfix) with ESMTP id 4XyZ1a2b3cD\n\tfor <bob@example.net>; Mon, 1 Jan 2024 00:00:00 +0000 (UTC)'],
  ['From', 'Alice <alice@example.org>'],
  ['To', 'Bob <bob@example.net>'],
  ['Subject', 'protocol throughput benchmark message'],
  ['Message-ID', '<bench.4XyZ1a2b3cD@example.org>'],
];

const BODY: Buffer = (() => {
  const line = 'The quick brown fox jumps over the lazy dog; 0123456789 abcdefghij.\r\n'; // 70 bytes
  return Buffer.from(line.repeat(Math.ceil(2048 / line.length)).slice(0, 2048), 'latin1');
})();

const CMD_MAIL: MilterCommand = { type: 'mail', sender: '<alice@example.org>', esmtpArgs: ['SIZE=2400', 'BODY=8BITMIME'] };
const CMD_RCPT: MilterCommand = { type: 'rcpt', recipient: '<bob@example.net>', esmtpArgs: [] };
const CMD_DATA: MilterCommand = { type: 'data' };
const CMD_HEADERS: MilterCommand[] = HEADERS.map(([name, value]) => ({ type: 'header', name, value }));
const CMD_EOH: MilterCommand = { type: 'eoh' };
const CMD_BODY: MilterCommand = { type: 'body', chunk: BODY };
const CMD_EOM: MilterCommand = { type: 'eom', chunk: Buffer.alloc(0) };
const CMD_ABORT: MilterCommand = { type: 'abort' };

// ---------------------------------------------------------------------------------------------------------
// Child processes: always killed at the end

interface Milter {
  readonly name: MilterName;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Address for MilterClient.connect. */
  readonly spec: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

function killAll(signal: NodeJS.Signals): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}

process.on('exit', () => killAll('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping the milters\n`);
    killAll('SIGKILL');
    process.exit(130);
  });
}

function startChild(name: MilterName, cmd: string, args: string[]): Promise<Milter> {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`${name} milter did not report ready within 10 s`)), 10_000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${e.message}\n--- stderr of ${name} milter ---\n${err}`));
    };
    child.once('error', fail);
    child.once('exit', (code, sig) => fail(new Error(`${name} milter exited early (code ${code}, signal ${sig})`)));
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('ready '));
      if (line === undefined || child.pid === undefined) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.removeAllListeners('error');
      child.on('exit', (code, sig) => {
        if (!stopping.has(child)) process.stderr.write(`bench: ${name} milter died (code ${code}, signal ${sig})\n${m.stderr}\n`);
      });
      const m: Milter = { name, child, pid: child.pid, spec: toClientSpec(line.slice(6).trim().split(' ')[0] ?? ''), stderr: err };
      child.stderr?.on('data', (d: Buffer) => {
        m.stderr += d.toString();
      });
      resolve(m);
    });
  });
}

// libmilter's `inet:PORT@HOST` and ours `inet:HOST:PORT` both parse with parseListenAddress; normalise anyway.
function toClientSpec(spec: string): string {
  const at = /^inet:(\d+)@(.+)$/.exec(spec);
  return at ? `inet:${at[2]}:${at[1]}` : spec;
}

const stopping = new Set<ChildProcess>();

async function stopMilter(m: Milter, graceMs = 3000): Promise<void> {
  stopping.add(m.child);
  if (m.child.exitCode !== null || m.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => m.child.once('exit', () => resolve()));
  m.child.kill('SIGTERM');
  const t = setTimeout(() => m.child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
  children.delete(m.child);
}

function buildCMilter(): string {
  mkdirSync(TMP, { recursive: true });
  const out = path.join(TMP, 'reference-milter');
  const src = path.join(ROOT, 'bench', 'reference-milter.c');
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-o', out, src, '-lmilter', '-lpthread'], { stdio: 'inherit' });
  return out;
}

async function startMilter(name: MilterName, cBinary: string, nodeFlags: string[] = []): Promise<Milter> {
  const port = await freeLoopbackPort();
  if (name === 'ts') {
    const script = path.join(ROOT, 'dist-test', 'bench', 'ts-reference-milter.js');
    return startChild(name, process.execPath, [...nodeFlags, script, `inet:127.0.0.1:${port}`]);
  }
  return startChild(name, cBinary, name === 'C+nodelay' ? ['-p', `inet:${port}@127.0.0.1`, '-N'] : ['-p', `inet:${port}@127.0.0.1`]);
}

// ---------------------------------------------------------------------------------------------------------
// /proc readings

function procStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** TCP segments retransmitted, system-wide (a loopback retransmit costs at least the 200 ms minimum RTO). */
function tcpRetransSegs(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Tcp:'));
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    return Number(values[names.indexOf('RetransSegs')]);
  } catch {
    return NaN;
  }
}

/** utime + stime of the whole process (all threads), in seconds. */
function procCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The driver

interface Checker {
  mismatches: number;
  errors: number;
  readonly examples: string[];
}

function note(check: Checker, what: string): void {
  check.mismatches++;
  if (check.examples.length < 5) check.examples.push(what);
}

function expectContinue(check: Checker, what: string, r: CommandReply | undefined): void {
  if (r === undefined) return note(check, `${what}: no reply (step skipped or reply waived by negotiation)`);
  if (r.final.type !== 'continue' || r.interim.length !== 0) {
    note(check, `${what}: final ${r.final.type}, ${r.interim.length} interim packet(s)`);
  }
}

function expectEom(check: Checker, r: CommandReply | undefined, value: string): void {
  if (r === undefined) return note(check, 'eom: no reply');
  const mods = r.interim;
  const h = mods[0];
  const ok =
    (r.final.type === 'continue' || r.final.type === 'accept') &&
    mods.length === 1 &&
    h !== undefined &&
    h.type === 'add-header' &&
    h.name === 'X-Bench' &&
    h.value.trim() === value;
  if (!ok) note(check, `eom: final ${r.final.type}, interim ${JSON.stringify(mods)}`);
}

interface Conn {
  readonly client: MilterClientType;
  readonly index: number;
}

interface Negotiated {
  version: number;
  actions: number;
  protocol: number;
}

async function openConnection(spec: string, index: number, check: Checker): Promise<{ conn: Conn; negotiated: Negotiated }> {
  const client = await MilterClient.connect(spec, { replyTimeoutMs: REPLY_TIMEOUT_MS });
  const neg = await client.negotiate(POSTFIX_OFFER);
  expectContinue(
    check,
    'connect',
    await client.send({ type: 'connect', hostname: 'client.example.org', family: '4', port: 40000 + index, address: '127.0.0.1' }, CONNECT_MACROS),
  );
  expectContinue(check, 'helo', await client.send({ type: 'helo', name: 'client.example.org' }, HELO_MACROS));
  return { conn: { client, index }, negotiated: { version: neg.version, actions: neg.actions, protocol: neg.protocol } };
}

/** One message, as Postfix sends it. Returns its latency in ms. */
async function sendMessage(client: MilterClientType, check: Checker, headerValue: string): Promise<number> {
  const t0 = performance.now();
  expectContinue(check, 'mail', await client.send(CMD_MAIL, MAIL_MACROS));
  expectContinue(check, 'rcpt', await client.send(CMD_RCPT, RCPT_MACROS));
  expectContinue(check, 'data', await client.send(CMD_DATA, I_MACRO));
  for (const h of CMD_HEADERS) expectContinue(check, 'header', await client.send(h, I_MACRO));
  expectContinue(check, 'eoh', await client.send(CMD_EOH, I_MACRO));
  expectContinue(check, 'body', await client.send(CMD_BODY, I_MACRO));
  expectEom(check, await client.send(CMD_EOM, I_MACRO), headerValue);
  const latency = performance.now() - t0;
  await client.send(CMD_ABORT);
  return latency;
}

interface RunResult {
  readonly milter: MilterName;
  readonly concurrency: number;
  readonly messagesPerConnection: number;
  readonly messages: number;
  readonly seconds: number;
  readonly msgsPerSec: number;
  readonly milterCpuSeconds: number;
  readonly driverCpuSeconds: number;
  readonly latenciesMs: number[];
  /** System-wide TCP retransmissions during the timed part. */
  readonly tcpRetransmits: number;
  readonly negotiated: Negotiated | undefined;
}

/**
 * N connections; each sends `perConn` messages (or, when `untilMs` is given, messages until that much time
 * has passed). Connection setup and teardown are not timed.
 */
async function runLoad(
  m: Milter,
  concurrency: number,
  perConn: number,
  check: Checker,
  untilMs?: number,
): Promise<RunResult> {
  const value = m.name === 'ts' ? 'ts' : 'c';
  const opened = await Promise.all(Array.from({ length: concurrency }, (_, i) => openConnection(m.spec, i, check)));
  const latencies: number[] = [];
  const cpu0 = procCpuSeconds(m.pid);
  const retrans0 = tcpRetransSegs();
  const drv0 = process.cpuUsage();
  const t0 = performance.now();
  let messages = 0;
  await Promise.all(
    opened.map(async ({ conn }) => {
      try {
        for (let i = 0; untilMs !== undefined ? performance.now() - t0 < untilMs : i < perConn; i++) {
          latencies.push(await sendMessage(conn.client, check, value));
          messages++;
        }
      } catch (e) {
        check.errors++;
        note(check, `connection ${conn.index}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const drv = process.cpuUsage(drv0);
  const cpu1 = procCpuSeconds(m.pid);
  const retrans1 = tcpRetransSegs();
  await Promise.all(opened.map(({ conn }) => conn.client.quit().catch(() => undefined)));
  return {
    milter: m.name,
    concurrency,
    messagesPerConnection: perConn,
    messages,
    seconds,
    msgsPerSec: messages / seconds,
    milterCpuSeconds: cpu1 - cpu0,
    driverCpuSeconds: (drv.user + drv.system) / 1e6,
    latenciesMs: latencies,
    tcpRetransmits: retrans1 - retrans0,
    negotiated: opened[0]?.negotiated,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Statistics and output

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

interface Summary {
  readonly milter: MilterName;
  readonly concurrency: number;
  readonly messagesPerConnection: number;
  readonly runs: number;
  readonly msgsPerSecMedian: number;
  readonly msgsPerSecBest: number;
  readonly msgsPerSecAll: number[];
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly milterCpuUsPerMsg: number;
  readonly driverCpuUsPerMsg: number;
  readonly milterPeakRssKb: number;
  readonly milterRssKb: number;
  readonly negotiated: Negotiated | undefined;
}

function summarize(m: Milter, runs: RunResult[]): Summary {
  const lat = runs.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  const msgs = runs.reduce((a, r) => a + r.messages, 0);
  const first = runs[0];
  return {
    milter: m.name,
    concurrency: first?.concurrency ?? 0,
    messagesPerConnection: first?.messagesPerConnection ?? 0,
    runs: runs.length,
    msgsPerSecMedian: median(runs.map((r) => r.msgsPerSec)),
    msgsPerSecBest: Math.max(...runs.map((r) => r.msgsPerSec)),
    msgsPerSecAll: runs.map((r) => Math.round(r.msgsPerSec)),
    latencyP50Ms: percentile(lat, 50),
    latencyP99Ms: percentile(lat, 99),
    milterCpuUsPerMsg: (runs.reduce((a, r) => a + r.milterCpuSeconds, 0) / msgs) * 1e6,
    driverCpuUsPerMsg: (runs.reduce((a, r) => a + r.driverCpuSeconds, 0) / msgs) * 1e6,
    milterPeakRssKb: procStatusKb(m.pid, 'VmHWM'),
    milterRssKb: procStatusKb(m.pid, 'VmRSS'),
    negotiated: first?.negotiated,
  };
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const mb = (kb: number): string => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)}` : '-');
const hex = (n: number | undefined): string => (n === undefined ? '-' : `0x${n.toString(16).padStart(6, '0')}`);

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')).join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// Benchmark

/** M from the faster of the warm-up and calibration runs (on a shared machine, noise only ever slows a run). */
function calibrate(...runs: RunResult[]): number {
  const perConnPerSec = Math.max(...runs.map((r) => r.msgsPerSec / r.concurrency));
  return Math.max(5, Math.round(perConnPerSec * RUN_SECONDS));
}

async function bench(): Promise<void> {
  const started = Date.now();
  process.stdout.write(`protocol-throughput: node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}\n`);
  const cBinary = buildCMilter();
  const names: MilterName[] = ['C', 'ts', 'C+nodelay'];
  const milters = new Map<MilterName, Milter>();
  for (const n of names) milters.set(n, await startMilter(n, cBinary));
  const get = (n: MilterName): Milter => milters.get(n) as Milter;
  const check = new Map<MilterName, Checker>(names.map((n) => [n, { mismatches: 0, errors: 0, examples: [] }]));
  const chk = (n: MilterName): Checker => check.get(n) as Checker;

  const summaries: Summary[] = [];
  const allRuns: Omit<RunResult, 'latenciesMs'>[] = [];
  try {
    for (const conc of CONCURRENCIES) {
      const perConn = new Map<MilterName, number>();
      // Warm-up (the JIT, libmilter's threads, the sockets), then a short timed run that sizes M.
      for (const n of names) {
        const warm = await runLoad(get(n), conc, 0, chk(n), WARMUP_SECONDS * 1000);
        perConn.set(n, calibrate(warm, await runLoad(get(n), conc, 0, chk(n), CALIBRATE_SECONDS * 1000)));
      }
      const runs = new Map<MilterName, RunResult[]>(names.map((n) => [n, []]));
      for (let rep = 0; rep < REPS; rep++) {
        for (const n of names) {
          const r = await runLoad(get(n), conc, perConn.get(n) as number, chk(n));
          runs.get(n)?.push(r);
          const { latenciesMs: _l, ...rest } = r;
          allRuns.push(rest);
          process.stdout.write(
            `  conc ${String(conc).padStart(3)}  rep ${rep + 1}  ${n.padEnd(9)}  ${fmt(r.msgsPerSec).padStart(6)} msgs/s  (${r.messages} msgs in ${r.seconds.toFixed(2)} s, milter cpu ${fmt((r.milterCpuSeconds / r.messages) * 1e6)} µs/msg, tcp retransmits ${r.tcpRetransmits})\n`,
          );
        }
      }
      for (const n of names) summaries.push(summarize(get(n), runs.get(n) as RunResult[]));
      if (Date.now() - started > MAX_TOTAL_MS * 0.8) {
        process.stdout.write('bench: running out of time budget, stopping early\n');
        break;
      }
    }
  } finally {
    for (const m of milters.values()) await stopMilter(m);
  }

  const by = (n: MilterName, conc: number): Summary | undefined => summaries.find((s) => s.milter === n && s.concurrency === conc);
  const rows: string[][] = [
    ['conc', 'M/conn C|ts', 'C msgs/s', 'ts msgs/s', 'ts/C', 'C p50/p99 ms', 'ts p50/p99 ms', 'C cpu µs/msg', 'ts cpu µs/msg', 'C peak RSS MB', 'ts peak RSS MB'],
  ];
  for (const conc of CONCURRENCIES) {
    const c = by('C', conc);
    const t = by('ts', conc);
    if (!c || !t) continue;
    rows.push([
      String(conc),
      `${c.messagesPerConnection}|${t.messagesPerConnection}`,
      fmt(c.msgsPerSecMedian),
      fmt(t.msgsPerSecMedian),
      fmt(t.msgsPerSecMedian / c.msgsPerSecMedian, 2),
      `${fmt(c.latencyP50Ms, 2)}/${fmt(c.latencyP99Ms, 2)}`,
      `${fmt(t.latencyP50Ms, 2)}/${fmt(t.latencyP99Ms, 2)}`,
      fmt(c.milterCpuUsPerMsg),
      fmt(t.milterCpuUsPerMsg),
      mb(c.milterPeakRssKb),
      mb(t.milterPeakRssKb),
    ]);
  }
  const diag: string[][] = [['conc', 'C+nodelay msgs/s', 'ts/(C+nodelay)', 'p50/p99 ms', 'cpu µs/msg', 'driver cpu µs/msg (C|ts|C+nd)']];
  for (const conc of CONCURRENCIES) {
    const d = by('C+nodelay', conc);
    const c = by('C', conc);
    const t = by('ts', conc);
    if (!d || !c || !t) continue;
    diag.push([
      String(conc),
      fmt(d.msgsPerSecMedian),
      fmt(t.msgsPerSecMedian / d.msgsPerSecMedian, 2),
      `${fmt(d.latencyP50Ms, 2)}/${fmt(d.latencyP99Ms, 2)}`,
      fmt(d.milterCpuUsPerMsg),
      `${fmt(c.driverCpuUsPerMsg)}|${fmt(t.driverCpuUsPerMsg)}|${fmt(d.driverCpuUsPerMsg)}`,
    ]);
  }

  const mismatchTotal = names.reduce((a, n) => a + chk(n).mismatches, 0);
  process.stdout.write(`\nProtocol throughput (median of ${REPS} runs; each message = MAIL RCPT DATA 5×HEADER EOH BODY(2 KB) EOM ABORT, macros before each)\n`);
  process.stdout.write(`${table(rows)}\n`);
  process.stdout.write(`\nDiagnostic, not the baseline: the same C milter with TCP_NODELAY on accepted sockets (-N)\n${table(diag)}\n`);
  process.stdout.write(
    `\nnegotiated protocol: C ${hex(by('C', 1)?.negotiated?.protocol)}, ts ${hex(by('ts', 1)?.negotiated?.protocol)} (actions C ${hex(by('C', 1)?.negotiated?.actions)}, ts ${hex(by('ts', 1)?.negotiated?.actions)})\n`,
  );
  for (const n of names) {
    const c = chk(n);
    process.stdout.write(`correctness ${n}: ${c.mismatches} mismatches, ${c.errors} connection errors${c.examples.length ? `: ${c.examples.join(' | ')}` : ''}\n`);
  }
  const target = CONCURRENCIES.filter((n) => n >= 10).map((n) => {
    const c = by('C', n);
    const t = by('ts', n);
    return { concurrency: n, met: c !== undefined && t !== undefined && t.msgsPerSecMedian >= c.msgsPerSecMedian };
  });
  process.stdout.write(`target (ts ≥ C at 10 and 100 connections): ${target.map((t) => `${t.concurrency}: ${t.met ? 'met' : 'NOT met'}`).join(', ')}\n`);

  mkdirSync(path.dirname(RESULTS), { recursive: true });
  const json = {
    benchmark: 'protocol-throughput',
    timestamp: new Date().toISOString(),
    node: process.version,
    machine: {
      platform: `${os.platform()} ${os.release()}`,
      arch: os.arch(),
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      totalMemMb: Math.round(os.totalmem() / 2 ** 20),
    },
    method: {
      concurrencies: CONCURRENCIES,
      reps: REPS,
      runSecondsTarget: RUN_SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      calibrateSeconds: CALIBRATE_SECONDS,
      message: {
        commands: 'MAIL RCPT DATA HEADER×5 EOH BODY EOM ABORT (+ CONNECT/HELO once per connection, untimed)',
        bodyBytes: BODY.length,
        headers: HEADERS.length,
        macroPacketBeforeEachCommand: true,
      },
      transport: 'TCP 127.0.0.1',
      reported: 'median msgs/s over reps; latency = MAIL sent → EOM reply, pooled over reps; cpu = milter utime+stime / messages',
      cReference: 'bench/reference-milter.c on Debian libmilter (gcc -O2), default socket options; C+nodelay = same with TCP_NODELAY (diagnostic)',
    },
    target: { statement: 'ts msgs/s >= C msgs/s at 10 and 100 connections', results: target },
    correctness: Object.fromEntries(names.map((n) => [n, { mismatches: chk(n).mismatches, errors: chk(n).errors, examples: chk(n).examples }])),
    mismatchTotal,
    summaries,
    runs: allRuns,
    totalSeconds: (Date.now() - started) / 1000,
  };
  writeFileSync(RESULTS, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`results: ${path.relative(ROOT, RESULTS)} (${json.totalSeconds.toFixed(0)} s total)\n`);
  if (mismatchTotal > 0) process.exitCode = 1;
}

// ---------------------------------------------------------------------------------------------------------
// Profiling mode: the ts milter under --cpu-prof, then the hottest functions by self time

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

function summarizeProfile(file: string, top = 25): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byNode = new Map<number, number>();
  prof.samples.forEach((id, i) => byNode.set(id, (byNode.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (const n of prof.nodes) {
    const t = byNode.get(n.id) ?? 0;
    if (n.callFrame.functionName === '(idle)') {
      idle += t;
      continue;
    }
    busy += t;
    const file = n.callFrame.url.replace(/^file:\/\//, '').replace(ROOT + '/', '') || '(native/vm)';
    const key = `${n.callFrame.functionName || '(anonymous)'}  ${file}:${n.callFrame.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + t);
    const fileKey = file.startsWith('node:') ? 'node: internals (streams, net, timers)' : file === '(native/vm)' ? `(native/vm) ${n.callFrame.functionName}` : file;
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + t);
  }
  const pct = (t: number): string => `${((100 * t) / busy).toFixed(1).padStart(5)}%`;
  const lines = [`sampled ${((idle + busy) / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms; shares below are of busy time`, 'self time by function:'];
  for (const [k, t] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(t)}  ${k}`);
  lines.push('self time by file (native functions listed individually):');
  for (const [k, t] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 20)) lines.push(`  ${pct(t)}  ${k}`);
  return lines.join('\n');
}

async function profile(conc: number): Promise<void> {
  const dir = path.join(TMP, 'cpu-prof');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const m = await startMilter('ts', '', ['--cpu-prof', '--cpu-prof-dir', dir]);
  const check: Checker = { mismatches: 0, errors: 0, examples: [] };
  try {
    await runLoad(m, conc, 0, check, 500);
    const r = await runLoad(m, conc, 0, check, 5000);
    process.stdout.write(
      `ts milter under --cpu-prof, ${conc} connections: ${fmt(r.msgsPerSec)} msgs/s, milter cpu ${fmt((r.milterCpuSeconds / r.messages) * 1e6)} µs/msg, driver cpu ${fmt((r.driverCpuSeconds / r.messages) * 1e6)} µs/msg, ${check.mismatches} mismatches\n`,
    );
  } finally {
    await stopMilter(m, 10_000);
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const newest = files.map((f) => path.join(dir, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  if (newest === undefined) throw new Error('no .cpuprofile written');
  process.stdout.write(`${summarizeProfile(newest)}\nprofile: ${path.relative(ROOT, newest)}\n`);
}

// ---------------------------------------------------------------------------------------------------------

const watchdog = setTimeout(() => {
  process.stderr.write(`bench: exceeded ${MAX_TOTAL_MS / 1000} s, killing the milters\n`);
  killAll('SIGKILL');
  process.exit(2);
}, MAX_TOTAL_MS);
watchdog.unref();

const args = process.argv.slice(2);
const main = args[0] === '--profile' ? profile(Number(args[1] ?? 10)) : bench();
main
  .catch((e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    killAll('SIGKILL');
    clearTimeout(watchdog);
  });
