// MilterServer's acceptsPerTurn with the real dup(2) that `serve` passes it (src/duplicate-descriptor.ts).
import assert from 'node:assert/strict';
import { closeSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MilterServer, type MilterFilter } from '@postfix-milter-ts/protocol';
import { MilterClient } from '@postfix-milter-ts/protocol/testing';
import { ACCEPTS_PER_TURN, loadDuplicateDescriptor } from 'postfix-milter-ts/duplicate-descriptor.js';

const FILTER: MilterFilter<undefined> = { connect: () => undefined };
const { dup, reason } = loadDuplicateDescriptor();

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Busy-waits: the event loop stands still while the kernel completes the handshakes of pending connects. */
function blockLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

/**
 * Opens `count` connections while the loop is blocked, then counts loop turns (one setImmediate per turn)
 * until the server has accepted them all.
 */
async function turnsToAccept(server: MilterServer<undefined>, port: number, count: number): Promise<number> {
  const sockets = Array.from({ length: count }, () => net.connect({ host: '127.0.0.1', port }));
  blockLoop(100);
  let turns = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      turns++;
      if (server.sessionCount >= count || turns > 10 * count) resolve();
      else setImmediate(tick);
    };
    setImmediate(tick);
  });
  assert.equal(server.sessionCount, count, 'every connection was accepted');
  for (const s of sockets) s.destroy();
  return turns;
}

test('the duplicate is a new close-on-exec descriptor for the same socket', async () => {
  assert.equal(process.platform, 'linux');
  assert.ok(dup, `dup unavailable: ${reason}`);
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const copy = dup(fd);
  try {
    assert.ok(copy > fd, `a new descriptor (${copy})`);
    const flags = parseInt(/^flags:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${copy}`, 'utf8'))?.[1] ?? '0', 8);
    assert.ok((flags & 0o2000000) !== 0, `O_CLOEXEC set (flags ${flags.toString(8)})`);
    assert.equal(readlinkSync(`/proc/self/fd/${copy}`), readlinkSync(`/proc/self/fd/${fd}`), 'the same socket');
  } finally {
    closeSync(copy);
    await new Promise((r) => server.close(r));
  }
});

test('a burst of connections: one accepted per loop turn with one handle, up to acceptsPerTurn with duplicates', async () => {
  const single = new MilterServer(FILTER, {});
  const singlePort = Number((await single.listen('inet:127.0.0.1:0')).split(':').pop());
  const several = new MilterServer(FILTER, { acceptsPerTurn: 4, ...(dup ? { duplicateDescriptor: dup } : {}) });
  const severalPort = Number((await several.listen('inet:127.0.0.1:0')).split(':').pop());
  try {
    assert.equal(single.acceptHandles, 1);
    assert.equal(several.acceptHandles, 4);
    // libuv takes one connection per readiness event of a listening socket: 24 pending need 24 turns.
    const one = await turnsToAccept(single, singlePort, 24);
    const four = await turnsToAccept(several, severalPort, 24);
    assert.ok(one >= 20, `one handle accepted 24 connections in ${one} turns`);
    assert.ok(four <= 9, `four handles accepted 24 connections in ${four} turns`);
  } finally {
    await single.close(100);
    await several.close(100);
  }
});

test('sessions on the duplicates work like any other, and close() releases every handle and descriptor', async () => {
  const before = openDescriptors();
  const server = new MilterServer(FILTER, { acceptsPerTurn: ACCEPTS_PER_TURN, ...(dup ? { duplicateDescriptor: dup } : {}) });
  const address = await server.listen('inet:127.0.0.1:0');
  assert.equal(server.acceptHandles, ACCEPTS_PER_TURN);
  assert.equal(openDescriptors(), before + ACCEPTS_PER_TURN, 'one descriptor per handle');
  const clients = await Promise.all(Array.from({ length: 20 }, () => MilterClient.connect(address)));
  for (const c of clients) {
    await c.negotiate();
    const reply = await c.send({ type: 'connect', hostname: 'client.example', family: '4', port: 1234, address: '192.0.2.1' });
    assert.equal(reply?.final.type, 'continue');
  }
  for (const c of clients) await c.quit();
  await server.close(1000);
  assert.equal(openDescriptors(), before, 'every descriptor closed');
  // The port is free again: nothing still listens on it.
  const port = Number(address.split(':').pop());
  const again = net.createServer();
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    again.listen(port, '127.0.0.1', () => resolve());
  });
  await new Promise((r) => again.close(r));
});

test('a UNIX socket gets the duplicates too, and its file is removed at close', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'accept-handles-'));
  try {
    const path = join(dir, 'milter.sock');
    const server = new MilterServer(FILTER, { acceptsPerTurn: 3, ...(dup ? { duplicateDescriptor: dup } : {}) });
    const address = await server.listen(`unix:${path}`);
    assert.equal(server.acceptHandles, 3);
    const client = await MilterClient.connect(address);
    await client.negotiate();
    await client.quit();
    await server.close(1000);
    assert.deepEqual(readdirSync(dir), [], 'socket file removed');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('when dup fails the server keeps its one handle and serves as before', async () => {
  const server = new MilterServer(FILTER, { acceptsPerTurn: 8, duplicateDescriptor: () => -1 });
  const address = await server.listen('inet:127.0.0.1:0');
  try {
    assert.equal(server.acceptHandles, 1);
    const client = await MilterClient.connect(address);
    await client.negotiate();
    await client.quit();
  } finally {
    await server.close(100);
  }
});
