import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { ProtocolErrorKind } from '@postfix-milter-ts/protocol';
import {
  CLAMD_SCAN_RESULTS,
  GatewayMetrics,
  MESSAGE_VERDICTS,
  OVERLOAD_REASONS,
  PROTOCOL_ERROR_KINDS,
  RECIPIENT_OUTCOMES,
  type GatewayMetricsOptions,
} from 'postfix-milter-ts/metrics/gateway-metrics.js';

const PROMTOOL = '/usr/bin/promtool';

function make(extra: Partial<GatewayMetricsOptions> = {}): GatewayMetrics {
  return new GatewayMetrics({ version: '1.2.3', maxSessions: 50, bannedExtensions: ['exe', '.SCR', 'js'], defaultMetrics: false, ...extra });
}

/** The value of one series, read back from the registry (undefined when the series does not exist). */
async function value(m: GatewayMetrics, name: string, labels: Record<string, string> = {}, series = name): Promise<number | undefined> {
  const metric = m.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const got = await metric.get();
  const wanted = Object.entries(labels);
  const hit = got.values.find((v) => {
    const metricName = (v as { metricName?: string }).metricName ?? name;
    const keys = Object.keys(v.labels);
    return metricName === series && keys.length === wanted.length && wanted.every(([k, x]) => String(v.labels[k]) === x);
  });
  return hit?.value;
}

async function labelValues(m: GatewayMetrics, name: string, label: string): Promise<string[]> {
  const got = await m.registry.getSingleMetric(name)!.get();
  return got.values.map((v) => String(v.labels[label]));
}

