import { isIPv6 } from 'node:net';
import { ActionFlag, ALL_ACTIONS, CommandCode, MacroStage, ProtocolFlag } from './constants.js';
import { decodeCommand } from './command-decoder.js';
import { MilterProtocolError } from './errors.js';
import type { ConnectInfo, HookResult, MacroStageName, MilterFilter, MtaKind, NoReplyStage, SessionContext } from './filter.js';
import { Verdict } from './filter.js';
import { MacroStore } from './macros.js';
import type { CommandType, Frame, MacroRequests, MilterCommand, ResponseType } from './messages.js';
import { MessageModifierImpl } from './message-modifier.js';
import { negotiate, type NegotiatedOptions, type OptionRequest } from './negotiate.js';
import { encodeReplyCode } from './reply-code.js';
import { encodeResponse } from './response-encoder.js';

/** Where the session's bytes go. The session never touches a socket itself. */
export interface SessionTransport {
  write(data: Buffer): void;
  /** Close the connection (after QUIT, or on a protocol error). */
  end(): void;
}

/** Hooks for logs and metrics; the protocol package imports neither. */
export interface SessionObserver {
  negotiated?(sessionId: string, options: NegotiatedOptions): void;
  command?(sessionId: string, type: CommandType): void;
  reply?(sessionId: string, stage: CommandType, reply: ResponseType): void;
  protocolError?(sessionId: string, error: MilterProtocolError): void;
  hookError?(sessionId: string, stage: CommandType, error: unknown): void;
  closed?(sessionId: string): void;
}

export interface SessionOptions {
  readonly id: string;
  /** How often progress packets go out while a hook is still working (ms). */
  readonly progressIntervalMs: number;
  readonly observer?: SessionObserver;
  /** Called when every received packet has been handled (lets a transport resume reading). */
  readonly drained?: () => void;
}

type Phase = 'negotiate' | 'connect' | 'session' | 'message';

// Position of each message command in a transaction; a command may repeat its step or move forward only.
const MESSAGE_STEP: Partial<Record<CommandType, number>> = { mail: 1, rcpt: 2, data: 3, header: 4, eoh: 5, body: 6, eom: 7 };

const NO_STEP_FOR_HOOK: ReadonlyArray<readonly [keyof MilterFilter<unknown>, number]> = [
  ['connect', ProtocolFlag.NOCONNECT],
  ['helo', ProtocolFlag.NOHELO],
  ['envfrom', ProtocolFlag.NOMAIL],
  ['envrcpt', ProtocolFlag.NORCPT],
  ['data', ProtocolFlag.NODATA],
  ['header', ProtocolFlag.NOHDRS],
  ['eoh', ProtocolFlag.NOEOH],
  ['body', ProtocolFlag.NOBODY],
  ['unknown', ProtocolFlag.NOUNKNOWN],
];

const NO_REPLY_FLAG: Record<NoReplyStage, number> = {
  connect: ProtocolFlag.NR_CONN,
  helo: ProtocolFlag.NR_HELO,
  envfrom: ProtocolFlag.NR_MAIL,
  envrcpt: ProtocolFlag.NR_RCPT,
  data: ProtocolFlag.NR_DATA,
  header: ProtocolFlag.NR_HDR,
  eoh: ProtocolFlag.NR_EOH,
  body: ProtocolFlag.NR_BODY,
  unknown: ProtocolFlag.NR_UNKN,
};

const NO_REPLY_FLAG_BY_CODE: ReadonlyMap<number, number> = new Map([
  [CommandCode.CONNECT, ProtocolFlag.NR_CONN],
  [CommandCode.HELO, ProtocolFlag.NR_HELO],
  [CommandCode.MAIL, ProtocolFlag.NR_MAIL],
  [CommandCode.RCPT, ProtocolFlag.NR_RCPT],
  [CommandCode.DATA, ProtocolFlag.NR_DATA],
  [CommandCode.HEADER, ProtocolFlag.NR_HDR],
  [CommandCode.EOH, ProtocolFlag.NR_EOH],
  [CommandCode.BODY, ProtocolFlag.NR_BODY],
  [CommandCode.UNKNOWN, ProtocolFlag.NR_UNKN],
]);

