// Stopping the gateway (`serve` as a child process), end to end:
// - a message still waiting for its verdict when milter.shutdownGrace ends is answered tempfail, never left
//   without a reply (an MTA that takes a vanished milter as "accept" would pass it unscanned);
// - SIGHUP while stopping is ignored, and the message in flight still gets its verdict;
// - a second SIGTERM ends the grace at once: tempfail for the message in flight, the log flushed, exit 0;
// - a message whose MTA is between two commands when the grace ends (mid-body) gets tempfail at its next one.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MilterClient } from '@postfix-milter-ts/protocol/testing';
import { FakeClamd } from '../harness/fake-clamd.js';
import { GatewayProcess } from '../harness/gateway-process.js';

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function config(clamdEndpoint: string, shutdownGrace: string): string {
  return `milter:
  listen: inet:127.0.0.1:0
  shutdownGrace: ${shutdownGrace}
  progressInterval: 500ms
relay:
  localDomains: [example.test]
clamav:
  endpoints: [${clamdEndpoint}]
metrics:
  port: 0
`;
}

/** A gateway whose clamd takes `scanMs` for every message. */
async function gatewayWithSlowClamd(scanMs: number, shutdownGrace: string): Promise<{ gateway: GatewayProcess; fake: FakeClamd }> {
  const fake = await FakeClamd.start({ scan: { kind: 'slow', delayMs: scanMs, reply: 'stream: OK' } });
  cleanups.push(() => fake.stop());
  const gateway = await GatewayProcess.start({ config: config(fake.endpoint, shutdownGrace) });
  cleanups.push(() => gateway.stop());
  return { gateway, fake };
}

/** One message over the milter protocol, as Postfix sends it; resolves with the end-of-message verdict. */
async function messageInFlight(address: string): Promise<string> {
  const c = await MilterClient.connect(address, { replyTimeoutMs: 60_000 });
  try {
    await c.negotiate();
    await c.send({ type: 'connect', hostname: 'client.example', family: '4', port: 25, address: '192.0.2.9' });
    await c.send({ type: 'mail', sender: '<a@example.org>', esmtpArgs: [] }, [['i', 'QSTOP']]);
    await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    await c.send({ type: 'header', name: 'Subject', value: ' stop' });
    await c.send({ type: 'eoh' });
    await c.body(Buffer.from('hello\r\n'));
    const eom = await c.send({ type: 'eom', chunk: Buffer.alloc(0) });
    return eom?.final.type ?? 'none';
  } catch (e) {
    return `error: ${(e as Error).message}`;
  } finally {
    await c.close().catch(() => undefined);
  }
}

async function untilScanning(fake: FakeClamd, count: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (fake.scans.filter((s) => s.ended).length < count) {
    assert.ok(Date.now() < deadline, 'the message did not reach clamd');
    await sleep(20);
  }
}

test('at the end of milter.shutdownGrace a message still waiting for its verdict is answered tempfail', { timeout: 60_000 }, async () => {
  const { gateway, fake } = await gatewayWithSlowClamd(30_000, '1s');
  const verdict = messageInFlight(gateway.milterAddress);
  await untilScanning(fake, 1);
  gateway.child?.kill('SIGTERM');
  assert.equal(await verdict, 'tempfail');
  await gateway.waitForExit();
  assert.equal(gateway.exitCode, 0);
  const grace = gateway.logs.find((l) => l.msg.startsWith('milter.shutdownGrace reached'));
  assert.deepEqual([grace?.['tempfailed'], grace?.['cut']], [1, 0]);
});

test('at the end of milter.shutdownGrace a message between two commands (mid-body) gets tempfail at its end, and its scan is dropped', { timeout: 60_000 }, async () => {
  const { gateway, fake } = await gatewayWithSlowClamd(10, '1s');
  const c = await MilterClient.connect(gateway.milterAddress, { replyTimeoutMs: 15_000 });
  try {
    await c.negotiate();
    await c.send({ type: 'connect', hostname: 'client.example', family: '4', port: 25, address: '192.0.2.9' });
    await c.send({ type: 'mail', sender: '<a@example.org>', esmtpArgs: [] }, [['i', 'QMID']]);
    await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    await c.send({ type: 'eoh' });
    await c.body(Buffer.from('first half\r\n'));
    gateway.child?.kill('SIGTERM');
    await gateway.waitForLog((l) => l.msg.startsWith('stopping'));
    await sleep(1300); // past the 1 s grace: the SMTP client is slow to send the rest
    await c.body(Buffer.from('second half\r\n'));
    const eom = await c.send({ type: 'eom', chunk: Buffer.alloc(0) });
    assert.equal(eom?.final.type, 'tempfail');
  } finally {
    await c.close().catch(() => undefined);
  }
  await gateway.waitForExit();
  assert.equal(gateway.exitCode, 0);
  const grace = gateway.logs.find((l) => l.msg.startsWith('milter.shutdownGrace reached'));
  assert.deepEqual([grace?.['tempfailed'], grace?.['cut']], [1, 0]);
  assert.equal(fake.scans.filter((s) => s.ended).length, 0, 'the message never reached its end at clamd');
});

test('SIGHUP while stopping is logged and ignored; the message in flight still gets its verdict', { timeout: 60_000 }, async () => {
  const { gateway, fake } = await gatewayWithSlowClamd(2000, '20s');
  const verdict = messageInFlight(gateway.milterAddress);
  await untilScanning(fake, 1);
  gateway.child?.kill('SIGTERM');
  await gateway.waitForLog((l) => l.msg.startsWith('stopping'));
  gateway.child?.kill('SIGHUP');
  await gateway.waitForLog((l) => l.msg === 'SIGHUP ignored: stopping');
  assert.equal(await verdict, 'accept');
  await gateway.waitForExit();
  assert.deepEqual([gateway.exitCode, gateway.child?.signalCode], [0, null]);
  assert.ok(gateway.logs.some((l) => l.msg === 'stopped'));
});

test('a second SIGTERM ends the grace at once: the message in flight is tempfailed, the log is flushed, exit 0', { timeout: 60_000 }, async () => {
  const { gateway, fake } = await gatewayWithSlowClamd(30_000, '20s');
  const verdict = messageInFlight(gateway.milterAddress);
  await untilScanning(fake, 1);
  gateway.child?.kill('SIGTERM');
  await gateway.waitForLog((l) => l.msg.startsWith('stopping'));
  const second = Date.now();
  gateway.child?.kill('SIGTERM');
  assert.equal(await verdict, 'tempfail');
  await gateway.waitForExit();
  assert.ok(Date.now() - second < 5000, `exited ${Date.now() - second} ms after the second SIGTERM`);
  assert.deepEqual([gateway.exitCode, gateway.child?.signalCode], [0, null]);
  assert.ok(gateway.logs.some((l) => l.msg.startsWith('already stopping')));
  assert.ok(gateway.logs.some((l) => l.msg === 'stopped'));
});
