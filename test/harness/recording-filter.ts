// The recording test filter of the MTA protocol tests (a real Postfix, a real Sendmail): it records everything
// the MTA sends, per milter connection, so a test can compare what the filter saw with what the SMTP client sent
// and what was delivered; and it answers as the tests ask, by recipient local part and by Subject. One copy so
// both MTAs are tested against the same behaviour; what only one test needs comes in through the options.
//
// Shared answers: the recipient `blocked` is refused (550 5.7.1); at end of message `Subject: tempfail me`
// gets 451 4.7.1, `Subject: reject me` 554 5.7.1, and every other message is accepted with an
// `X-Test-Session: SESSION msg=N` header that tells which milter connection and which message of it handled it.
import assert from 'node:assert/strict';
import {
  Verdict,
  type CommandType,
  type ConnectInfo,
  type MessageModifier,
  type MilterFilter,
  type MtaKind,
  type ResponseType,
  type ServerObserver,
  type SessionContext,
} from '@postfix-milter-ts/protocol';
import { waitFor } from './wait-for.js';

export type Macros = Readonly<Record<string, string>>;

/** What the filter saw of one message (MAIL to EOM or abort). */
export interface MessageRecord {
  sender: string;
  senderArgs: readonly string[];
  recipients: string[];
  /** DATA seen (only recorded with the `dataAndEoh` option). */
  data: boolean;
  headers: Array<readonly [string, string]>;
  /** End of headers seen (only recorded with the `dataAndEoh` option). */
  eoh: boolean;
  body: Buffer;
  /** How the filter ended the message; `aborted` when the MTA aborted it before EOM. */
  outcome: 'accepted' | 'modified' | 'tempfailed' | 'rejected' | 'aborted' | undefined;
  /** The `i` macro at EOM (the MTA's queue ID). */
  queueId: string | undefined;
  /** Every macro in scope at each stage of this message. */
  macros: { envfrom?: Macros; envrcpt: Macros[]; eom?: Macros };
}

/** What the filter and the server observer saw of one milter connection. */
export interface SessionRecord {
  readonly id: string;
  /** The MTA's end of the milter connection. */
  remote: string;
  connect: ConnectInfo | undefined;
  /** Every macro in scope at CONNECT. */
  connectMacros: Macros | undefined;
  mta: MtaKind | undefined;
  helo: string | undefined;
  messages: MessageRecord[];
  /** Every command but macro packets, in arrival order (from the server observer). */
  commands: CommandType[];
  replies: Array<readonly [CommandType, ResponseType]>;
  closed: boolean;
}

export interface RecordingFilterOptions {
  /**
   * Also hook DATA and end of headers. The filter asks the MTA only for stages it has hooks for, so this
   * changes the command sequence a test sees: without it DATA and EOH are negotiated away.
   */
  readonly dataAndEoh?: boolean;
  /** The test's own answer to a recipient, by local part, after the shared `blocked` rule; undefined: continue. */
  readonly recipientVerdict?: (local: string) => Verdict | Promise<Verdict> | undefined;
  /**
   * Makes end of message asynchronous: the verdict waits for this promise (the session sends progress packets
   * meanwhile, where the MTA takes them). Without it the EOM hook answers synchronously.
   */
  readonly eomWait?: (m: MessageRecord) => Promise<void>;
  /** End-of-message changes to an accepted message, after X-Test-Session; true when it changed the message (outcome `modified`). */
  readonly modify?: (m: MessageRecord, mod: MessageModifier) => boolean;
}

/** The Subject header the filter saw, if any. */
export function subjectOf(m: MessageRecord): string | undefined {
  return m.headers.find(([n]) => n.toLowerCase() === 'subject')?.[1];
}

function snapshot(macros: Map<string, string>): Macros {
  return Object.fromEntries(macros);
}

export class RecordingFilter {
  /** Every milter connection so far, by session ID, in the order they opened. */
  readonly sessions = new Map<string, SessionRecord>();
  /** What the server reported as protocol errors and hook errors (a clean run has none). */
  readonly protocolErrors: string[] = [];
  readonly hookErrors: string[] = [];
  /** The filter to give MilterServer. */
  readonly filter: MilterFilter;
  /** The server observer to give MilterServer: it records commands, replies and errors. */
  readonly observer: ServerObserver;

