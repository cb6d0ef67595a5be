// `log.destination: syslog`: the milter's JSON lines reach a syslog receiver over UDP and TCP with facility mail,
// one message per datagram or per line (syslog daemons split a TCP stream at newlines), and a TCP receiver that
// is gone does not keep a stopped milter alive. The receivers are plain sockets in this test.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatSyslogMessage } from 'postfix-milter-ts/syslog-destination.js';
import { freeLoopbackPort } from '../harness/free-port.js';
import { waitFor } from '../harness/wait-for.js';

const CLI = fileURLToPath(new URL('../../../dist/cli.js', import.meta.url));
let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pmt-syslog-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** The milter's port, per child, for tests that see no log (nobody listens for it). */
const milterPorts = new WeakMap<ChildProcess, number>();

async function startMilter(protocol: 'udp' | 'tcp', port: number): Promise<ChildProcess> {
  const config = join(dir, `${protocol}.yaml`);
  const milterPort = await freeLoopbackPort();
  await writeFile(config, `milter:\n  listen: inet:127.0.0.1:${milterPort}\nmetrics:\n  enabled: false\nclamav:\n  endpoints: [inet:127.0.0.1:1]\nlog:\n  destination: syslog\n  syslog:\n    port: ${port}\n    protocol: ${protocol}\n`);
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  milterPorts.set(child, milterPort);
  return child;
}

/** Waits until the milter accepts connections: it has started, and SIGTERM now means a graceful stop. */
async function milterListening(child: ChildProcess): Promise<void> {
  const port = milterPorts.get(child);
  const accepts = (): Promise<boolean> =>
    new Promise((resolve) => {
      const probe = net.connect({ port: port ?? 0, host: '127.0.0.1' });
      probe.once('connect', () => {
        probe.destroy();
        resolve(true);
      });
      probe.once('error', () => resolve(false));
    });
  await waitFor('the milter to accept connections', async () => ((await accepts()) ? true : undefined), 15_000);
}

/** Waits for the process to exit; its exit code, or 'still running' after `ms`. */
function exitWithin(child: ChildProcess, ms: number): Promise<number | string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('still running'), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? String(signal));
    });
  });
}

// <22>: facility mail (2) * 8 + severity info (6); the message is pino's JSON line.
const LISTENING = /^<22>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postfix-milter-ts\[\d+\]: \{.*"msg":"milter listening".*\}$/;

test('RFC 3164 messages: priority from facility mail and the pino level, local time, host, tag and pid', () => {
  const at = new Date(2026, 10, 3, 4, 5, 6);
  const who = { tag: 'postfix-milter-ts', hostname: 'mx1', pid: 42 };
  assert.equal(formatSyslogMessage('{"level":30,"msg":"hi"}\n', who, at), '<22>Nov  3 04:05:06 mx1 postfix-milter-ts[42]: {"level":30,"msg":"hi"}');
  assert.equal(formatSyslogMessage('{"level":40,"msg":"w"}', who, at).slice(0, 4), '<20>');
  assert.equal(formatSyslogMessage('{"level":50,"msg":"e"}', who, at).slice(0, 4), '<19>');
  assert.equal(formatSyslogMessage('{"level":60,"msg":"f"}', who, at).slice(0, 4), '<18>');
  assert.equal(formatSyslogMessage('{"level":20,"msg":"d"}', who, at).slice(0, 4), '<23>');
});

test('UDP: one JSON line per datagram, facility mail', async () => {
  const socket = dgram.createSocket('udp4');
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString('utf8')));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const child = await startMilter('udp', socket.address().port);
  try {
    const line = await waitFor('"milter listening" over UDP', () => got.find((g) => g.includes('milter listening')), 10_000);
    assert.match(line, LISTENING);
    child.kill('SIGTERM');
    assert.equal(await exitWithin(child, 10_000), 0);
    await waitFor('"stopped" over UDP', () => got.find((g) => g.includes('"msg":"stopped"')), 10_000);
  } finally {
    child.kill('SIGKILL');
    socket.close();
  }
});

test('TCP: every message ends with a newline, so a syslog daemon can split the stream', async () => {
  let stream = '';
  const server = net.createServer((s) => s.on('data', (d: Buffer) => (stream += d.toString('utf8'))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const child = await startMilter('tcp', (server.address() as net.AddressInfo).port);
  try {
    await waitFor('"milter listening" over TCP', () => (stream.includes('milter listening') ? true : undefined), 10_000);
    child.kill('SIGTERM');
    assert.equal(await exitWithin(child, 10_000), 0);
    await waitFor('"stopped" over TCP', () => (stream.includes('"msg":"stopped"') ? true : undefined), 10_000);
    const messages = stream.split('\n');
    assert.equal(messages.at(-1), '', 'the stream ends with a newline');
    assert.ok(messages.length >= 4, stream);
    for (const m of messages.slice(0, -1)) assert.match(m, /^<\d+>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postfix-milter-ts\[\d+\]: \{.*\}$/);
    assert.ok(messages.some((m) => LISTENING.test(m)), stream);
  } finally {
    child.kill('SIGKILL');
    server.close();
  }
});

test('TCP: lines written before the receiver starts are sent once it does', async () => {
  const port = await freeLoopbackPort();
  const child = await startMilter('tcp', port);
  let stream = '';
  const server = net.createServer((s) => s.on('data', (d: Buffer) => (stream += d.toString('utf8'))));
  try {
    await new Promise((r) => setTimeout(r, 1500));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    await waitFor('the queued "milter listening" after a reconnect', () => (stream.includes('milter listening') ? true : undefined), 15_000);
    child.kill('SIGTERM');
    assert.equal(await exitWithin(child, 10_000), 0);
  } finally {
    child.kill('SIGKILL');
    server.close();
  }
});

test('TCP with nobody listening: the milter still stops on SIGTERM, within seconds', async () => {
  const child = await startMilter('tcp', await freeLoopbackPort());
  try {
    // No log reaches anyone: wait until the milter port answers instead.
    await milterListening(child);
    assert.equal(child.exitCode, null, 'running');
    child.kill('SIGTERM');
    assert.equal(await exitWithin(child, 8000), 0);
  } finally {
    child.kill('SIGKILL');
  }
});
