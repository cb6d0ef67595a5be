// The three ways an MTA can reach the milter, measured the same way for each MTA: TCP with TCP_NODELAY
// only, TCP with TCP_QUICKACK as well, and a UNIX socket.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MilterFilter } from '@postfix-milter-ts/protocol';
import { loadQuickAck } from 'postfix-milter-ts/tcp-quickack.js';

/** Every stage answered, one header added at end of message, as a filter that checks envelope and content does. */
export const EVERY_STAGE_FILTER: MilterFilter<undefined> = {
  connect: () => undefined,
  helo: () => undefined,
  envfrom: () => undefined,
  envrcpt: () => undefined,
  data: () => undefined,
  header: () => undefined,
  eoh: () => undefined,
  body: () => undefined,
  eom: (_s, m) => m.addHeader('X-Bench', 'latency'),
};

export type MeasureMode<R> = (mode: string, listen: string, afterTcpRead?: (socket: Socket) => void) => Promise<R>;

/**
 * Runs `measure` for each mode twice, in alternating order, keeping the better run of each (`better(a, b)`:
 * a beats b): the machine is small and shared.
 */
export async function measureSocketModes<R>(measure: MeasureMode<R>, better: (a: R, b: R) => boolean): Promise<Array<[mode: string, result: R]>> {
  const quick = loadQuickAck();
  if (!quick.setter) throw new Error(`TCP_QUICKACK unavailable here: ${quick.reason ?? ''}`);
  const setter = quick.setter;
  const dir = await mkdtemp(join(tmpdir(), 'pmt-latency-'));
  await chmod(dir, 0o755); // the MTA's processes run as their own users and must reach the socket
  const best = new Map<string, R>();
  try {
    const modes: Array<[string, () => Promise<R>]> = [
      ['TCP, TCP_NODELAY only', () => measure('TCP, TCP_NODELAY only', 'inet:127.0.0.1:0')],
      ['TCP, TCP_NODELAY + TCP_QUICKACK', () => measure('TCP, TCP_NODELAY + TCP_QUICKACK', 'inet:127.0.0.1:0', (s) => void setter(s))],
      ['UNIX socket', () => measure('UNIX socket', `unix:${join(dir, 'milter.sock')}`)],
    ];
    for (const round of [0, 1]) {
      for (const [name, run] of round === 0 ? modes : [...modes].reverse()) {
        const r = await run();
        const seen = best.get(name);
        if (seen === undefined || better(r, seen)) best.set(name, r);
      }
    }
    return modes.map(([name]) => [name, best.get(name) as R]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