const MACRO_STAGE: Record<MacroStageName, number> = {
  connect: MacroStage.CONNECT,
  helo: MacroStage.HELO,
  envfrom: MacroStage.ENVFROM,
  envrcpt: MacroStage.ENVRCPT,
  data: MacroStage.DATA,
  eoh: MacroStage.EOH,
  eom: MacroStage.EOM,
};

/** What a filter asks for in OPTNEG: the stages it has hooks for, its actions, macros and features. */
export function optionRequestFor(filter: MilterFilter<unknown>): OptionRequest {
  let protocol = 0;
  for (const [hook, flag] of NO_STEP_FOR_HOOK) if (typeof filter[hook] !== 'function') protocol |= flag;
  for (const stage of filter.noReply ?? []) protocol |= NO_REPLY_FLAG[stage];
  if (filter.header || filter.body) protocol |= ProtocolFlag.SKIP;
  if (filter.rejectedRecipients) protocol |= ProtocolFlag.RCPT_REJ;
  if (filter.headerLeadingSpace) protocol |= ProtocolFlag.HDR_LEADSPC;

  let macroRequests: MacroRequests | undefined;
  if (filter.macros) {
    const map = new Map<number, readonly string[]>();
    for (const [stage, names] of Object.entries(filter.macros) as [MacroStageName, readonly string[]][]) {
      // A connect list replaces Postfix's default one; keep `v`, which tells us which MTA we talk to.
      const list = stage === 'connect' && !names.includes('v') ? [...names, 'v'] : names;
      if (list.length > 0) map.set(MACRO_STAGE[stage], list);
    }
    if (map.size > 0) macroRequests = map;
  }
  const actions = (filter.actions ?? ALL_ACTIONS) & ~ActionFlag.SETSYMLIST;
  return macroRequests ? { actions, protocol, macroRequests } : { actions, protocol };
}

// An MTA opens a milter connection per SMTP session and makes the same offer each time: the outcome and the
// reply bytes are worked out once per filter and offer (a few offers at most: one per MTA kind and version).
const negotiations = new WeakMap<MilterFilter<unknown>, Map<string, { readonly negotiated: NegotiatedOptions; readonly reply: Buffer }>>();
const MAX_OFFERS_REMEMBERED = 16;

