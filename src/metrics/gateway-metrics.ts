// The gateway's Prometheus metrics: one registry per instance (tests build many), one prefix, and a typed
// method per event the milter reports. Every label takes its values from a closed set; anything unexpected
// is counted as `other`. Addresses, domains, IPs, file names, queue ids and signature names never become
// labels: they go to the log and to the top-offenders list instead.
//
// Prefix `pmt_` (postfix-milter-ts): short, and claimed by no exporter that runs beside a mail gateway
// (`postfix_` is postfix_exporter's, `clamav_` the ClamAV exporters', `rspamd_` rspamd's). Node's own
// `process_*` and `nodejs_*` metrics keep their standard names.
import type { ProtocolErrorKind } from '@postfix-milter-ts/protocol';
import { MILTER_VERSION } from '@postfix-milter-ts/protocol';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FINDING_KINDS } from '../content/finding.js';
import type { ScanFailureReason } from '../scanner/scan-result.js';
import { BoundedLabel, OTHER } from './bounded-labels.js';
import type { ClamdVersion } from './clamd-version.js';
import { parseVirusName, VIRUS_CATEGORIES, VIRUS_PLATFORMS, type VirusNameParts } from './virus-name.js';

export const METRIC_PREFIX = 'pmt_';

/** prom-client's default gauges whose names end in `_total` (removed; see the constructor). */
const LEGACY_TOTAL_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export const MESSAGE_VERDICTS = ['accept', 'reject', 'tempfail', 'discard', 'quarantine'] as const;
export type MessageVerdict = (typeof MESSAGE_VERDICTS)[number];

export const RECIPIENT_OUTCOMES = ['accepted', 'rejected', 'tempfailed'] as const;
export type RecipientOutcome = (typeof RECIPIENT_OUTCOMES)[number];

/** A scan's outcome: `clean`, `infected`, or the scanner's failure reason (ScanResult `type`, or `reason` when failed). */
export const CLAMD_SCAN_RESULTS = ['clean', 'infected', 'unreachable', 'timeout', 'error', 'overloaded', 'size-limit', 'protocol'] as const;
export type ClamdScanResult = (typeof CLAMD_SCAN_RESULTS)[number];
// Fails to compile when the scanner grows a failure reason this list lacks.
type MissingScanReason = Exclude<ScanFailureReason, ClamdScanResult>;
const scanReasonsComplete: [MissingScanReason] extends [never] ? true : MissingScanReason = true;
void scanReasonsComplete;

// clamd being down is not overload: it shows in pmt_clamd_up and pmt_clamd_scans_total{result="unreachable"}.
export const OVERLOAD_REASONS = ['max-sessions', 'scan-queue-full'] as const;
export type OverloadReason = (typeof OVERLOAD_REASONS)[number];

export const PROTOCOL_ERROR_KINDS = [
  'frame-length-zero', 'frame-too-large', 'malformed-command', 'unknown-command', 'unexpected-command',
  'negotiation', 'malformed-response', 'invalid-reply', 'handler-error', 'timeout', 'connection-closed',
] as const satisfies readonly ProtocolErrorKind[];
// Fails to compile when milter-protocol grows a kind this list lacks (it would otherwise count as `other`).
type MissingProtocolErrorKind = Exclude<ProtocolErrorKind, (typeof PROTOCOL_ERROR_KINDS)[number]>;
const protocolErrorKindsComplete: [MissingProtocolErrorKind] extends [never] ? true : MissingProtocolErrorKind = true;
void protocolErrorKindsComplete;

/** Rule names the relay policy (src/policy/relay-policy.ts) puts into its refusals. */
export const DEFAULT_RELAY_RULES = [
  'relay-denied', 'source-route', 'quoted-routing', 'percent-hack', 'bang-path', 'multiple-at', 'domain-literal',
  'numeric-domain', 'missing-domain', 'null-domain', 'mta-routes-out', 'bad-sender-syntax', 'bad-recipient-syntax',
  'unqualified-sender', 'spoofed-sender', 'null-sender-recipients',
] as const;
/**
 * What a rate limit counts (src/policy/rate-limiter.ts rules without their `rate-` prefix); `store-unavailable`
 * is the tempfail given when the counter store cannot be asked.
 */
