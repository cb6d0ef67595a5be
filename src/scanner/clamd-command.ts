// One short clamd command (PING, VERSION) on its own connection, with one deadline covering connect and reply.
// Used by health checks and the IDSESSION support check; scans go through ClamdInstream.
import type net from 'node:net';
import { parseClamdVersion, type ClamdVersion } from '../metrics/clamd-version.js';
import { connectClamd, formatClamdEndpoint, type ClamdEndpoint } from './clamd-endpoint.js';
import { MAX_REPLY_BYTES, printableReply, replyText } from './clamd-reply.js';

export class ClamdCommandError extends Error {
  constructor(endpoint: ClamdEndpoint, command: string, why: string) {
    super(`clamd ${command} at ${formatClamdEndpoint(endpoint)}: ${why}`);
    this.name = 'ClamdCommandError';
  }
}

/**
 * Opens a connection, writes `request` and resolves with the first reply (terminator stripped) and the socket,
 * still open, for the caller to close or keep. One deadline covers connect and reply. A reply is complete at its
 * NUL, or when clamd closes after part of one; a connection failure rejects with a ClamdConnectError, anything
 * else with a ClamdCommandError naming `label`.
 */
async function exchange(endpoint: ClamdEndpoint, label: string, request: string, timeoutMs: number): Promise<{ reply: string; socket: net.Socket }> {
  const started = Date.now();
  const socket = await connectClamd(endpoint, timeoutMs);
  const left = Math.max(1, timeoutMs - (Date.now() - started));
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let settled = false;
    const timer = setTimeout(() => fail(`no reply within ${timeoutMs} ms`), left);
    function settle(): void {
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.removeAllListeners('end');
      socket.removeAllListeners('close');
    }
    function fail(why: string): void {
      if (settled) return;
      settle();
      socket.destroy();
      reject(new ClamdCommandError(endpoint, label, why));
    }
    function done(): void {
      if (settled) return;
      settle();
      resolve({ reply: replyText(Buffer.concat(parts)), socket });
    }
    socket.on('data', (data: Buffer) => {
      parts.push(data);
      size += data.length;
      if (data.includes(0)) done();
      else if (size > MAX_REPLY_BYTES) fail(`reply longer than ${MAX_REPLY_BYTES} bytes without a terminator`);
    });
    // A close with a partial reply still counts as the reply (an n-style or truncated answer).
    socket.on('end', () => (size > 0 ? done() : fail('connection closed without a reply')));
    socket.on('close', () => (size > 0 ? done() : fail('connection closed without a reply')));
    socket.on('error', (err) => fail(err.message)); // stays: errors after the reply must not go unhandled
    socket.write(request);
  });
}

/** Sends `z<COMMAND>\0` on its own connection and resolves with the reply text (terminator stripped). */
export async function clamdCommand(endpoint: ClamdEndpoint, command: string, timeoutMs: number): Promise<string> {
  let answer;
  try {
    answer = await exchange(endpoint, command, `z${command}\0`, timeoutMs);
  } catch (e) {
    if (e instanceof ClamdCommandError) throw e;
    throw new ClamdCommandError(endpoint, command, (e as Error).message);
  }
  answer.socket.destroy(); // clamd closes after one command anyway
  return answer.reply;
}

/** How long a session closed with `zEND\0` may take to close before we drop it ourselves. */
const END_GRACE_MS = 1000;

/**
 * Closes an IDSESSION connection politely: `zEND\0`, then our side; clamd closes its side on END. A connection
 * that is still open after END_GRACE_MS is destroyed. Safe on a socket nobody else listens to any more.
 */
export function endClamdSession(socket: net.Socket): void {
  if (socket.destroyed) return;
  socket.on('error', () => socket.destroy());
  socket.on('close', () => clearTimeout(timer));
  const timer = setTimeout(() => socket.destroy(), END_GRACE_MS);
  timer.unref();
  socket.resume(); // read (and drop) whatever comes, so clamd's close is seen
  socket.end('zEND\0');
}

/**
 * Whether the endpoint speaks IDSESSION (clamd has since 0.95): `zIDSESSION\0zPING\0` must be answered
 * `1: PONG`; the check's connection is then closed with `zEND\0`. Resolves false for any other answer (a
 * clamd-compatible server without sessions answers `UNKNOWN COMMAND` and closes). Rejects like a failed
 * connection — ClamdConnectError, or ClamdCommandError when clamd accepted but did not answer within the one
 * deadline `timeoutMs` — so the caller treats the endpoint as down, as it would after a PING probe.
 */
export async function clamdSessionSupport(endpoint: ClamdEndpoint, timeoutMs: number): Promise<boolean> {
  const { reply, socket } = await exchange(endpoint, 'IDSESSION', 'zIDSESSION\0zPING\0', timeoutMs);
  if (reply !== '1: PONG') {
    socket.destroy();
    return false;
  }
  endClamdSession(socket);
  return true;
}

/** Resolves when clamd answers PONG; rejects with a ClamdCommandError saying what came instead. */
export async function pingClamd(endpoint: ClamdEndpoint, timeoutMs: number): Promise<void> {
  const reply = await clamdCommand(endpoint, 'PING', timeoutMs);
  if (reply !== 'PONG') throw new ClamdCommandError(endpoint, 'PING', `expected PONG, got ${printableReply(reply)}`);
}

export async function clamdVersion(endpoint: ClamdEndpoint, timeoutMs: number): Promise<ClamdVersion> {
  const reply = await clamdCommand(endpoint, 'VERSION', timeoutMs);
  const version = parseClamdVersion(reply);
  if (version === undefined) throw new ClamdCommandError(endpoint, 'VERSION', `not a version reply: ${printableReply(reply)}`);
  return version;
}

/**
 * Asks clamd whether a stream of `bytes` would exceed its StreamMaxLength, by announcing one chunk of that
 * length and sending no data: clamd checks a chunk's length against its quota before reading the data.
 * Used after a connection broke mid-stream, because clamd's `INSTREAM size limit exceeded` reply is often lost
 * to the broken pipe. Resolves false when clamd does not refuse (or cannot be asked) within `timeoutMs`.
 */
export async function exceedsStreamLimit(endpoint: ClamdEndpoint, bytes: number, connectTimeoutMs: number, replyWaitMs = 1000): Promise<boolean> {
  let socket;
  try {
    socket = await connectClamd(endpoint, connectTimeoutMs);
  } catch {
    return false;
  }
  const connected = socket;
  return new Promise<boolean>((resolve) => {
    let reply = '';
    const done = (refused: boolean): void => {
      clearTimeout(timer);
      connected.destroy();
      resolve(refused);
    };
    // clamd refuses an over-quota chunk at once; if it is waiting for the data instead, the answer is no.
    const timer = setTimeout(() => done(false), replyWaitMs);
    connected.on('data', (data: Buffer) => {
      reply += data.toString('latin1');
      if (reply.includes('\0') || reply.length > MAX_REPLY_BYTES) done(/INSTREAM size limit exceeded/.test(reply));
    });
    connected.on('error', () => done(false));
    connected.on('close', () => done(/INSTREAM size limit exceeded/.test(reply)));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(Math.min(bytes, 0xffff_ffff), 0);
    connected.write(Buffer.concat([Buffer.from('zINSTREAM\0', 'latin1'), header]));
  });
}