function negotiationFor(filter: MilterFilter<unknown>, offer: { version: number; actions: number; protocol: number }): { negotiated: NegotiatedOptions; reply: Buffer } {
  let byOffer = negotiations.get(filter);
  if (byOffer === undefined) {
    byOffer = new Map();
    negotiations.set(filter, byOffer);
  }
  const key = `${offer.version}/${offer.actions}/${offer.protocol}`;
  const known = byOffer.get(key);
  if (known !== undefined) return known;
  const negotiated = negotiate(offer, optionRequestFor(filter)); // throws for an offer we cannot accept
  const { version, actions, protocol, macroRequests } = negotiated;
  const reply = encodeResponse(macroRequests ? { type: 'optneg', version, actions, protocol, macroRequests } : { type: 'optneg', version, actions, protocol });
  if (byOffer.size < MAX_OFFERS_REMEMBERED) byOffer.set(key, { negotiated, reply });
  return { negotiated, reply };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * The client's IPv6 address in one spelling whatever the MTA wrote: Sendmail prefixes `IPv6:` and writes
 * every group (`IPv6:0:0:0:0:0:0:0:1`), Postfix writes `::1`. The WHATWG URL parser canonicalises (RFC 5952).
 */
function canonicalIpv6(address: string): string {
  const bare = address.length > 5 && address.slice(0, 5).toLowerCase() === 'ipv6:' ? address.slice(5) : address;
  // Only an IPv6 address is canonicalised; anything else (`::1]:25/x`, which the URL parser would also read as
  // ::1) is passed on as written, for the filter to find it is no address.
  if (!isIPv6(bare)) return bare;
  try {
    return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  } catch {
    return bare;
  }
}

/**
 * One milter conversation: decodes packets, keeps the state machine and macros, calls the filter's hooks in
 * order (never two at once) and writes exactly one final reply per command that expects one, preceded by
 * any progress packets and end-of-message modifications. Transport-agnostic: bytes go through
 * SessionTransport, so it can be driven by a socket or by a test feeding frames.
 */
export class MilterSession<S> implements SessionContext<S> {
  readonly id: string;
  state: S;
  negotiated: NegotiatedOptions = { version: 0, actions: 0, protocol: 0, missingActions: 0, missingProtocol: 0 };
  mta: MtaKind = 'unknown';
  connection: ConnectInfo | undefined;
  helo: string | undefined;
  messageCount = 0;

  private phase: Phase = 'negotiate';
  private step = 0;
  private readonly macroStore = new MacroStore();
  private queue: Frame[] = [];
  private head = 0;
  private queuedPayloadBytes = 0;
  private busy = false;
  private ended = false;
  /** The MTA will send nothing more (EOF); what it sent is still handled and answered. */
  private inputDone = false;
  private cleanedUp = false;
  /** A verdict from a stage whose reply was waived, given at every later answered command of the message. */
  private heldVerdict: Verdict | undefined;
  /**
   * A verdict from a waived CONNECT or HELO hook (or its failure): it concerns the connection, so it is given
   * at the first answered command of every message of the session, the way an MTA refuses every transaction
   * of a client refused at connect.
   */
  private sessionVerdict: Verdict | undefined;
  /** Sends progress while a hook works; stopped when it settles or the connection goes away. */
  private progressTimer: NodeJS.Timeout | undefined;
  /** The command whose reply the MTA is waiting for and has not had yet. */
  private owed: CommandType | undefined;
  /** Set by refuseAtNextReply(): the next command the MTA waits a reply for is answered tempfail, then the session ends. */
  private refusing = false;
  /** The command answered tempfail when the session was abandoned, if any. */
  private abandonedAt: CommandType | undefined;

  private readonly filter: MilterFilter<S>;
  private readonly transport: SessionTransport;
  private readonly options: SessionOptions;

  constructor(filter: MilterFilter<S>, transport: SessionTransport, options: SessionOptions) {
    this.filter = filter;
    this.transport = transport;
    this.options = options;
    this.id = options.id;
    this.state = this.newState();
  }

  /** True while a message is between MAIL and its end (EOM or ABORT). */
  get inMessage(): boolean {
    return this.phase === 'message';
  }

  /** True while a hook is running or packets wait to be handled. */
  get isBusy(): boolean {
    return this.busy || this.head < this.queue.length;
  }

  /** Packets received and not yet handled. */
  get queuedFrames(): number {
    return this.queue.length - this.head;
  }

  /** Payload bytes of the packets received and not yet handled. */
  get queuedBytes(): number {
    return this.queuedPayloadBytes;
  }

  /**
   * Whether the MTA, having sent this packet, waits for our reply before it sends anything else. After such
   * a packet our reply carries the TCP ACK; after any other (macros, waived replies) the MTA may be holding
   * its next small write until the ACK comes (Nagle), so the transport should ACK at once.
   */
  awaitsReply(frame: Frame): boolean {
    const noReplyFlag = NO_REPLY_FLAG_BY_CODE.get(frame.code);
    if (noReplyFlag !== undefined) return (this.negotiated.protocol & noReplyFlag) === 0;
    return frame.code === CommandCode.OPTNEG || frame.code === CommandCode.BODYEOB;
  }

  macro(name: string): string | undefined {
    return this.macroStore.get(name);
  }

  macros(): Map<string, string> {
    return this.macroStore.all();
  }

  /** Feeds decoded frames in arrival order. */
  receive(frames: readonly Frame[]): void {
    if (this.ended) return;
    for (const f of frames) {
      this.queue.push(f);
      this.queuedPayloadBytes += f.payload.length;
    }
    if (!this.busy) this.pump();
  }

  /**
   * The MTA closed its sending side (half-close): what it sent is still handled and answered, as if a QUIT
   * followed, so an end-of-message sent just before EOF still gets its verdict.
   */
  inputEnded(): void {
    this.inputDone = true;
    if (!this.busy) this.pump();
  }

  /** The transport went away (error, timeout, both sides closed): end the message and the session. */
  transportClosed(): void {
    this.stopProgress();
    if (this.ended) return;
    this.ended = true;
    if (!this.busy) void this.cleanup();
  }

  /**
   * Ends the session now (the server is stopping): a reply the MTA is still waiting for is answered with
   * tempfail first, so that an MTA that would take a dead milter as "accept" (Sendmail without F=T) keeps the
   * message queued instead. Returns the stage so answered, if any; a hook still running is ignored when it settles.
   */
  abandon(): CommandType | undefined {
    if (this.ended) return undefined;
    const owed = this.owed;
    if (owed !== undefined) this.send(owed, encodeResponse({ type: 'tempfail' }), 'tempfail');
    this.abandonedAt ??= owed;
    this.stopProgress();
    this.ended = true;
    this.transport.end();
    if (!this.busy) void this.cleanup();
    return owed;
  }

  /** True once the session is over (closed, failed or abandoned), whatever the connection still does. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** The first command answered tempfail because the session was abandoned (then or at a later command), if any. */
  get tempfailedAt(): CommandType | undefined {
    return this.abandonedAt;
  }

  /**
   * Abandons the session at the next command the MTA waits for a reply to (at once if it waits now): that one is
   * answered tempfail (each RCPT is, and the session waits for the next command), the commands before it are not
   * handled, and ABORT or QUIT end it without a reply. For a
   * stop that reaches a session between two commands of its message: cut there, the message would get the MTA's
   * default action for a dead milter, which is accept in Sendmail without F=T.
   */
  refuseAtNextReply(): void {
    if (this.ended) return;
    if (this.owed !== undefined) {
      this.abandon();
      return;
    }
    this.refusing = true;
    this.stopProgress();
    if (!this.busy) this.pump();
  }

  /** Ends the session with a protocol error: reported, then the connection is closed. */
  fail(error: unknown): void {
    const err =
      error instanceof MilterProtocolError ? error : new MilterProtocolError('malformed-command', String(error), { cause: error });
    this.options.observer?.protocolError?.(this.id, err);
    this.stopProgress();
    this.ended = true;
    this.transport.end();
    if (!this.busy) void this.cleanup();
  }

  private pump(): void {
    while (this.head < this.queue.length) {
      if (this.ended) break;
      const frame = this.queue[this.head++] as Frame;
      this.queuedPayloadBytes -= frame.payload.length;
      let pending: Promise<void> | void;
      try {
        const cmd = decodeCommand(frame);
        if (this.awaitsReply(frame)) this.owed = cmd.type;
        if (this.refusing) {
          // A tempfail at RCPT refuses only that recipient: the session stays, so that the message itself is
          // answered tempfail when it goes on (DATA, headers, body, end), not left to the MTA's default action.
          if (this.owed === 'rcpt') {
            this.abandonedAt ??= 'rcpt';
            this.send('rcpt', encodeResponse({ type: 'tempfail' }), 'tempfail');
          } else if (this.owed !== undefined || cmd.type === 'abort' || cmd.type === 'quit' || cmd.type === 'quit-nc') this.abandon();
          continue;
        }
        pending = this.handle(cmd);
      } catch (e) {
        this.fail(e);
        break;
      }
      if (pending) {
        this.busy = true;
        pending.then(
          () => this.resume(),
          (e: unknown) => {
            this.fail(e);
            this.resume();
          },
        );
        return;
      }
    }
    this.queue = [];
    this.head = 0;
    this.queuedPayloadBytes = 0;
    if (this.inputDone && !this.ended) {
      this.ended = true;
      this.transport.end();
    }
    if (this.ended) void this.cleanup();
    else this.options.drained?.();
  }

  private resume(): void {
    this.busy = false;
    this.pump();
  }

  private async cleanup(): Promise<void> {
    if (this.cleanedUp) return;
    this.cleanedUp = true;
    try {
      if (this.phase === 'message') await this.filter.abort?.(this);
      await this.filter.close?.(this);
    } catch (e) {
      this.options.observer?.hookError?.(this.id, 'quit', e);
    }
    this.options.observer?.closed?.(this.id);
  }

  private handle(cmd: MilterCommand): Promise<void> | void {
    this.options.observer?.command?.(this.id, cmd.type);
    if (this.phase === 'negotiate' && cmd.type !== 'optneg') {
      throw new MilterProtocolError('unexpected-command', `${cmd.type} before option negotiation`);
    }
    switch (cmd.type) {
      case 'optneg':
        return this.onOptneg(cmd);
      case 'macro':
        this.macroStore.define(cmd.stage, cmd.macros);
        return;
      case 'connect':
        return this.onConnect(cmd);
      case 'helo':
        return this.onHelo(cmd.name);
      case 'mail':
        if (this.phase === 'message') {
          // A new MAIL without ABORT: end the old message first, as libmilter does.
          const aborted = this.abortMessage();
          if (aborted) return aborted.then(() => this.onMail(cmd.sender, cmd.esmtpArgs));
        }
        return this.onMail(cmd.sender, cmd.esmtpArgs);
      case 'rcpt':
        this.enterMessageStep('rcpt');
        this.macroStore.enter(CommandCode.RCPT);
        return this.runHook('rcpt', ProtocolFlag.NR_RCPT, this.filter.envrcpt && (() => this.filter.envrcpt!(this, cmd.recipient, cmd.esmtpArgs)));
      case 'data':
        this.enterMessageStep('data');
        return this.runHook('data', ProtocolFlag.NR_DATA, this.filter.data && (() => this.filter.data!(this)));
      case 'header':
        this.enterMessageStep('header');
        return this.runHook('header', ProtocolFlag.NR_HDR, this.filter.header && (() => this.filter.header!(this, cmd.name, cmd.value)));
      case 'eoh':
        this.enterMessageStep('eoh');
        return this.runHook('eoh', ProtocolFlag.NR_EOH, this.filter.eoh && (() => this.filter.eoh!(this)));
      case 'body':
        this.enterMessageStep('body');
        return this.runHook('body', ProtocolFlag.NR_BODY, this.filter.body && (() => this.filter.body!(this, cmd.chunk)));
      case 'eom':
        return this.onEom(cmd.chunk);
      case 'unknown':
        return this.runHook('unknown', ProtocolFlag.NR_UNKN, this.filter.unknown && (() => this.filter.unknown!(this, cmd.line)));
      case 'abort':
        // Postfix sends ABORT after every message and twice at QUIT: outside a message it only clears macros.
        this.macroStore.endMessage();
        if (this.phase === 'message') return this.abortMessage();
        return;
      case 'quit':
        this.ended = true;
        this.transport.end();
        return;
      case 'quit-nc':
        return this.onQuitNewConnection();
    }
  }

  private onOptneg(cmd: { version: number; actions: number; protocol: number }): void {
    if (this.phase !== 'negotiate') throw new MilterProtocolError('unexpected-command', 'a second option negotiation');
    const { negotiated, reply } = negotiationFor(this.filter as MilterFilter<unknown>, cmd);
    this.negotiated = negotiated;
    this.phase = 'connect';
    this.options.observer?.negotiated?.(this.id, this.negotiated);
    this.send('optneg', reply, 'optneg');
  }

  private onConnect(cmd: Extract<MilterCommand, { type: 'connect' }>): Promise<void> | void {
    if (this.phase !== 'connect') throw new MilterProtocolError('unexpected-command', 'CONNECT on a connection that is already connected');
    this.macroStore.enter(CommandCode.CONNECT);
    const info: ConnectInfo =
      cmd.family === 'U'
        ? { hostname: cmd.hostname, family: cmd.family, address: '', port: 0 }
        : { hostname: cmd.hostname, family: cmd.family, address: cmd.family === '6' ? canonicalIpv6(cmd.address) : cmd.address, port: cmd.port };
    this.connection = info;
    this.mta = this.detectMta();
    this.phase = 'session';
    return this.runHook('connect', ProtocolFlag.NR_CONN, this.filter.connect && (() => this.filter.connect!(this, info)));
  }

  private detectMta(): MtaKind {
    const v = this.macroStore.get('v') ?? '';
    if (v.startsWith('Postfix')) return 'postfix';
    if (/^\d+\.\d+/.test(v) || this.macroStore.get('if_addr') !== undefined) return 'sendmail';
    return 'unknown';
  }

  private onHelo(name: string): Promise<void> | void {
    this.leaveConnectPhase();
    const run = (): Promise<void> | void => {
      this.macroStore.enter(CommandCode.HELO);
      this.helo = name;
      return this.runHook('helo', ProtocolFlag.NR_HELO, this.filter.helo && (() => this.filter.helo!(this, name)));
    };
    if (this.phase === 'message') {
      const aborted = this.abortMessage();
      if (aborted) return aborted.then(run);
    }
    return run();
  }

  private onMail(sender: string, esmtpArgs: readonly string[]): Promise<void> | void {
    this.leaveConnectPhase();
    this.beginMessage();
    this.step = MESSAGE_STEP.mail as number;
    this.macroStore.enter(CommandCode.MAIL);
    return this.runHook('mail', ProtocolFlag.NR_MAIL, this.filter.envfrom && (() => this.filter.envfrom!(this, sender, esmtpArgs)));
  }

  private onEom(chunk: Buffer): Promise<void> | void {
    this.enterMessageStep('eom');
    const endMessage = (): void => {
      this.phase = 'session';
      this.step = 0;
      this.heldVerdict = undefined;
      this.macroStore.endMessage();
    };
    // Data on EOM is a last body chunk (libmilter's reading); its verdict is given with the EOM reply.
    const bodyDone =
      chunk.length > 0 && this.filter.body ? this.callHook('body', () => this.filter.body!(this, chunk), (v) => this.hold('body', v), false) : undefined;
    const run = (): Promise<void> | void => {
      if (!this.filter.eom) {
        this.reply('eom', this.withHeld(Verdict.continue));
        endMessage();
        return;
      }
      const modifier = new MessageModifierImpl(this.negotiated, () => this.sendProgress('eom'));
      const finish = (verdict: Verdict | void): void => {
        const final = this.withHeld(verdict ?? Verdict.continue);
        const out = this.encodeVerdict('eom', final);
        // Modifications only count with an accepting verdict; never after a failure.
        const mods = final.type === 'continue' || final.type === 'accept' || final.type === 'discard' ? modifier.packets() : [];
        this.send('eom', mods.length ? Buffer.concat([...mods, out.bytes]) : out.bytes, out.type);
        endMessage();
      };
      return this.callHook('eom', () => this.filter.eom!(this, modifier), finish, true);
    };
    if (bodyDone) return bodyDone.then(run);
    return run();
  }

  private onQuitNewConnection(): Promise<void> | void {
    const wasInMessage = this.phase === 'message';
    const done = async (): Promise<void> => {
      if (wasInMessage) await this.filter.abort?.(this);
      await this.filter.close?.(this);
      this.macroStore.clear();
      this.connection = undefined;
      this.helo = undefined;
      this.messageCount = 0;
      this.phase = 'connect';
      this.step = 0;
      this.heldVerdict = undefined;
      this.sessionVerdict = undefined;
      this.state = this.newState();
    };
    return done();
  }

  /** Runs the abort hook for the current message and resets message state. */
  private abortMessage(): Promise<void> | void {
    this.phase = 'session';
    this.step = 0;
    this.heldVerdict = undefined;
    if (!this.filter.abort) return;
    try {
      const r = this.filter.abort(this);
      if (isThenable(r)) return Promise.resolve(r).catch((e: unknown) => this.options.observer?.hookError?.(this.id, 'abort', e));
    } catch (e) {
      this.options.observer?.hookError?.(this.id, 'abort', e);
    }
  }

  private leaveConnectPhase(): void {
    // With NOCONNECT negotiated the MTA never sends CONNECT: HELO or MAIL is the first command.
    if (this.phase === 'connect') this.phase = 'session';
  }

  private beginMessage(): void {
    this.phase = 'message';
    this.messageCount++;
    this.heldVerdict = undefined;
  }

  private enterMessageStep(type: CommandType): void {
    const step = MESSAGE_STEP[type] as number;
    if (this.phase !== 'message') {
      // Without a MAIL hook we asked the MTA not to send MAIL: the first message command opens the message.
      if ((this.negotiated.protocol & ProtocolFlag.NOMAIL) === 0 || this.phase === 'negotiate') {
        throw new MilterProtocolError('unexpected-command', `${type} outside a message (no MAIL before it)`);
      }
      this.leaveConnectPhase();
      this.beginMessage();
    } else if (step < this.step) {
      throw new MilterProtocolError('unexpected-command', `${type} after a later stage of the same message`);
    }
    this.step = step;
  }

  private newState(): S {
    return this.filter.createState ? this.filter.createState() : (undefined as S);
  }

  /**
   * Calls a stage's hook and replies. Synchronous hooks reply synchronously (no promise per packet); a
   * hook that returns a promise gets progress packets while it works (where the MTA accepts them).
   */
  private runHook(stage: CommandType, noReplyFlag: number, hook: (() => HookResult) | undefined): Promise<void> | void {
    const noReply = (this.negotiated.protocol & noReplyFlag) !== 0;
    if (!hook) {
      if (!noReply) this.reply(stage, Verdict.continue);
      return;
    }
    const decide = (verdict: Verdict | void): void => {
      const v = verdict ?? Verdict.continue;
      if (noReply) this.hold(stage, v);
      else this.reply(stage, this.phase === 'message' ? this.withHeld(v) : v);
    };
    return this.callHook(stage, hook, decide, !noReply);
  }

  private hold(stage: CommandType, v: Verdict | void): void {
    if (!v || v.type === 'continue' || v.type === 'skip') return;
    if (stage === 'connect' || stage === 'helo') this.sessionVerdict ??= v;
    else this.heldVerdict ??= v;
  }

  private callHook(stage: CommandType, hook: () => HookResult, decide: (v: Verdict | void) => void, answers: boolean): Promise<void> | void {
    let result: HookResult;
    try {
      result = hook();
    } catch (e) {
      return this.hookFailed(stage, e, answers);
    }
    if (!isThenable(result)) return decide(result);
    if (answers && this.progressAllowed(stage)) {
      this.progressTimer = setInterval(() => this.sendProgress(stage), this.options.progressIntervalMs);
    }
    return Promise.resolve(result).then(
      (v) => {
        this.stopProgress();
        decide(v);
      },
      (e: unknown) => {
        this.stopProgress();
        this.hookFailed(stage, e, answers);
      },
    );
  }

  private stopProgress(): void {
    if (this.progressTimer !== undefined) clearInterval(this.progressTimer);
    this.progressTimer = undefined;
  }

  /** A hook that throws fails closed: the stage is tempfailed, never accepted. */
  private hookFailed(stage: CommandType, error: unknown, answers: boolean): void {
    this.options.observer?.hookError?.(this.id, stage, error);
    if (answers) this.reply(stage, Verdict.tempfail());
    else this.hold(stage, Verdict.tempfail());
    if (stage === 'eom') {
      this.phase = 'session';
      this.step = 0;
      this.heldVerdict = undefined;
      this.macroStore.endMessage();
    }
  }

  /**
   * The verdict for an answered command: the hook's own, unless it said "continue"; then one held from a waived
   * step of this message, then one held for the session. A held message verdict stands for every answered
   * command until the message ends: a sender refused at a waived MAIL is refused at each RCPT, since an MTA
   * refuses only the one recipient and would take the next.
   */
  private withHeld(v: Verdict): Verdict {
    if (v.type !== 'continue') return v;
    return this.heldVerdict ?? this.sessionVerdict ?? v;
  }

  // Sendmail accepts progress only while waiting for the EOM reply; Postfix at any stage.
  private progressAllowed(stage: CommandType): boolean {
    return stage === 'eom' || this.mta === 'postfix';
  }

  private sendProgress(stage: CommandType): void {
    if (this.ended) return;
    this.send(stage, encodeResponse({ type: 'progress' }), 'progress');
  }

  private reply(stage: CommandType, verdict: Verdict): void {
    const out = this.encodeVerdict(stage, verdict);
    this.send(stage, out.bytes, out.type);
  }

  private encodeVerdict(stage: CommandType, verdict: Verdict): { bytes: Buffer; type: ResponseType } {
    const fixed = (type: 'continue' | 'accept' | 'reject' | 'tempfail' | 'discard' | 'skip') => ({ bytes: encodeResponse({ type }), type });
    switch (verdict.type) {
      case 'continue':
      case 'accept':
        return fixed(verdict.type);
      case 'skip':
        // SKIP is honoured for content events only when negotiated; otherwise it means "go on".
        return (this.negotiated.protocol & ProtocolFlag.SKIP) !== 0 && (stage === 'body' || stage === 'header') ? fixed('skip') : fixed('continue');
      case 'discard':
        if (stage === 'connect' || stage === 'helo' || stage === 'unknown') {
          this.invalid(`discard is not allowed at ${stage}; tempfailing instead`);
          return fixed('tempfail');
        }
        return fixed('discard');
      case 'reject':
      case 'tempfail': {
        const reply = verdict.reply;
        if (!reply) return fixed(verdict.type);
        const wantClass = verdict.type === 'reject' ? 5 : 4;
        try {
          if (Math.floor(reply.code / 100) !== wantClass) {
            throw new MilterProtocolError('invalid-reply', `${verdict.type} with reply code ${reply.code}`);
          }
          return { bytes: encodeResponse({ type: 'replycode', text: encodeReplyCode(reply) }), type: 'replycode' };
        } catch (e) {
          // A reply Postfix would call malformed costs the whole session; fall back to the plain verdict.
          this.invalid(e instanceof Error ? e.message : String(e));
          return fixed(verdict.type);
        }
      }
    }
  }

  private invalid(message: string): void {
    this.options.observer?.protocolError?.(this.id, new MilterProtocolError('invalid-reply', message));
  }

  private send(stage: CommandType, bytes: Buffer, type: ResponseType): void {
    if (this.ended) return;
    if (type !== 'progress') this.owed = undefined;
    this.transport.write(bytes);
    this.options.observer?.reply?.(this.id, stage, type);
  }
}