export const DEFAULT_RATE_LIMIT_KINDS = ['connections', 'messages', 'recipients', 'recipients-per-message', 'store-unavailable'] as const;
/** Attachment finding kinds (src/content/finding.ts): a closed set, unlike the finer `rule` of a finding. */
export const DEFAULT_ATTACHMENT_RULES = FINDING_KINDS;

/** clamd endpoints are labelled by their position in the config (an address could hold an IP). */
const MAX_CLAMD_ENDPOINTS = 16;

// Scans can wait for a busy clamd until Postfix's milter_content_timeout (300 s by default), so the
// buckets reach five minutes.
const SCAN_SECONDS_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const PROCESSING_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
// ×4 steps from 1 kB to 64 MB: typical mail is 2–100 kB, attachments push it into megabytes.
const SIZE_BYTES_BUCKETS = [1e3, 4e3, 16e3, 64e3, 256e3, 1e6, 4e6, 16e6, 64e6];

export interface GatewayMetricsOptions {
  /** This milter's version, for `pmt_build_info`. */
  readonly version: string;
  /** The configured session limit (`pmt_sessions_max`). */
  readonly maxSessions: number;
  /** Configured banned extensions (with or without the dot, any case); the only values the extension label takes besides `other`. */
  readonly bannedExtensions?: readonly string[];
  readonly relayRules?: readonly string[];
  readonly rateLimitKinds?: readonly string[];
  readonly attachmentRules?: readonly string[];
  /** Node's process and runtime metrics (`process_*`, `nodejs_*`). Default true. */
  readonly defaultMetrics?: boolean;
  /** Clock in milliseconds, for timestamps (tests). Default Date.now. */
  readonly now?: () => number;
}

export interface MessageFinished {
  readonly verdict: MessageVerdict;
  /** Message size as the milter saw it (headers + body); omit when the message ended before DATA. */
  readonly sizeBytes?: number;
  /** From MAIL FROM to the verdict. */
  readonly seconds: number;
}

/** Why /healthz answers as it does. */
export type HealthReport = { readonly healthy: true } | { readonly healthy: false; readonly reason: string };

interface ClamdEndpointState {
  up: boolean;
  engine: string | undefined;
  /** The endpoint's address, for /healthz's text only (never a label). */
  address: string | undefined;
}

function normalizeExtension(ext: string): string {
  return ext.trim().replace(/^\.+/, '').toLowerCase();
}

export class GatewayMetrics {
  readonly registry: Registry;
  private readonly now: () => number;

  private readonly connections: Counter;
  private readonly sessionsActive: Gauge;
  private readonly sessionsMax: Gauge;
  private readonly milterListeningGauge: Gauge;
  private readonly messages: Counter<'verdict'>;
  private readonly messageSize: Histogram;
  private readonly messageDuration: Histogram;
  private readonly recipients: Counter<'outcome'>;
  private readonly relayRejections: Counter<'rule'>;
  private readonly rateLimitHits: Counter<'kind'>;
  private readonly virusByPlatform: Counter<'platform'>;
  private readonly virusByCategory: Counter<'category'>;
  private readonly virusUnofficial: Counter;
  private readonly attachmentsByRule: Counter<'rule'>;
  private readonly attachmentsByExtension: Counter<'extension'>;
  private readonly clamdScans: Counter<'result'>;
  private readonly clamdScanDuration: Histogram;
  private readonly clamdBytes: Counter;
  private readonly clamdUp: Gauge<'endpoint'>;
  private readonly clamdLastCheck: Gauge<'endpoint'>;
  private readonly clamdSignatureVersion: Gauge<'endpoint'>;
  private readonly clamdSignatureTime: Gauge<'endpoint'>;
  private readonly clamdEngineInfo: Gauge<'endpoint' | 'clamav_version'>;
  private readonly protocolErrors: Counter<'kind'>;
  private readonly overloadTempfails: Counter<'reason'>;
  private readonly configReloads: Counter<'result'>;
  private readonly configLastReloadOk: Gauge;
  private readonly configLastReloadTime: Gauge;
  private readonly redisFallbacks: Counter;
  private readonly rateLimitStoreUp: Gauge<'store'>;
  /** Whose reports set pmt_rate_limit_store_up: the counter store in use (see rateLimitStoreInUse). */
  private rateLimitStoreOwner: object | undefined;

