// The MTA side of the protocol, for tests, benchmarks and `scan`-style tools: speaks to a milter exactly as
// Postfix does (same offer, macro packets before commands), using the same codec the other way round.
import net from 'node:net';
import { ALL_ACTIONS, ALL_PROTOCOL_STEPS, CommandCode, MAX_OUTGOING_DATA, ProtocolFlag } from './constants.js';
import { encodeCommand } from './command-encoder.js';
import { MilterProtocolError } from './errors.js';
import { FrameDecoder } from './frame-decoder.js';
import { parseListenAddress } from './listen-address.js';
import type { FinalResponse, MacroPair, MilterCommand, MilterResponse, OptionNegotiation } from './messages.js';
import { decodeResponse, isFinalResponse } from './response-decoder.js';

/** What Postfix 3.x and Sendmail 8.14+ offer. */
export const POSTFIX_OFFER: OptionNegotiation = { version: 6, actions: ALL_ACTIONS, protocol: ALL_PROTOCOL_STEPS };

/** The milter's answer to one command: the non-final packets (progress, modifications) and the final one. */
export interface CommandReply {
  readonly final: FinalResponse;
  readonly interim: readonly MilterResponse[];
}

export type OptnegReply = Extract<MilterResponse, { type: 'optneg' }>;

interface Waiter {
  readonly interim: MilterResponse[];
  readonly resolve: (r: { final: MilterResponse; interim: MilterResponse[] }) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly what: string;
}

export interface MilterClientOptions {
  /** How long to wait for a final reply (ms). Default 30 s, Postfix's milter_command_timeout. */
  readonly replyTimeoutMs?: number;
  readonly maxFrameLength?: number;
}

// Steps the MTA leaves out when the milter set the matching NO bit, and the NR bit that waives the reply.
const STEP_FLAGS: Partial<Record<MilterCommand['type'], readonly [no: number, noReply: number]>> = {
  connect: [ProtocolFlag.NOCONNECT, ProtocolFlag.NR_CONN],
  helo: [ProtocolFlag.NOHELO, ProtocolFlag.NR_HELO],
  mail: [ProtocolFlag.NOMAIL, ProtocolFlag.NR_MAIL],
  rcpt: [ProtocolFlag.NORCPT, ProtocolFlag.NR_RCPT],
  data: [ProtocolFlag.NODATA, ProtocolFlag.NR_DATA],
  header: [ProtocolFlag.NOHDRS, ProtocolFlag.NR_HDR],
  eoh: [ProtocolFlag.NOEOH, ProtocolFlag.NR_EOH],
  body: [ProtocolFlag.NOBODY, ProtocolFlag.NR_BODY],
  unknown: [ProtocolFlag.NOUNKNOWN, ProtocolFlag.NR_UNKN],
};

const MACRO_STAGE_OF: Partial<Record<MilterCommand['type'], number>> = {
  connect: CommandCode.CONNECT,
  helo: CommandCode.HELO,
  mail: CommandCode.MAIL,
  rcpt: CommandCode.RCPT,
  data: CommandCode.DATA,
  header: CommandCode.HEADER,
  eoh: CommandCode.EOH,
  body: CommandCode.BODY,
  eom: CommandCode.BODYEOB,
  unknown: CommandCode.UNKNOWN,
};

export class MilterClient {
  private readonly decoder: FrameDecoder;
  private readonly waiters: Waiter[] = [];
  private readonly timeoutMs: number;
  private closedError: Error | undefined;
  /** Protocol word the milter answered with; decides which steps are sent and which are answered. */
  protocol = 0;
  actions = 0;

  private readonly socket: net.Socket;