  constructor(options: RecordingFilterOptions = {}) {
    const { recipientVerdict, eomWait, modify } = options;
    const endMessage = (s: SessionContext<undefined>, mod: MessageModifier, m: MessageRecord): Verdict => {
      const subject = subjectOf(m);
      if (subject === 'tempfail me') {
        m.outcome = 'tempfailed';
        return Verdict.tempfail({ code: 451, xcode: '4.7.1', text: 'Test milter: try again later' });
      }
      if (subject === 'reject me') {
        m.outcome = 'rejected';
        return Verdict.reject({ code: 554, xcode: '5.7.1', text: 'Test milter: message refused' });
      }
      // Tells the test which milter connection and which message of it handled a delivered mail.
      mod.addHeader('X-Test-Session', `${s.id} msg=${s.messageCount}`);
      m.outcome = modify?.(m, mod) === true ? 'modified' : 'accepted';
      return Verdict.continue;
    };
    this.filter = {
      connect: (s, info) => {
        const r = this.record(s.id);
        r.connect = info;
        r.connectMacros = snapshot(s.macros());
        r.mta = s.mta;
      },
      helo: (s, name) => {
        this.record(s.id).helo = name;
      },
      envfrom: (s, sender, args) => {
        this.record(s.id).messages.push({
          sender,
          senderArgs: args,
          recipients: [],
          data: false,
          headers: [],
          eoh: false,
          body: Buffer.alloc(0),
          outcome: undefined,
          queueId: undefined,
          macros: { envfrom: snapshot(s.macros()), envrcpt: [] },
        });
      },
      envrcpt: (s, recipient) => {
        const m = this.currentMessage(s.id);
        m.recipients.push(recipient);
        m.macros.envrcpt.push(snapshot(s.macros()));
        const local = recipient.replace(/^<|>$/g, '').split('@')[0] ?? '';
        if (local === 'blocked') return Verdict.reject({ code: 550, xcode: '5.7.1', text: 'Recipient blocked by the test milter' });
        return recipientVerdict?.(local) ?? Verdict.continue;
      },
      ...(options.dataAndEoh === true
        ? {
            data: (s: SessionContext<undefined>) => {
              this.currentMessage(s.id).data = true;
            },
            eoh: (s: SessionContext<undefined>) => {
              this.currentMessage(s.id).eoh = true;
            },
          }
        : {}),
      header: (s, name, value) => {
        this.currentMessage(s.id).headers.push([name, value]);
      },
      body: (s, chunk) => {
        const m = this.currentMessage(s.id);
        m.body = Buffer.concat([m.body, chunk]);
      },
      eom: (s, mod) => {
        const m = this.currentMessage(s.id);
        m.queueId = s.macro('i');
        m.macros.eom = snapshot(s.macros());
        const wait = eomWait?.(m);
        return wait === undefined ? endMessage(s, mod, m) : wait.then(() => endMessage(s, mod, m));
      },
      abort: (s) => {
        const m = this.record(s.id).messages.at(-1);
        if (m && m.outcome === undefined) m.outcome = 'aborted';
      },
      close: (s) => {
        this.record(s.id).closed = true;
      },
    };
    this.observer = {
      opened: (id, _active, remote) => {
        this.record(id).remote = remote;
      },
      command: (id, type) => {
        if (type !== 'macro') this.record(id).commands.push(type);
      },
      reply: (id, stage, type) => {
        this.record(id).replies.push([stage, type]);
      },
      protocolError: (id, e) => {
        this.protocolErrors.push(`${id}: ${e.message}`);
      },
      hookError: (id, stage, e) => {
        this.hookErrors.push(`${id} ${stage}: ${e instanceof Error ? e.message : String(e)}`);
      },
    };
  }

  /** The record of a milter connection, made on first use. */
  record(id: string): SessionRecord {
    let r = this.sessions.get(id);
    if (!r) {
      r = { id, remote: '', connect: undefined, connectMacros: undefined, mta: undefined, helo: undefined, messages: [], commands: [], replies: [], closed: false };
      this.sessions.set(id, r);
    }
    return r;
  }

  /** The message a connection is in; a message event before MAIL fails the test. */
  currentMessage(id: string): MessageRecord {
    const m = this.record(id).messages.at(-1);
    assert.ok(m, `session ${id}: a message event before MAIL`);
    return m;
  }

  /** The milter session the MTA opened for an SMTP client, found by the client's source port (and address, if given). */
  sessionForClient(port: number, address?: string): SessionRecord | undefined {
    return [...this.sessions.values()].reverse().find((s) => s.connect?.port === port && (address === undefined || s.connect.address === address));
  }

  /** Waits until the MTA closed the milter session of an SMTP client (see sessionForClient); returns it. */
  closedSessionForClient(port: number, address?: string): Promise<SessionRecord> {
    return waitFor(`the milter session of client port ${port} to close`, () => {
      const s = this.sessionForClient(port, address);
      return s?.closed ? s : undefined;
    });
  }
}