  private readonly relayRuleLabel: BoundedLabel;
  private readonly rateLimitKindLabel: BoundedLabel;
  private readonly attachmentRuleLabel: BoundedLabel;
  private extensionLabel: BoundedLabel;
  private readonly protocolErrorLabel = new BoundedLabel(PROTOCOL_ERROR_KINDS);
  private readonly clamdEndpoints = new Map<string, ClamdEndpointState>();
  /** The clamd endpoints of the config in force, by position (see setClamdEndpoints). */
  private clamdAddresses: readonly string[] | undefined;
  private listening = false;
  private active = 0;

  constructor(options: GatewayMetricsOptions) {
    this.registry = new Registry();
    this.now = options.now ?? Date.now;
    const registers = [this.registry];
    const p = METRIC_PREFIX;

    this.relayRuleLabel = new BoundedLabel(options.relayRules ?? DEFAULT_RELAY_RULES);
    this.rateLimitKindLabel = new BoundedLabel(options.rateLimitKinds ?? DEFAULT_RATE_LIMIT_KINDS);
    this.attachmentRuleLabel = new BoundedLabel(options.attachmentRules ?? DEFAULT_ATTACHMENT_RULES);
    this.extensionLabel = new BoundedLabel((options.bannedExtensions ?? []).map(normalizeExtension));

    const buildInfo = new Gauge({
      name: `${p}build_info`,
      help: 'Always 1; labels give the version of this milter and the milter protocol version it speaks.',
      labelNames: ['version', 'protocol_version'] as const,
      registers,
    });
    buildInfo.set({ version: options.version, protocol_version: String(MILTER_VERSION) }, 1);

    this.connections = new Counter({ name: `${p}connections_total`, help: 'Connections from the MTA that got a milter session, including those answered with an overload tempfail.', registers });
    this.sessionsActive = new Gauge({ name: `${p}sessions_active`, help: 'Milter sessions open now (in flight).', registers });
    this.sessionsMax = new Gauge({ name: `${p}sessions_max`, help: 'Configured limit of concurrent milter sessions.', registers });
    this.sessionsMax.set(options.maxSessions);
    this.milterListeningGauge = new Gauge({ name: `${p}milter_listening`, help: '1 while the milter listener accepts connections, 0 before it is bound and while it drains.', registers });
    this.milterListeningGauge.set(0);

    this.messages = new Counter({ name: `${p}messages_total`, help: 'Messages by final milter verdict, counted once per transaction when the verdict is sent.', labelNames: ['verdict'] as const, registers });
    this.messageSize = new Histogram({ name: `${p}message_size_bytes`, help: 'Size of the message (headers and body) as the milter received it.', buckets: SIZE_BYTES_BUCKETS, registers });
    this.messageDuration = new Histogram({ name: `${p}message_processing_seconds`, help: 'Time from MAIL FROM to the final verdict, as seen by the milter.', buckets: PROCESSING_SECONDS_BUCKETS, registers });
    this.recipients = new Counter({ name: `${p}recipients_total`, help: 'Envelope recipients (RCPT) by outcome.', labelNames: ['outcome'] as const, registers });
    this.relayRejections = new Counter({ name: `${p}relay_rejections_total`, help: 'Recipients or sessions refused by the relay policy, by rule.', labelNames: ['rule'] as const, registers });
    this.rateLimitHits = new Counter({ name: `${p}rate_limit_hits_total`, help: 'Commands tempfailed because a rate limit was exceeded, by what the limit counts.', labelNames: ['kind'] as const, registers });
    this.virusByPlatform = new Counter({ name: `${p}virus_detections_total`, help: 'Infections found, by the platform part of the ClamAV signature name (full names are in the log).', labelNames: ['platform'] as const, registers });
    this.virusByCategory = new Counter({ name: `${p}virus_detections_by_category_total`, help: 'Infections found, by the category part of the ClamAV signature name.', labelNames: ['category'] as const, registers });
    this.virusUnofficial = new Counter({ name: `${p}virus_detections_unofficial_total`, help: 'Infections found by third-party signatures (names ending in .UNOFFICIAL); also counted in virus_detections_total.', registers });
    this.attachmentsByRule = new Counter({ name: `${p}attachments_blocked_total`, help: 'Attachments that blocked a message, by the rule that matched.', labelNames: ['rule'] as const, registers });
    this.attachmentsByExtension = new Counter({ name: `${p}attachments_blocked_by_extension_total`, help: 'Attachments that blocked a message, by extension; only extensions from the configured banned list, anything else is `other`.', labelNames: ['extension'] as const, registers });
    this.clamdScans = new Counter({ name: `${p}clamd_scans_total`, help: 'clamd scans by result.', labelNames: ['result'] as const, registers });
    this.clamdScanDuration = new Histogram({ name: `${p}clamd_scan_duration_seconds`, help: 'Wall time of one clamd scan, from the first byte streamed to the answer (all results).', buckets: SCAN_SECONDS_BUCKETS, registers });
    this.clamdBytes = new Counter({ name: `${p}clamd_scanned_bytes_total`, help: 'Bytes streamed to clamd.', registers });
    this.clamdUp = new Gauge({ name: `${p}clamd_up`, help: '1 if the last health check of this clamd endpoint (by position in the config) succeeded.', labelNames: ['endpoint'] as const, registers });
    this.clamdLastCheck = new Gauge({ name: `${p}clamd_last_check_timestamp_seconds`, help: 'When this clamd endpoint was last checked (Unix time).', labelNames: ['endpoint'] as const, registers });
    this.clamdSignatureVersion = new Gauge({ name: `${p}clamd_signature_version`, help: 'Version of the daily signature database this clamd endpoint has loaded.', labelNames: ['endpoint'] as const, registers });
    this.clamdSignatureTime = new Gauge({ name: `${p}clamd_signature_timestamp_seconds`, help: 'Build time of the signature database this clamd endpoint has loaded (Unix time); age = time() - this.', labelNames: ['endpoint'] as const, registers });
    this.clamdEngineInfo = new Gauge({ name: `${p}clamd_engine_info`, help: 'Always 1; the label gives the ClamAV engine version of this clamd endpoint.', labelNames: ['endpoint', 'clamav_version'] as const, registers });
    this.protocolErrors = new Counter({ name: `${p}protocol_errors_total`, help: 'Milter protocol errors by kind; most end the session.', labelNames: ['kind'] as const, registers });
    this.overloadTempfails = new Counter({ name: `${p}overload_tempfails_total`, help: 'Tempfails caused by self-protection rather than policy, by reason.', labelNames: ['reason'] as const, registers });
    this.configReloads = new Counter({ name: `${p}config_reloads_total`, help: 'Configuration reloads by result; a failed reload keeps the previous configuration.', labelNames: ['result'] as const, registers });
    this.configLastReloadOk = new Gauge({ name: `${p}config_last_reload_successful`, help: '1 if the last configuration reload succeeded (or none was tried), 0 if it failed.', registers });
    this.configLastReloadOk.set(1);
    this.configLastReloadTime = new Gauge({ name: `${p}config_last_reload_success_timestamp_seconds`, help: 'When the configuration was last loaded successfully (Unix time).', registers });
    this.configLastReloadTime.set(this.now() / 1000);
    this.redisFallbacks = new Counter({ name: `${p}redis_fallbacks_total`, help: 'Times the Redis rate-limit store became unreachable; until it is back, rate-limit decisions use the fallback (local counters or tempfail).', registers });
    this.rateLimitStoreUp = new Gauge({ name: `${p}rate_limit_store_up`, help: '0 while the Redis rate-limit store is unreachable (decisions use the fallback), else 1; no series with the in-memory store.', labelNames: ['store'] as const, registers });

    // Known label values start at 0, so rate() and increase() see the first event and dashboards show 0, not "no data".
    for (const verdict of MESSAGE_VERDICTS) this.messages.inc({ verdict }, 0);
    for (const outcome of RECIPIENT_OUTCOMES) this.recipients.inc({ outcome }, 0);
    for (const rule of this.relayRuleLabel.values) this.relayRejections.inc({ rule }, 0);
    for (const kind of this.rateLimitKindLabel.values) this.rateLimitHits.inc({ kind }, 0);
    for (const platform of [...VIRUS_PLATFORMS, OTHER]) this.virusByPlatform.inc({ platform }, 0);
    for (const category of [...VIRUS_CATEGORIES, OTHER]) this.virusByCategory.inc({ category }, 0);
    for (const rule of this.attachmentRuleLabel.values) this.attachmentsByRule.inc({ rule }, 0);
    for (const extension of this.extensionLabel.values) this.attachmentsByExtension.inc({ extension }, 0);
    for (const result of CLAMD_SCAN_RESULTS) this.clamdScans.inc({ result }, 0);
    for (const kind of this.protocolErrorLabel.values) this.protocolErrors.inc({ kind }, 0);
    for (const reason of OVERLOAD_REASONS) this.overloadTempfails.inc({ reason }, 0);
    for (const result of ['success', 'failure']) this.configReloads.inc({ result }, 0);

    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client also exports these counts as gauges named `_total`, which Prometheus reserves for counters
      // (`promtool check metrics` flags them); the same numbers stay in `nodejs_active_{handles,requests,resources}`.
      for (const name of LEGACY_TOTAL_GAUGES) this.registry.removeSingleMetric(name);
    }
  }

  /** The Prometheus text exposition of every metric. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // --- connections and sessions ---

  /** A TCP (or UNIX) connection from the MTA arrived, whether or not it then gets a session. */
  connectionAccepted(): void {
    this.connections.inc();
  }

  /** A session started. `inFlightNow`, when the caller knows it (the server's own count), replaces the running count. */
  sessionOpened(inFlightNow?: number): void {
    this.active = inFlightNow !== undefined && Number.isInteger(inFlightNow) && inFlightNow >= 0 ? inFlightNow : this.active + 1;
    this.sessionsActive.set(this.active);
  }

  sessionClosed(): void {
    this.active = Math.max(0, this.active - 1);
    this.sessionsActive.set(this.active);
  }

  /** The milter listener is bound (true) or stopped/draining (false); part of /healthz. */
  milterListening(listening: boolean): void {
    this.listening = listening;
    this.milterListeningGauge.set(listening ? 1 : 0);
  }

  // --- messages and recipients ---

  messageFinished(message: MessageFinished): void {
    this.messages.inc({ verdict: message.verdict });
    if (message.sizeBytes !== undefined && message.sizeBytes >= 0) this.messageSize.observe(message.sizeBytes);
    if (message.seconds >= 0) this.messageDuration.observe(message.seconds);
  }

  recipient(outcome: RecipientOutcome): void {
    this.recipients.inc({ outcome });
  }

  // --- policies ---

  /** A refusal by the relay policy; `rule` is the decision's label-safe rule name (unknown rules count as `other`). */
  relayRejected(rule: string): void {
    this.relayRejections.inc({ rule: this.relayRuleLabel.valueOf(rule) });
  }

  /** A command refused because a rate limit was exceeded: the kind, or the refusal's rule (`rate-recipients`). */
  rateLimited(kind: string): void {
    this.rateLimitHits.inc({ kind: this.rateLimitKindLabel.valueOf(kind.replace(/^rate-/, '')) });
  }

  /** An infection; only the platform and category of the name are counted. Returns them for the caller's log line. */
  virusFound(signatureName: string): VirusNameParts {
    const parts = parseVirusName(signatureName);
    this.virusByPlatform.inc({ platform: parts.platform });
    this.virusByCategory.inc({ category: parts.category });
    if (!parts.official) this.virusUnofficial.inc();
    return parts;
  }

  /**
   * An attachment that blocked a message; `rule` is the finding's kind (`banned-extension`, `archive-limit`…),
   * `extension` is the file's extension (with or without the dot) when it
   * has one; only extensions from the configured banned list are labels, everything else counts as `other`.
   */
  attachmentBlocked(rule: string, extension?: string): void {
    this.attachmentsByRule.inc({ rule: this.attachmentRuleLabel.valueOf(rule) });
    this.attachmentsByExtension.inc({ extension: this.extensionLabel.valueOf(extension === undefined ? undefined : normalizeExtension(extension)) });
  }

  /** After a config reload: newly banned extensions get their own (zeroed) series; old series stay, as counters must. */
  setBannedExtensions(extensions: readonly string[]): void {
    this.extensionLabel = new BoundedLabel(extensions.map(normalizeExtension));
    for (const extension of this.extensionLabel.values) this.attachmentsByExtension.inc({ extension }, 0);
  }

  setSessionLimit(maxSessions: number): void {
    this.sessionsMax.set(maxSessions);
  }

  // --- clamd ---

  /** One scan finished (whatever the result); `bytes` is what was streamed to clamd. */
  clamdScan(result: ClamdScanResult, seconds: number, bytes: number): void {
    this.clamdScans.inc({ result });
    if (seconds >= 0) this.clamdScanDuration.observe(seconds);
    if (bytes > 0) this.clamdBytes.inc(bytes);
  }

  /**
   * The result of a health check of one clamd endpoint (its 0-based position in the configured list).
   * `version` is what VERSION answered (see parseClamdVersion); omit it when the check failed. `address` names
   * the endpoint in the /healthz text.
   */
  clamdState(endpoint: number, up: boolean, version?: ClamdVersion, address?: string): void {
    // A config no longer in force still checks its endpoints while sessions opened under it last.
    if (this.clamdAddresses !== undefined && address !== undefined && this.clamdAddresses[endpoint] !== address) return;
    const label = Number.isInteger(endpoint) && endpoint >= 0 && endpoint < MAX_CLAMD_ENDPOINTS ? String(endpoint) : OTHER;
    const state = this.clamdEndpoints.get(label) ?? { up: false, engine: undefined, address: undefined };
    state.up = up;
    state.address = address ?? state.address;
    this.clamdEndpoints.set(label, state);
    this.clamdUp.set({ endpoint: label }, up ? 1 : 0);
    this.clamdLastCheck.set({ endpoint: label }, this.now() / 1000);
    if (version === undefined) return;
    if (version.signatureVersion !== undefined) this.clamdSignatureVersion.set({ endpoint: label }, version.signatureVersion);
    if (version.signatureTime !== undefined) this.clamdSignatureTime.set({ endpoint: label }, version.signatureTime.getTime() / 1000);
    // Only version-shaped strings (1.0.7, 1.4.0-rc): whatever else clamd might say stays out of the label.
    const engine = /^\d{1,4}(?:\.\d{1,6}){0,3}(?:[-+~][0-9A-Za-z]{1,12})?$/.test(version.engine) ? version.engine : OTHER;
    if (state.engine !== engine) {
      // One info series per endpoint: the old engine version goes away when clamd is upgraded.
      if (state.engine !== undefined) this.clamdEngineInfo.remove({ endpoint: label, clamav_version: state.engine });
      this.clamdEngineInfo.set({ endpoint: label, clamav_version: engine }, 1);
      state.engine = engine;
    }
  }

  /**
   * The clamd endpoints of the config now in force (at start and at each reload). A position that is gone or
   * now holds another address loses its series and its say in /healthz until its new endpoint is checked:
   * otherwise a removed endpoint's last state would stay for ever (ClamdEndpointDown firing, or an `up` that
   * hides ClamdAllDown). From now on, reports for other addresses are ignored.
   */
  setClamdEndpoints(addresses: readonly string[]): void {
    this.clamdAddresses = [...addresses];
    for (const [label, state] of [...this.clamdEndpoints]) {
      // Positions past MAX_CLAMD_ENDPOINTS share one label: it stays while there are such positions.
      const current = label === OTHER ? addresses.length > MAX_CLAMD_ENDPOINTS : addresses[Number(label)] === state.address;
      if (current) continue;
      this.clamdUp.remove({ endpoint: label });
      this.clamdLastCheck.remove({ endpoint: label });
      this.clamdSignatureVersion.remove({ endpoint: label });
      this.clamdSignatureTime.remove({ endpoint: label });
      if (state.engine !== undefined) this.clamdEngineInfo.remove({ endpoint: label, clamav_version: state.engine });
      this.clamdEndpoints.delete(label);
    }
  }

  // --- errors, overload, operations ---

  protocolError(kind: ProtocolErrorKind): void {
    this.protocolErrors.inc({ kind: this.protocolErrorLabel.valueOf(kind) });
  }

  /** A tempfail the milter chose to protect itself (not a policy decision). */
  overload(reason: OverloadReason): void {
    this.overloadTempfails.inc({ reason });
  }

  configReload(ok: boolean): void {
    this.configReloads.inc({ result: ok ? 'success' : 'failure' });
    this.configLastReloadOk.set(ok ? 1 : 0);
    if (ok) this.configLastReloadTime.set(this.now() / 1000);
  }

  /** A rate-limit lookup fell back to the in-memory store because Redis did not answer. */
  redisFallback(): void {
    this.redisFallbacks.inc();
  }

  /**
   * A new rate-limit counter store is in use (at start, and at a reload that changes its settings). `owner`
   * stands for that store: a store of a config no longer in force, still used by its open sessions, reports
   * under another owner and is ignored.
   */
  rateLimitStoreInUse(owner: object, type: 'redis' | 'memory'): void {
    this.rateLimitStoreOwner = owner;
    if (type === 'redis') this.rateLimitStoreUp.set({ store: 'redis' }, 1);
    else this.rateLimitStoreUp.reset();
  }

  /** The Redis store became unreachable (false) or reachable again (true). */
  rateLimitStoreAvailable(owner: object, up: boolean): void {
    if (owner === this.rateLimitStoreOwner) this.rateLimitStoreUp.set({ store: 'redis' }, up ? 1 : 0);
  }

  // --- health ---

  /** Sessions open now, as counted by sessionOpened/sessionClosed. */
  get sessionsInFlight(): number {
    return this.active;
  }

  /**
   * Healthy when the milter listener is bound and at least one clamd endpoint answered its last check.
   * Before the first clamd check has been reported, clamd counts as not answered.
   */
  health(): HealthReport {
    if (!this.listening) return { healthy: false, reason: 'the milter listener is not accepting connections' };
    if (this.clamdEndpoints.size === 0) return { healthy: false, reason: 'no clamd health check has completed yet' };
    const down = [...this.clamdEndpoints].filter(([, s]) => !s.up).map(([e, s]) => s.address ?? `clamav.endpoints[${e}]`);
    if (down.length === this.clamdEndpoints.size) {
      return { healthy: false, reason: `no clamd endpoint answered its last check (down: ${down.join(', ')})` };
    }
    return { healthy: true };
  }
}
