// One short clamd command (PING, VERSION) on its own connection, with one deadline covering connect and reply.
// Used by health checks; scans go through ClamdInstream.
import { parseClamdVersion, type ClamdVersion } from '../metrics/clamd-version.js';
import { connectClamd, formatClamdEndpoint, type ClamdEndpoint } from './clamd-endpoint.js';
import { MAX_REPLY_BYTES, printableReply, replyText } from './clamd-reply.js';

export class ClamdCommandError extends Error {
  constructor(endpoint: ClamdEndpoint, command: string, why: string) {
    super(`clamd ${command} at ${formatClamdEndpoint(endpoint)}: ${why}`);
    this.name = 'ClamdCommandError';
  }
}

/** Sends `z<COMMAND>\0` and resolves with the reply text (terminator stripped). */
export async function clamdCommand(endpoint: ClamdEndpoint, command: string, timeoutMs: number): Promise<string> {
  const started = Date.now();
  let socket;
  try {
    socket = await connectClamd(endpoint, timeoutMs);
  } catch (e) {
    throw new ClamdCommandError(endpoint, command, (e as Error).message);
  }
  const left = Math.max(1, timeoutMs - (Date.now() - started));
  const connected = socket;
  return new Promise<string>((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let settled = false;
    const timer = setTimeout(() => fail(`no reply within ${timeoutMs} ms`), left);
    function settle(): void {
      settled = true;
      clearTimeout(timer);
      connected.destroy();
    }
    function fail(why: string): void {
      if (settled) return;
      settle();
      reject(new ClamdCommandError(endpoint, command, why));
    }
    function done(): void {
      if (settled) return;
      settle();
      resolve(replyText(Buffer.concat(parts)));
    }
    connected.on('data', (data: Buffer) => {
      parts.push(data);
      size += data.length;
      if (data.includes(0)) done();
      else if (size > MAX_REPLY_BYTES) fail(`reply longer than ${MAX_REPLY_BYTES} bytes without a terminator`);
    });
    // clamd closes after answering; a close with a partial reply still counts as the reply.
    connected.on('end', () => (size > 0 ? done() : fail('connection closed without a reply')));
    connected.on('close', () => fail('connection closed without a reply'));
    connected.on('error', (err) => fail(err.message));
    connected.write(`z${command}\0`);
  });
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