describe('GatewayMetrics', () => {
  test('build info carries the version and the milter protocol version; sessions_max the limit', async () => {
    const m = make();
    assert.equal(await value(m, 'pmt_build_info', { version: '1.2.3', protocol_version: '6' }), 1);
    assert.equal(await value(m, 'pmt_sessions_max'), 50);
    m.setSessionLimit(80);
    assert.equal(await value(m, 'pmt_sessions_max'), 80);
  });

  test("Node's default process metrics are on the same registry (unprefixed), and off on request", async () => {
    const withDefaults = make({ defaultMetrics: true });
    const text = await withDefaults.metrics();
    assert.match(text, /^process_cpu_user_seconds_total \d/m);
    assert.match(text, /^nodejs_heap_size_used_bytes \d/m);
    assert.doesNotMatch(await make().metrics(), /^process_cpu_user_seconds_total/m);
  });

  test('promtool finds nothing to lint in the whole exposition, Node defaults included', { skip: !existsSync(PROMTOOL) && 'promtool not installed' }, async () => {
    const text = await make({ defaultMetrics: true }).metrics();
    assert.match(text, /^nodejs_active_handles\{/m);
    const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
    assert.equal((lint.stdout + lint.stderr).trim(), '');
  });

  test('every metric of ours carries the pmt_ prefix', async () => {
    const names = [...(await make().metrics()).matchAll(/^# TYPE (\S+)/gm)].map((x) => x[1] as string);
    assert.ok(names.length > 25);
    for (const n of names) assert.match(n, /^pmt_/);
  });

  test('known label values start at zero', async () => {
    const m = make();
    for (const verdict of MESSAGE_VERDICTS) assert.equal(await value(m, 'pmt_messages_total', { verdict }), 0, verdict);
    for (const outcome of RECIPIENT_OUTCOMES) assert.equal(await value(m, 'pmt_recipients_total', { outcome }), 0, outcome);
    for (const result of CLAMD_SCAN_RESULTS) assert.equal(await value(m, 'pmt_clamd_scans_total', { result }), 0, result);
    for (const reason of OVERLOAD_REASONS) assert.equal(await value(m, 'pmt_overload_tempfails_total', { reason }), 0, reason);
    for (const kind of PROTOCOL_ERROR_KINDS) assert.equal(await value(m, 'pmt_protocol_errors_total', { kind }), 0, kind);
    for (const result of ['success', 'failure']) assert.equal(await value(m, 'pmt_config_reloads_total', { result }), 0, result);
    assert.deepEqual((await labelValues(m, 'pmt_attachments_blocked_by_extension_total', 'extension')).sort(), ['exe', 'js', 'other', 'scr']);
    assert.ok((await labelValues(m, 'pmt_relay_rejections_total', 'rule')).includes('relay-denied'));
    assert.ok((await labelValues(m, 'pmt_virus_detections_total', 'platform')).includes('Win'));
    assert.ok((await labelValues(m, 'pmt_virus_detections_by_category_total', 'category')).includes('Worm'));
    assert.equal(await value(m, 'pmt_message_processing_seconds', {}, 'pmt_message_processing_seconds_count'), 0);
    assert.equal(await value(m, 'pmt_clamd_scan_duration_seconds', { le: '300' }, 'pmt_clamd_scan_duration_seconds_bucket'), 0);
  });

  test('rule and kind lists given by the policies replace the defaults', async () => {
    const m = make({ relayRules: ['relay-x'], rateLimitKinds: ['per-hour'], attachmentRules: ['rule-y'] });
    assert.deepEqual(await labelValues(m, 'pmt_relay_rejections_total', 'rule'), ['relay-x', 'other']);
    assert.deepEqual(await labelValues(m, 'pmt_rate_limit_hits_total', 'kind'), ['per-hour', 'other']);
    assert.deepEqual(await labelValues(m, 'pmt_attachments_blocked_total', 'rule'), ['rule-y', 'other']);
  });

  test('connections and sessions in flight', async () => {
    const m = make();
    m.connectionAccepted();
    m.connectionAccepted();
    assert.equal(await value(m, 'pmt_connections_total'), 2);
    m.sessionOpened();
    m.sessionOpened();
    assert.equal(await value(m, 'pmt_sessions_active'), 2);
    m.sessionClosed();
    assert.equal(await value(m, 'pmt_sessions_active'), 1);
    m.sessionClosed();
    m.sessionClosed(); // one too many: never below zero
    assert.equal(await value(m, 'pmt_sessions_active'), 0);
    m.sessionOpened(7); // the server's own count wins
    assert.equal(await value(m, 'pmt_sessions_active'), 7);
    assert.equal(m.sessionsInFlight, 7);
  });

  test('milter listening gauge', async () => {
    const m = make();
    assert.equal(await value(m, 'pmt_milter_listening'), 0);
    m.milterListening(true);
    assert.equal(await value(m, 'pmt_milter_listening'), 1);
    m.milterListening(false);
    assert.equal(await value(m, 'pmt_milter_listening'), 0);
  });

  test('messageFinished counts the verdict and observes size and processing time', async () => {
    const m = make();
    m.messageFinished({ verdict: 'reject', sizeBytes: 5000, seconds: 0.2 });
    m.messageFinished({ verdict: 'accept', sizeBytes: 2_000_000, seconds: 1.5 });
    m.messageFinished({ verdict: 'tempfail', seconds: 0.01 }); // ended before DATA: no size
    assert.equal(await value(m, 'pmt_messages_total', { verdict: 'reject' }), 1);
    assert.equal(await value(m, 'pmt_messages_total', { verdict: 'accept' }), 1);
    assert.equal(await value(m, 'pmt_messages_total', { verdict: 'tempfail' }), 1);
    assert.equal(await value(m, 'pmt_messages_total', { verdict: 'discard' }), 0);
    assert.equal(await value(m, 'pmt_message_size_bytes', {}, 'pmt_message_size_bytes_count'), 2);
    assert.equal(await value(m, 'pmt_message_size_bytes', {}, 'pmt_message_size_bytes_sum'), 2_005_000);
    assert.equal(await value(m, 'pmt_message_size_bytes', { le: '16000' }, 'pmt_message_size_bytes_bucket'), 1);
    assert.equal(await value(m, 'pmt_message_processing_seconds', {}, 'pmt_message_processing_seconds_count'), 3);
    assert.equal(await value(m, 'pmt_message_processing_seconds', { le: '0.25' }, 'pmt_message_processing_seconds_bucket'), 2);
  });

  test('recipients by outcome', async () => {
    const m = make();
    m.recipient('accepted');
    m.recipient('accepted');
    m.recipient('rejected');
    assert.equal(await value(m, 'pmt_recipients_total', { outcome: 'accepted' }), 2);
    assert.equal(await value(m, 'pmt_recipients_total', { outcome: 'rejected' }), 1);
    assert.equal(await value(m, 'pmt_recipients_total', { outcome: 'tempfailed' }), 0);
  });

  test('relay rejections by rule; an unknown rule counts as other', async () => {
    const m = make();
    m.relayRejected('relay-denied');
    m.relayRejected('Percent-Hack');
    m.relayRejected('made-up-rule');
    assert.equal(await value(m, 'pmt_relay_rejections_total', { rule: 'relay-denied' }), 1);
    assert.equal(await value(m, 'pmt_relay_rejections_total', { rule: 'percent-hack' }), 1);
    assert.equal(await value(m, 'pmt_relay_rejections_total', { rule: 'other' }), 1);
    assert.equal(await value(m, 'pmt_relay_rejections_total', { rule: 'made-up-rule' }), undefined);
  });

  test('rate-limit hits by kind', async () => {
    const m = make();
    m.rateLimited('recipients');
    m.rateLimited('rate-recipients'); // a refusal's rule name works as well
    m.rateLimited('rate-recipients-per-message');
    m.rateLimited('weird');
    assert.equal(await value(m, 'pmt_rate_limit_hits_total', { kind: 'recipients' }), 2);
    assert.equal(await value(m, 'pmt_rate_limit_hits_total', { kind: 'recipients-per-message' }), 1);
    assert.equal(await value(m, 'pmt_rate_limit_hits_total', { kind: 'connections' }), 0);
    assert.equal(await value(m, 'pmt_rate_limit_hits_total', { kind: 'other' }), 1);
  });

  test('virus detections by platform and by category; third-party signatures counted apart', async () => {
    const m = make();
    assert.deepEqual(m.virusFound('Win.Worm.Mydoom-1'), { platform: 'Win', category: 'Worm', official: true });
    m.virusFound('Doc.Trojan.Agent-123.UNOFFICIAL');
    m.virusFound('Eicar-Test-Signature');
    assert.equal(await value(m, 'pmt_virus_detections_total', { platform: 'Win' }), 1);
    assert.equal(await value(m, 'pmt_virus_detections_total', { platform: 'Doc' }), 1);
    assert.equal(await value(m, 'pmt_virus_detections_total', { platform: 'other' }), 1);
    assert.equal(await value(m, 'pmt_virus_detections_by_category_total', { category: 'Worm' }), 1);
    assert.equal(await value(m, 'pmt_virus_detections_by_category_total', { category: 'Trojan' }), 1);
    assert.equal(await value(m, 'pmt_virus_detections_by_category_total', { category: 'other' }), 1);
    assert.equal(await value(m, 'pmt_virus_detections_unofficial_total'), 1);
    assert.doesNotMatch(await m.metrics(), /Mydoom|Agent-123|Eicar/);
  });

  test('blocked attachments by rule and by extension from the banned list only', async () => {
    const m = make();
    m.attachmentBlocked('banned-extension', '.EXE');
    m.attachmentBlocked('banned-extension', 'scr');
    m.attachmentBlocked('double-extension', 'pdf'); // not in the banned list
    m.attachmentBlocked('encrypted-archive'); // no extension
    m.attachmentBlocked('pe-as-pdf'); // a fine-grained rule, not a finding kind
    assert.equal(await value(m, 'pmt_attachments_blocked_total', { rule: 'banned-extension' }), 2);
    assert.equal(await value(m, 'pmt_attachments_blocked_total', { rule: 'double-extension' }), 1);
    assert.equal(await value(m, 'pmt_attachments_blocked_total', { rule: 'encrypted-archive' }), 1);
    assert.equal(await value(m, 'pmt_attachments_blocked_total', { rule: 'other' }), 1);
    assert.equal(await value(m, 'pmt_attachments_blocked_total', { rule: 'archive-limit' }), 0);
    assert.equal(await value(m, 'pmt_attachments_blocked_by_extension_total', { extension: 'exe' }), 1);
    assert.equal(await value(m, 'pmt_attachments_blocked_by_extension_total', { extension: 'scr' }), 1);
    assert.equal(await value(m, 'pmt_attachments_blocked_by_extension_total', { extension: 'other' }), 3);
    assert.equal(await value(m, 'pmt_attachments_blocked_by_extension_total', { extension: 'pdf' }), undefined);
  });

  test('a reloaded banned list adds zeroed series and keeps the old ones', async () => {
    const m = make();
    m.attachmentBlocked('banned-extension', 'exe');
    m.setBannedExtensions(['vbs']);
    assert.equal(await value(m, 'pmt_attachments_blocked_by_extension_total', { extension: 'vbs' }), 0);
    assert.equal(await value(m, 'pmt_attachments_blocked_by_extension_total', { extension: 'exe' }), 1);
    m.attachmentBlocked('banned-extension', 'exe'); // no longer banned: other
    assert.equal(await value(m, 'pmt_attachments_blocked_by_extension_total', { extension: 'other' }), 1);
  });

  test('clamd scans by result, duration up to minutes, bytes scanned', async () => {
    const m = make();
    m.clamdScan('clean', 0.02, 1000);
    m.clamdScan('timeout', 100, 5000);
    m.clamdScan('unreachable', 0, 0);
    assert.equal(await value(m, 'pmt_clamd_scans_total', { result: 'clean' }), 1);
    assert.equal(await value(m, 'pmt_clamd_scans_total', { result: 'timeout' }), 1);
    assert.equal(await value(m, 'pmt_clamd_scans_total', { result: 'unreachable' }), 1);
    assert.equal(await value(m, 'pmt_clamd_scans_total', { result: 'size-limit' }), 0);
    assert.equal(await value(m, 'pmt_clamd_scan_duration_seconds', {}, 'pmt_clamd_scan_duration_seconds_count'), 3);
    assert.equal(await value(m, 'pmt_clamd_scan_duration_seconds', { le: '60' }, 'pmt_clamd_scan_duration_seconds_bucket'), 2);
    assert.equal(await value(m, 'pmt_clamd_scan_duration_seconds', { le: '120' }, 'pmt_clamd_scan_duration_seconds_bucket'), 3);
    assert.equal(await value(m, 'pmt_clamd_scanned_bytes_total'), 6000);
  });

  test('clamd state: up, check time, signature version and build time, engine version', async () => {
    let now = 1_700_000_000_000;
    const m = make({ now: () => now });
    m.clamdState(0, true, { engine: '1.0.7', signatureVersion: 27400, signatureTime: new Date('2024-09-24T08:37:31Z') });
    m.clamdState(1, false);
    assert.equal(await value(m, 'pmt_clamd_up', { endpoint: '0' }), 1);
    assert.equal(await value(m, 'pmt_clamd_up', { endpoint: '1' }), 0);
    assert.equal(await value(m, 'pmt_clamd_last_check_timestamp_seconds', { endpoint: '1' }), 1_700_000_000);
    assert.equal(await value(m, 'pmt_clamd_signature_version', { endpoint: '0' }), 27400);
    assert.equal(await value(m, 'pmt_clamd_signature_timestamp_seconds', { endpoint: '0' }), Date.parse('2024-09-24T08:37:31Z') / 1000);
    assert.equal(await value(m, 'pmt_clamd_engine_info', { endpoint: '0', clamav_version: '1.0.7' }), 1);
    now += 60_000;
    m.clamdState(0, true, { engine: '1.4.2', signatureVersion: 27401 });
    assert.equal(await value(m, 'pmt_clamd_engine_info', { endpoint: '0', clamav_version: '1.0.7' }), undefined, 'old engine series removed');
    assert.equal(await value(m, 'pmt_clamd_engine_info', { endpoint: '0', clamav_version: '1.4.2' }), 1);
    assert.equal(await value(m, 'pmt_clamd_signature_version', { endpoint: '0' }), 27401);
    assert.equal(await value(m, 'pmt_clamd_last_check_timestamp_seconds', { endpoint: '0' }), 1_700_000_060);
  });

  test('a reload that removes a clamd endpoint removes its series; one that changes an address resets that position', async () => {
    const m = make();
    m.milterListening(true);
    m.setClamdEndpoints(['inet:127.0.0.1:3310', 'inet:127.0.0.1:3311']);
    m.clamdState(0, false, undefined, 'inet:127.0.0.1:3310');
    m.clamdState(1, true, { engine: '1.0.7', signatureVersion: 27400 }, 'inet:127.0.0.1:3311');

    m.setClamdEndpoints(['inet:127.0.0.1:3310']);
    assert.deepEqual(await labelValues(m, 'pmt_clamd_up', 'endpoint'), ['0']);
    for (const name of ['pmt_clamd_last_check_timestamp_seconds', 'pmt_clamd_signature_version', 'pmt_clamd_engine_info']) {
      assert.deepEqual((await labelValues(m, name, 'endpoint')).filter((e) => e === '1'), [], name);
    }
    assert.equal(m.health().healthy, false, 'the endpoint that answered is gone: /healthz says so');

    m.setClamdEndpoints(['unix:/run/clamav/clamd.ctl']);
    assert.deepEqual(await labelValues(m, 'pmt_clamd_up', 'endpoint'), [], 'position 0 now holds another endpoint, not yet checked');
    m.clamdState(0, false, undefined, 'inet:127.0.0.1:3310');
    assert.deepEqual(await labelValues(m, 'pmt_clamd_up', 'endpoint'), [], 'a report from the config no longer in force is ignored');
    m.clamdState(0, true, undefined, 'unix:/run/clamav/clamd.ctl');
    assert.equal(await value(m, 'pmt_clamd_up', { endpoint: '0' }), 1);
    assert.deepEqual(m.health(), { healthy: true });
  });

  test('protocol errors by kind, overload tempfails by reason', async () => {
    const m = make();
    m.protocolError('frame-too-large');
    m.protocolError('timeout');
    m.protocolError('timeout');
    m.overload('max-sessions');
    m.overload('scan-queue-full');
    assert.equal(await value(m, 'pmt_protocol_errors_total', { kind: 'frame-too-large' }), 1);
    assert.equal(await value(m, 'pmt_protocol_errors_total', { kind: 'timeout' }), 2);
    assert.equal(await value(m, 'pmt_overload_tempfails_total', { reason: 'max-sessions' }), 1);
    assert.equal(await value(m, 'pmt_overload_tempfails_total', { reason: 'scan-queue-full' }), 1);
    // Only reasons something counts are offered (clamd down shows in pmt_clamd_up and the scan results).
    const reasons = (await m.registry.getSingleMetric('pmt_overload_tempfails_total')?.get())?.values.map((v) => v.labels['reason']);
    assert.deepEqual(reasons, ['max-sessions', 'scan-queue-full']);
  });

  test('config reloads by result, last reload state and time', async () => {
    let now = 1_000_000;
    const m = make({ now: () => now });
    assert.equal(await value(m, 'pmt_config_last_reload_successful'), 1);
    now = 5_000_000;
    m.configReload(true);
    assert.equal(await value(m, 'pmt_config_last_reload_success_timestamp_seconds'), 5000);
    now = 9_000_000;
    m.configReload(false);
    assert.equal(await value(m, 'pmt_config_reloads_total', { result: 'success' }), 1);
    assert.equal(await value(m, 'pmt_config_reloads_total', { result: 'failure' }), 1);
    assert.equal(await value(m, 'pmt_config_last_reload_successful'), 0);
    assert.equal(await value(m, 'pmt_config_last_reload_success_timestamp_seconds'), 5000, 'a failed reload keeps the time of the last good one');
  });

  test('redis fallbacks', async () => {
    const m = make();
    m.redisFallback();
    m.redisFallback();
    assert.equal(await value(m, 'pmt_redis_fallbacks_total'), 2);
  });

  test('rate-limit store up: follows the Redis store in use; a retired store is not heard; the in-memory store has no series', async () => {
    const m = make();
    const first = {};
    m.rateLimitStoreInUse(first, 'redis');
    assert.equal(await value(m, 'pmt_rate_limit_store_up', { store: 'redis' }), 1);
    m.rateLimitStoreAvailable(first, false);
    assert.equal(await value(m, 'pmt_rate_limit_store_up', { store: 'redis' }), 0);
    m.rateLimitStoreAvailable(first, true);
    assert.equal(await value(m, 'pmt_rate_limit_store_up', { store: 'redis' }), 1);
    const second = {};
    m.rateLimitStoreInUse(second, 'redis');
    m.rateLimitStoreAvailable(first, false);
    assert.equal(await value(m, 'pmt_rate_limit_store_up', { store: 'redis' }), 1, 'the retired store (its sessions still open) is ignored');
    m.rateLimitStoreInUse({}, 'memory');
    assert.deepEqual(await labelValues(m, 'pmt_rate_limit_store_up', 'store'), []);
  });

  test('health: listener bound and at least one clamd answered its last check', () => {
    const m = make();
    assert.deepEqual(m.health(), { healthy: false, reason: 'the milter listener is not accepting connections' });
    m.milterListening(true);
    assert.deepEqual(m.health(), { healthy: false, reason: 'no clamd health check has completed yet' });
    m.clamdState(0, false, undefined, 'unix:/run/clamav/clamd.ctl');
    m.clamdState(1, false);
    const r = m.health();
    assert.equal(r.healthy, false);
    assert.equal(r.healthy ? '' : r.reason, 'no clamd endpoint answered its last check (down: unix:/run/clamav/clamd.ctl, clamav.endpoints[1])');
    m.clamdState(1, true);
    assert.deepEqual(m.health(), { healthy: true });
  });
});

describe('no personal or attacker-controlled data in labels', () => {
  const ADDRESS = 'victim@example.org';
  const DOMAIN = 'example.org';
  const IPV4 = '192.0.2.55';
  const IPV6 = '2001:db8::beef';
  const FILE = 'invoice.pdf.exe';
  const QUEUE_ID = '4ABCD1234E';

  test('events carrying addresses, domains, IPs, file names and queue ids never put them into a label', async () => {
    const m = make({ defaultMetrics: true });
    for (const s of [ADDRESS, DOMAIN, IPV4, IPV6, FILE, QUEUE_ID]) {
      m.relayRejected(s);
      m.rateLimited(s);
      m.attachmentBlocked(s, s);
      m.attachmentBlocked('banned-extension', s);
      m.virusFound(`${s}.${s}.${s}`);
      m.virusFound(`Win.Trojan.${s}`);
      m.protocolError(s as ProtocolErrorKind);
      m.clamdState(Number.NaN, true, { engine: s, signatureVersion: 1 });
    }
    m.clamdState(1e9, false);
    const text = await m.metrics();
    const values = [...text.matchAll(/\w+="((?:[^"\\]|\\.)*)"/g)].map((x) => x[1] as string);
    assert.ok(values.length > 100);
    for (const v of values) {
      for (const s of [ADDRESS, DOMAIN, IPV4, IPV6, FILE, QUEUE_ID]) assert.ok(!v.includes(s), `label value ${JSON.stringify(v)} contains ${s}`);
      assert.doesNotMatch(v, /@/, `label value ${v} looks like an address`);
      assert.doesNotMatch(v, /^\d{1,3}(\.\d{1,3}){3}$/, `label value ${v} looks like an IPv4 address`);
      assert.doesNotMatch(v, /^[0-9a-f]*:[0-9a-f:]+$/i, `label value ${v} looks like an IPv6 address`);
    }
    assert.doesNotMatch(text, /example\.org|192\.0\.2\.55|2001:db8|invoice|4ABCD1234E/);
  });
});