  private constructor(socket: net.Socket, options: MilterClientOptions) {
    this.socket = socket;
    this.timeoutMs = options.replyTimeoutMs ?? 30_000;
    this.decoder = new FrameDecoder(options.maxFrameLength ?? 1 << 30);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => this.shutdown(e));
    socket.on('close', () => this.shutdown(new MilterProtocolError('connection-closed', 'the milter closed the connection')));
  }

  /** Opens a connection to `inet:HOST:PORT`, `inet6:[HOST]:PORT` or `unix:/PATH`. */
  static connect(spec: string, options: MilterClientOptions = {}): Promise<MilterClient> {
    const address = parseListenAddress(spec);
    return new Promise((resolve, reject) => {
      const socket =
        address.kind === 'unix' ? net.connect(address.path) : net.connect({ host: address.host, port: address.port, noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new MilterClient(socket, options));
      });
    });
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  async negotiate(offer: OptionNegotiation = POSTFIX_OFFER): Promise<OptnegReply> {
    const reply = await this.exchange([encodeCommand({ type: 'optneg', ...offer })], 'OPTNEG');
    if (reply.final.type !== 'optneg') {
      throw new MilterProtocolError('malformed-response', `expected an OPTNEG reply, got '${reply.final.type}'`);
    }
    this.protocol = reply.final.protocol;
    this.actions = reply.final.actions;
    return reply.final;
  }

  /**
   * Sends a command (preceded by a macro packet when `macros` is given, in the same write) and waits for
   * the reply. Resolves to undefined when no reply is due: the step was skipped by the milter's NO bits
   * (then nothing is sent, as an MTA would), its reply was waived by an NR bit, or the command never has one.
   */
  async send(command: MilterCommand, macros?: readonly MacroPair[]): Promise<CommandReply | undefined> {
    const flags = STEP_FLAGS[command.type];
    if (flags && (this.protocol & flags[0]) !== 0) return undefined;
    const packets: Buffer[] = [];
    const stage = MACRO_STAGE_OF[command.type];
    if (macros && stage !== undefined) packets.push(encodeCommand({ type: 'macro', stage, macros }));
    packets.push(encodeCommand(command));
    const expectsReply =
      command.type === 'eom' || command.type === 'optneg' || (flags !== undefined && (this.protocol & flags[1]) === 0);
    if (!expectsReply) {
      this.write(packets);
      return undefined;
    }
    const reply = await this.exchange(packets, command.type);
    if (!isFinalResponse(reply.final) || reply.final.type === 'optneg') {
      throw new MilterProtocolError('malformed-response', `unexpected '${reply.final.type}' as the reply to ${command.type}`);
    }
    return { final: reply.final as FinalResponse, interim: reply.interim };
  }

  /** Sends a body in chunks of at most 65535 bytes, as Postfix does; returns the reply to the last chunk sent. */
  async body(data: Buffer): Promise<CommandReply | undefined> {
    let last: CommandReply | undefined;
    for (let off = 0; off < data.length; off += MAX_OUTGOING_DATA) {
      last = await this.send({ type: 'body', chunk: data.subarray(off, off + MAX_OUTGOING_DATA) });
      if (last && last.final.type !== 'continue') return last;
    }
    return last;
  }

  /** Writes raw bytes (for fault injection: garbage, truncated packets). */
  writeRaw(data: Buffer): void {
    this.socket.write(data);
  }

  /** QUIT, then close. */
  async quit(): Promise<void> {
    if (!this.closed) this.write([encodeCommand({ type: 'quit' })]);
    await this.close();
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }

  /** Resolves when the milter closes the connection. */
  waitForClose(): Promise<void> {
    return new Promise((resolve) => (this.socket.destroyed ? resolve() : this.socket.once('close', () => resolve())));
  }

  private write(packets: Buffer[]): void {
    if (this.closedError) throw this.closedError;
    this.socket.write(packets.length === 1 ? (packets[0] as Buffer) : Buffer.concat(packets));
  }

  private exchange(packets: Buffer[], what: string): Promise<{ final: MilterResponse; interim: MilterResponse[] }> {
    return new Promise((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      const timer = setTimeout(() => {
        this.shutdown(new MilterProtocolError('timeout', `no reply to ${what} within ${this.timeoutMs} ms`));
        this.socket.destroy();
      }, this.timeoutMs);
      this.waiters.push({ interim: [], resolve, reject, timer, what });
      this.write(packets);
    });
  }

  private onData(chunk: Buffer): void {
    try {
      for (const frame of this.decoder.push(chunk)) {
        const response = decodeResponse(frame);
        const waiter = this.waiters[0];
        if (!waiter) throw new MilterProtocolError('malformed-response', `unsolicited '${response.type}' from the milter`);
        if (!isFinalResponse(response)) {
          waiter.interim.push(response);
          continue;
        }
        this.waiters.shift();
        clearTimeout(waiter.timer);
        waiter.resolve({ final: response, interim: waiter.interim });
      }
    } catch (e) {
      this.shutdown(e instanceof Error ? e : new Error(String(e)));
      this.socket.destroy();
    }
  }

  private shutdown(error: Error): void {
    this.closedError ??= error;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(error);
    }
  }
}
