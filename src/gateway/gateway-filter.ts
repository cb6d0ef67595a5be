// The gateway as a milter filter: each stage asks its policies, and their decisions become verdicts.
// Envelope stages: rate limits and relay rules. Content: the message streams into the attachment inspector and
// clamd while it arrives; end of message combines both into one verdict. Every message gets one log line.
import { Verdict, type ConnectInfo, type MessageModifier, type MilterFilter, type SessionContext } from '@postfix-milter-ts/protocol';
import { AttachmentInspector } from '../content/attachment-inspector.js';
import type { Finding } from '../content/finding.js';
import type { GatewayConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { GatewayMetrics, MessageVerdict } from '../metrics/gateway-metrics.js';
import type { TopOffenders } from '../metrics/top-offenders.js';
import { parseEnvelopeAddress } from '../policy/address.js';
import type { ClientIdentity, EnvelopeDecision, EnvelopeRefusal } from '../policy/decision.js';
import { isStoreUnavailable, type RateLimiter } from '../policy/rate-limiter.js';
import type { RelayPolicy } from '../policy/relay-policy.js';
import type { ClamdScanner } from '../scanner/clamd-scanner.js';
import type { ScanResult } from '../scanner/scan-result.js';
import type { ActionsConfig } from '../verdict/actions-config.js';
import { decideContentVerdict, holdInsteadOfBounce, type ContentChecks, type ContentVerdict } from '../verdict/content-verdict.js';
import { boundedField, boundedReasons } from './log-fields.js';
import { MessageStream } from './message-stream.js';

/** Everything the filter uses, built once per config (gateway-services.ts). */
export interface GatewayServices {
  readonly config: GatewayConfig;
  readonly relay: RelayPolicy;
  readonly limiter: RateLimiter;
  readonly scanner: ClamdScanner | undefined;
  readonly metrics: GatewayMetrics;
  readonly offenders: TopOffenders;
  readonly log: Logger;
}

interface MessageState {
  readonly sender: string;
  /** MAIL FROM was the null sender (`<>`, and `< >`: both MTAs leave {mail_addr} empty for it). */
  readonly nullSender: boolean;
  readonly startedAt: number;
  readonly recipients: string[];
  readonly refusals: string[];
  /**
   * A refusal of the whole message, at connect or MAIL. Those replies are waived, so it is given at every RCPT
   * (the recipient checks are not run), or at end of message for a local submission.
   */
  refusal: Refusal | undefined;
  stream: MessageStream | undefined;
  scanStartedAt: number;
  /** How often each header we add at end of message (lower-case name) was already in the message. */
  ownHeadersSent?: Map<string, number>;
}

interface Refusal {
  readonly verdict: Verdict;
  readonly class: EnvelopeRefusal['class'];
  readonly rule: string;
}

interface SessionState {
  client: ClientIdentity;
  log: Logger;
  /** Postfix's non_smtpd_milters session (sendmail(1), pickup): RCPT must never be refused there. */
  localSubmission: boolean;
  /** The connection rate limit refused this client: every message of the session is refused. */
  connectRefusal: Refusal | undefined;
  /** The connection could not be counted at CONNECT (counter store unavailable): it is counted at MAIL. */
  connectionUncounted: boolean;
  message: MessageState | undefined;
}

type Session = SessionContext<SessionState>;

const MACROS = {
  connect: ['j', '{daemon_name}', '{daemon_addr}', '{if_addr}', '{client_addr}', '{client_name}', '_'],
  envfrom: ['i', '{auth_type}', '{auth_authen}', '{mail_addr}'],
  envrcpt: ['i', '{rcpt_mailer}', '{rcpt_host}', '{rcpt_addr}'],
  data: ['i'],
  eoh: ['i'],
  eom: ['i'],
} as const;

function toVerdict(d: Extract<EnvelopeDecision, { type: 'refuse' }>): Verdict {
  const reply = { code: d.code, xcode: d.xcode, text: d.text };
  return d.class === 'reject' ? Verdict.reject(reply) : Verdict.tempfail(reply);
}

const METRIC_VERDICT: Record<ContentVerdict['action'], MessageVerdict> = {
  accept: 'accept',
  reject: 'reject',
  tempfail: 'tempfail',
  discard: 'discard',
  quarantine: 'quarantine',
};

export function createGatewayFilter(services: GatewayServices): MilterFilter<SessionState> {
  const { config, relay, limiter, scanner, metrics, offenders, log } = services;

  const refused = (session: Session, d: Extract<EnvelopeDecision, { type: 'refuse' }>, stage: string): Verdict => {
    const s = session.state;
    if (d.rule.startsWith('rate-')) metrics.rateLimited(d.rule.slice('rate-'.length));
    else metrics.relayRejected(d.rule);
    // Our counter store failing is no offence of the client's.
    if (!isStoreUnavailable(d)) offenders.record(s.client.address || 'unknown', d.rule);
    s.message?.refusals.push(`${stage} ${d.rule}`);
    s.log.info({ stage, rule: d.rule, reply: `${d.code} ${d.xcode}` }, `refused at ${stage}: ${d.text}`);
    return toVerdict(d);
  };

  const endMessage = (s: SessionState): void => {
    s.message = undefined;
  };

  // A refusal from a hook whose reply is waived (CONNECT, MAIL): returned, the session holds it for each RCPT.
  // A local submission must never have RCPT refused (Postfix defers the mail as misconfigured): there it is kept
  // for end of message instead.
  const refuseMessage = (session: Session, d: Extract<EnvelopeDecision, { type: 'refuse' }>, stage: 'connect' | 'mail'): Verdict | undefined => {
    const refusal = { verdict: refused(session, d, stage), class: d.class, rule: d.rule };
    if (stage === 'connect') session.state.connectRefusal = refusal;
    if (session.state.message) session.state.message.refusal = refusal;
    return session.state.localSubmission ? undefined : refusal.verdict;
  };

  /** One log line for a transaction that ended without an accepted message, e.g. every recipient refused. */
  const logRefusedEnvelope = (session: Session, m: MessageState): void => {
    const s = session.state;
    // client and clientName come with the session's logger.
    s.log.info(
      {
        queueId: session.macro('i'),
        helo: boundedField(session.helo),
        sender: boundedField(m.sender),
        recipients: m.recipients.length,
        refusedRecipients: m.refusals.length,
        verdict: 'refused-envelope',
        reasons: boundedReasons(m.refusals),
        totalMs: Math.round(performance.now() - m.startedAt),
      },
      'message',
    );
  };

  return {
    macros: MACROS,
    headerLeadingSpace: true,
    // Waiving these replies lets the MTA send CONNECT, HELO, MAIL, DATA, every header and every body chunk
    // without waiting (a round trip each). A failure there is held and given at the next answered command, so it
    // still tempfails the message. A refusal at CONNECT (the connection rate limit) or MAIL (sender rules, the
    // message rate limit) is given at every RCPT of the message, as Postfix does with its own sender checks by
    // default (smtpd_delay_reject); not waiting at MAIL took one of four round trips per message off Postfix
    // and us. Body chunks are paced by TCP instead: while the
    // body hook waits for clamd and the parser, packets queue in the session, and past 256 KiB the server
    // stops reading the socket, so the MTA's writes block (memory for 50 concurrent 10 MB messages stays
    // bounded; it reached 920 MiB when the bound counted packets only).
    noReply: ['connect', 'helo', 'envfrom', 'data', 'header', 'eoh', 'body'],

    createState: () => ({ client: { address: '', hostname: '', authUser: undefined }, log, localSubmission: false, connectRefusal: undefined, connectionUncounted: false, message: undefined }),

    async connect(session, info: ConnectInfo) {
      const s = session.state;
      // Only an IPv4 or IPv6 connection has a client address (a UNIX-domain one names a socket path).
      const address = info.family === '4' || info.family === '6' ? info.address : '';
      s.client = { address, hostname: info.hostname, authUser: undefined };
      s.localSubmission = info.port === 0 && info.hostname === 'localhost' && (info.address === '127.0.0.1' || info.address === '::1');
      s.log = log.child({ session: session.id, client: info.address, clientName: info.hostname });
      const d = await limiter.onConnect(s.client);
      if (isStoreUnavailable(d)) {
        // Not held for the session: every message would be refused long after the store is back. MAIL counts it.
        s.connectionUncounted = true;
        s.log.debug({ stage: 'connect' }, 'connection not counted (rate-limit store unavailable); counted at MAIL');
        return undefined;
      }
      return d.type === 'refuse' ? refuseMessage(session, d, 'connect') : undefined;
    },

    // HELO is not checked, but the hook makes the MTA send it (it is in every log line).
    helo: () => undefined,

    async envfrom(session, sender) {
      const s = session.state;
      const authUser = session.macro('{auth_authen}');
      s.client = { ...s.client, authUser: authUser === undefined || authUser === '' ? undefined : authUser };
      const refusal = s.connectRefusal;
      s.message = { sender, nullSender: parseEnvelopeAddress(sender).kind === 'null', startedAt: performance.now(), recipients: [], refusals: [], refusal, stream: undefined, scanStartedAt: 0 };
      if (refusal) {
        // Refused at connect: the session gives that refusal; the message is not counted against the limits.
        s.message.refusals.push(`connect ${refusal.rule}`);
        return undefined;
      }
      if (s.connectionUncounted) {
        // Counted as at CONNECT (over the limit refuses the session); the store still unavailable refuses this
        // message only, and the next MAIL tries again.
        const byConnection = await limiter.onConnect(s.client);
        const unavailable = isStoreUnavailable(byConnection);
        if (!unavailable) s.connectionUncounted = false;
        if (byConnection.type === 'refuse') return refuseMessage(session, byConnection, unavailable ? 'mail' : 'connect');
      }
      const serverAddress = session.macro('{daemon_addr}') ?? session.macro('{if_addr}');
      const bySender = relay.checkSender(s.client, sender, { serverAddress });
      if (bySender.type === 'refuse') return refuseMessage(session, bySender, 'mail');
      const byRate = await limiter.onMessage(s.client);
      if (byRate.type === 'refuse') return refuseMessage(session, byRate, 'mail');
      return undefined;
    },

    async envrcpt(session, recipient) {
      const s = session.state;
      const m = s.message;
      if (!m) return undefined;
      if (m.refusal && !s.localSubmission) {
        // Refused with the message; nothing to check, and nothing counted against the rate limits.
        metrics.recipient(m.refusal.class === 'reject' ? 'rejected' : 'tempfailed');
        m.refusals.push(`rcpt ${recipient} with the message`);
        return m.refusal.verdict;
      }
      if (s.localSubmission) {
        // Postfix calls a refused RCPT in a non-SMTP submission a configuration error and defers the mail.
        m.recipients.push(recipient);
        metrics.recipient('accepted');
        return undefined;
      }
      const context = {
        acceptedRecipients: m.recipients.length,
        nullSender: m.nullSender,
        rcptMailer: session.macro('{rcpt_mailer}'),
        rcptHost: session.macro('{rcpt_host}'),
        rcptAddr: session.macro('{rcpt_addr}'),
        serverAddress: session.macro('{daemon_addr}') ?? session.macro('{if_addr}'),
      };
      const byRelay = relay.checkRecipient(s.client, recipient, context);
      const decision = byRelay.type === 'refuse' ? byRelay : await limiter.onRecipient(s.client, m.recipients.length);
      if (decision.type === 'refuse') {
        metrics.recipient(decision.class === 'reject' ? 'rejected' : 'tempfailed');
        return refused(session, decision, `rcpt ${recipient}`);
      }
      m.recipients.push(recipient);
      metrics.recipient('accepted');
      return undefined;
    },

    header(session, name, value) {
      const m = session.state.message;
      if (!m) return undefined;
      const lower = name.toLowerCase();
      if (ownHeaderNames(config.actions).has(lower)) {
        m.ownHeadersSent ??= new Map();
        m.ownHeadersSent.set(lower, (m.ownHeadersSent.get(lower) ?? 0) + 1);
      }
      m.stream ??= openStream(m);
      return m.stream.header(name, value);
    },

    eoh(session) {
      const m = session.state.message;
      if (!m) return undefined;
      m.stream ??= openStream(m);
      return m.stream.endOfHeaders();
    },

    body(session, chunk) {
      const m = session.state.message;
      if (!m) return undefined;
      m.stream ??= openStream(m);
      return m.stream.body(chunk);
    },

    async eom(session, modify) {
      const s = session.state;
      const m = s.message;
      if (!m) return Verdict.tempfail();
      if (m.refusal) {
        // A local submission refused at connect or MAIL (an SMTP client never gets this far). A tempfail keeps it
        // in Postfix's queue; a rejection would be bounced (see holdInsteadOfBounce), so it is held instead.
        m.stream?.scan?.abort();
        m.stream?.inspector?.abort();
        logRefusedEnvelope(session, m);
        endMessage(s);
        const seconds = (performance.now() - m.startedAt) / 1000;
        if (m.refusal.class !== 'reject') {
          metrics.messageFinished({ verdict: 'tempfail', seconds });
          return m.refusal.verdict;
        }
        metrics.messageFinished({ verdict: 'quarantine', seconds });
        modify.quarantine(`local submission held, not bounced: ${m.refusal.rule}`);
        return Verdict.accept;
      }
      m.stream ??= openStream(m);
      const stream = m.stream;
      await stream.end();
      const { inspector, scan } = stream;
      const eomStartedAt = performance.now();
      const [inspection, scanResult] = await Promise.all([
        inspector ? inspector.finish() : Promise.resolve(undefined),
        scan && !stream.oversize ? scan.finish() : Promise.resolve(undefined),
      ]);
      const verdictAt = performance.now();
      const scanSeconds = (verdictAt - m.scanStartedAt) / 1000;
      const checks = contentChecks(inspection, scanResult, stream.oversize, scanner !== undefined);
      const decided = decideContentVerdict(checks, config.actions);
      // Stopping, the server answered tempfail while we worked: log and count what the MTA got.
      const verdict = session.tempfailedAt !== undefined ? answeredByStop(decided) : s.localSubmission ? holdInsteadOfBounce(decided) : decided;

      if (scanResult) {
        metrics.clamdScan(scanResult.type === 'failed' ? scanResult.reason : scanResult.type, scanSeconds, stream.bytes);
        if (scanResult.type === 'failed' && scanResult.reason === 'overloaded') metrics.overload('scan-queue-full');
      }
      if (checks.virus !== undefined) metrics.virusFound(checks.virus);
      for (const f of blockedFiles(inspection?.findings ?? [])) metrics.attachmentBlocked(f.kind, f.extension);
      const totalSeconds = (performance.now() - m.startedAt) / 1000;
      metrics.messageFinished({ verdict: METRIC_VERDICT[verdict.action], sizeBytes: stream.bytes, seconds: totalSeconds });
      // A client is an offender for what it sent, not for our checks failing (clamd down tempfails everyone) or
      // for our stopping.
      const refusedForContent = verdict.action !== 'accept' && !(verdict.action === 'tempfail' && (checks.failures.length > 0 || session.tempfailedAt !== undefined));
      if (refusedForContent || verdict.label === 'tagged') offenders.record(s.client.address || 'unknown', verdict.label);

      s.log.info(
        {
          queueId: session.macro('i'),
          helo: boundedField(session.helo),
          authUser: boundedField(s.client.authUser),
          sender: boundedField(m.sender),
          recipients: m.recipients.length,
          refusedRecipients: m.refusals.length,
          size: stream.bytes,
          verdict: verdict.label,
          reasons: boundedReasons(verdict.reasons),
          scanMs: Math.round(scanSeconds * 1000),
          // What the MTA waited at end of data for the attachment and virus verdicts (the rest streamed earlier).
          eomMs: Math.round(verdictAt - eomStartedAt),
          totalMs: Math.round(totalSeconds * 1000),
        },
        'message',
      );
      endMessage(s);
      return apply(verdict, modify, config.actions, m.ownHeadersSent);
    },

    abort(session) {
      const s = session.state;
      const m = s.message;
      if (!m) return;
      const stream = m.stream;
      stream?.scan?.abort();
      stream?.inspector?.abort();
      // A transaction that ended without data, e.g. every recipient refused (a relay attempt): still one line.
      if (m.refusals.length > 0) logRefusedEnvelope(session, m);
      endMessage(s);
    },
  };

  function openStream(m: MessageState): MessageStream {
    m.scanStartedAt = performance.now();
    return new MessageStream(
      scanner?.begin(),
      config.attachments.enabled ? new AttachmentInspector(config.attachments) : undefined,
      scanner?.config.maxScanBytes ?? Number.MAX_SAFE_INTEGER,
    );
  }
}

function contentChecks(
  inspection: Awaited<ReturnType<AttachmentInspector['finish']>> | undefined,
  scan: ScanResult | undefined,
  oversize: boolean,
  scannerConfigured: boolean,
): ContentChecks {
  const failures: ContentChecks['failures'][number][] = [];
  if (inspection?.error !== undefined) failures.push({ check: 'attachments', reason: 'error', detail: inspection.error });
  // clamd's own size limit (StreamMaxLength) below ours: the message was too large to scan, as if over ours, so
  // actions.oversize decides (a tempfail would have the sender retry a message that can never be scanned).
  if (scan?.type === 'failed' && scan.reason !== 'size-limit') failures.push({ check: 'virus', reason: scan.reason, detail: scan.detail });
  if (scannerConfigured && scan === undefined && !oversize) failures.push({ check: 'virus', reason: 'error', detail: 'no scan was started' });
  const sizeLimited = oversize || (scan?.type === 'failed' && scan.reason === 'size-limit');
  return {
    virus: scan?.type === 'infected' ? scan.signature : undefined,
    attachments: inspection?.findings ?? [],
    failures,
    oversize: sizeLimited,
  };
}

/**
 * One finding per blocked file for the metrics: an .exe that is also a PE gives two findings but is one
 * blocked attachment, counted under the finding that names a banned extension when there is one.
 */
function blockedFiles(findings: readonly Finding[]): Finding[] {
  const byPath = new Map<string, Finding>();
  for (const f of findings) {
    const seen = byPath.get(f.path);
    if (!seen || (seen.extension === undefined && f.extension !== undefined)) byPath.set(f.path, f);
  }
  return [...byPath.values()];
}

/** The verdict the MTA got when the server, stopping, answered for us: tempfail, with what we had found. */
function answeredByStop(decided: ContentVerdict): ContentVerdict {
  return {
    action: 'tempfail',
    label: 'tempfailed',
    reply: { code: 451, xcode: '4.3.2', text: 'Gateway stopping, try again later' },
    addHeaders: [],
    reasons: [...decided.reasons, `stopping: answered tempfail before the ${decided.label} verdict`],
  };
}

/** The headers end of message may add: a sender's own copies of them are removed, so none can pose as ours. */
const ownHeaderNamesByActions = new WeakMap<ActionsConfig, ReadonlySet<string>>();
function ownHeaderNames(actions: ActionsConfig): ReadonlySet<string> {
  let names = ownHeaderNamesByActions.get(actions);
  if (names === undefined) {
    names = new Set([actions.scannedHeader.name, `${actions.tagHeaderPrefix}-Virus`, `${actions.tagHeaderPrefix}-Attachment`].map((n) => n.toLowerCase()));
    ownHeaderNamesByActions.set(actions, names);
  }
  return names;
}

/**
 * Deletes every copy of our headers the sender wrote (last first, so indexes stay right however the MTA counts).
 * With the scanned header switched off, the header of that name is not ours (a scanner before us may add it) unless
 * this verdict adds it (an oversize message accepted unscanned says so in it).
 */
function removeForgedHeaders(modify: MessageModifier, verdict: ContentVerdict, actions: ActionsConfig, sent: ReadonlyMap<string, number> | undefined): void {
  const scanned = actions.scannedHeader.name.toLowerCase();
  const scannedIsOurs = actions.scannedHeader.enabled || verdict.addHeaders.some(([name]) => name.toLowerCase() === scanned);
  for (const [name, count] of sent ?? []) {
    if (name === scanned && !scannedIsOurs) continue;
    for (let index = count; index >= 1; index--) modify.deleteHeader(name, index);
  }
}

function apply(verdict: ContentVerdict, modify: MessageModifier, actions: ActionsConfig, ownHeadersSent?: ReadonlyMap<string, number>): Verdict {
  switch (verdict.action) {
    case 'reject':
      return Verdict.reject(verdict.reply);
    case 'tempfail':
      return Verdict.tempfail(verdict.reply);
    case 'discard':
      return Verdict.discard;
    case 'quarantine':
      modify.quarantine(verdict.quarantineReason ?? 'held by postfix-milter-ts');
      removeForgedHeaders(modify, verdict, actions, ownHeadersSent);
      for (const [name, value] of verdict.addHeaders) modify.addHeader(name, value);
      return Verdict.accept;
    case 'accept':
      removeForgedHeaders(modify, verdict, actions, ownHeadersSent);
      for (const [name, value] of verdict.addHeaders) modify.addHeader(name, value);
      return Verdict.accept;
  }
}
