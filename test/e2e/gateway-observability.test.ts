// Issue #5 end to end: a real Prometheus scrapes the product's own metrics listener (`serve` as a child process)
// while a real Postfix passes clean, infected (EICAR and a test worm in an .exe), banned (.exe) and
// relay-refused mail through it with a real clamd behind it. Then:
//   - every PromQL expression of the Grafana dashboard returns a finite value (no empty panel);
//   - the alert rules load and evaluate healthy, every metric they name has data, and the alerts whose
//     conditions the test creates (old signatures, clamd stopped, tempfails) return data;
//   - the counters Prometheus stored equal what the test sent: messages by verdict, recipients by outcome,
//     relay rejections by rule, virus detections, blocked attachments, clamd scans by result;
//   - /healthz is 200 while clamd answers and 503 with a reason once it is stopped;
//   - `postfix-milter-ts offenders` lists the relay abuser first;
//   - each message has one JSON log line with what an administrator needs;
//   - no address, domain, IP, file name, queue id or signature name is a label of the real exposition.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ClamdInstance, DAILY_BUILD_TIME, EICAR, fakeWormExe, SIGNATURES } from '../harness/clamd-instance.js';
import { GatewayProcess, type LogLine } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { dashboardExpressions, metricNamesIn, PrometheusInstance, ruleExpressions } from '../harness/prometheus-instance.js';
import { SmtpClient, type SmtpReply } from '../harness/smtp-client.js';
import { buildMessage } from '../harness/mail-builder.js';

const EXAMPLES = new URL('../../../postfix-examples/', import.meta.url);
const ALERTS_FILE = fileURLToPath(new URL('prometheus/alerts.yml', EXAMPLES));
const DASHBOARD = JSON.parse(readFileSync(fileURLToPath(new URL('grafana/dashboards/postfix-milter-ts.json', EXAMPLES)), 'utf8')) as unknown;
const CLI = fileURLToPath(new URL('../../../dist/cli.js', import.meta.url));

// Who sends what. 127.0.0.1 is a trusted network; the others come in through XCLIENT and are untrusted.
const RELAY_ABUSER = '192.0.2.77';
const INBOUND_MX = '198.51.100.23';
const INBOUND_MX_NAME = 'mx.sender.example';
const ALICE = 'alice@example.test';
const FOREIGN = ['victim@elsewhere.example', 'second@elsewhere.example', 'third@elsewhere.example'] as const;
const PERCENT_HACK = 'victim%elsewhere.example@example.test';
const FILES = { text: 'readme.txt', banned: 'invoice.exe', worm: 'update.exe' } as const;

/** A Windows executable's first bytes and nothing clamd knows: banned by its name and its content alone. */
function harmlessExe(): Buffer {
  const exe = Buffer.alloc(1024, 0);
  exe.write('MZ', 0, 'latin1');
  exe.writeUInt32LE(0x80, 0x3c);
  exe.write('PE\0\0', 0x80, 'latin1');
  return exe;
}

function plain(from: string, subject: string): string {
  return `From: ${from}\r\nTo: ${ALICE}\r\nSubject: ${subject}\r\n\r\nHello, nothing to see here.\r\n`;
}

function withAttachment(from: string, subject: string, name: string, type: string, content: Buffer): string {
  return buildMessage({ from, to: ALICE, subject, attachment: { name, type, content } });
}

function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('the product observed by a real Prometheus while a real Postfix passes every kind of mail', () => {
  let clamd: ClamdInstance | undefined;
  let gateway: GatewayProcess | undefined;
  let postfix: PostfixInstance | undefined;
  let prometheus: PrometheusInstance | undefined;
  let target = '';
  let metricsUrl = '';

  /** What each transaction got from Postfix, by name. */
  const replies = new Map<string, { mail: SmtpReply; rcpts: readonly SmtpReply[]; final?: SmtpReply }>();

  const prom = (): PrometheusInstance => prometheus as PrometheusInstance;
  const gw = (): GatewayProcess => gateway as GatewayProcess;

  /** Non-zero values of `sum by (label) (metric)` for this milter, e.g. { accept: 2, reject: 3 }. */
  async function countsBy(metric: string, label: string): Promise<Record<string, number>> {
    const result = await prom().query(`sum by (${label}) (${metric}{instance="${target}"})`);
    return Object.fromEntries(result.filter((s) => Number(s.value) !== 0).map((s) => [s.metric[label] ?? '', Number(s.value)]));
  }

  async function scalar(expr: string): Promise<number> {
    const [s] = await prom().query(expr);
    return s === undefined ? NaN : Number(s.value);
  }

  async function connect(helo: string, xclient?: Record<string, string>): Promise<SmtpClient> {
    const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: (postfix as PostfixInstance).smtpPort });
    assert.equal((await smtp.ehlo(helo)).code, 250);
    if (xclient !== undefined) {
      const x = await smtp.xclient(xclient);
      assert.equal(x.code, 220, x.raw);
      assert.equal((await smtp.ehlo(helo)).code, 250);
    }
    return smtp;
  }

  before(async () => {
    clamd = await ClamdInstance.start();
    gateway = await GatewayProcess.start({
      config: `
milter:
  listen: inet:127.0.0.1:0
relay:
  localDomains: [example.test]
clamav:
  endpoints: [${clamd.unixEndpoint}]
  maxScanBytes: 900K
  healthCheckInterval: 1s
  reprobeInterval: 1s
  connectTimeout: 1s
metrics:
  port: 0
`,
    });
    assert.ok(gateway.metricsPort > 0, 'the metrics listener is up');
    target = `127.0.0.1:${gateway.metricsPort}`;
    metricsUrl = `http://${target}`;
    postfix = new PostfixInstance({
      milter: gateway.milterAddress,
      mailboxes: ['alice'],
      // Only the milter decides relaying; unknown local parts (the %-hack) reach it too.
      mainCf: {
        smtpd_relay_restrictions: 'check_client_access static:OK, reject_unauth_destination',
        smtpd_reject_unlisted_recipient: 'no',
        default_transport: 'discard',
        relay_transport: 'discard',
      },
    });
    prometheus = new PrometheusInstance({ targets: [target], ruleFiles: [ALERTS_FILE] });
    await Promise.all([postfix.start(), prometheus.start()]);
    await prometheus.waitForTargetUp(target);
    // Samples from before the traffic, so rate() and increase() see every event.
    await prometheus.waitForData(`count_over_time(pmt_messages_total{instance="${target}",verdict="accept"}[1m]) >= 2`, 20_000);
  });

  after(async () => {
    await postfix?.stop();
    await gateway?.stop();
    await prometheus?.stop();
    await clamd?.destroy();
  });

  test('clean, infected, banned and relay-refused mail get the SMTP replies a gateway owes them', async () => {
    // 1. clean, from a trusted network.
    let smtp = await connect('client.example.org');
    replies.set('clean', await smtp.sendMessage('sender@example.org', [ALICE], plain('sender@example.org', 'clean')));
    await smtp.quit();

    // 2–4. inbound from an untrusted MX: EICAR in a text file, a banned .exe, a worm in an .exe.
    smtp = await connect(INBOUND_MX_NAME, { ADDR: INBOUND_MX, NAME: INBOUND_MX_NAME });
    const from = 'someone@sender.example';
    replies.set('eicar', await smtp.sendMessage(from, [ALICE], withAttachment(from, 'eicar', FILES.text, 'text/plain', EICAR)));
    replies.set('banned', await smtp.sendMessage(from, [ALICE], withAttachment(from, 'invoice', FILES.banned, 'application/octet-stream', harmlessExe())));
    replies.set('worm', await smtp.sendMessage(from, [ALICE], withAttachment(from, 'update', FILES.worm, 'application/octet-stream', fakeWormExe())));
    await smtp.quit();

    // 5–6. an untrusted client trying to relay: once beside a recipient of ours, once only foreign recipients.
    smtp = await connect('relay.abuser.example', { ADDR: RELAY_ABUSER, NAME: '[UNAVAILABLE]' });
    const abuser = 'promo@abuser.example';
    replies.set('relay-mixed', await smtp.sendMessage(abuser, [FOREIGN[0], ALICE], plain(abuser, 'mixed')));
    replies.set('relay-only', await smtp.sendMessage(abuser, [FOREIGN[1], PERCENT_HACK, FOREIGN[2]], plain(abuser, 'only foreign')));
    await smtp.rset();
    await smtp.quit();

    const get = (name: string): { mail: SmtpReply; rcpts: readonly SmtpReply[]; final?: SmtpReply } => replies.get(name) as { mail: SmtpReply; rcpts: readonly SmtpReply[]; final?: SmtpReply };
    assert.equal(get('clean').final?.code, 250, JSON.stringify(get('clean')));
    assert.equal(get('eicar').final?.code, 554, JSON.stringify(get('eicar')));
    assert.match(get('eicar').final?.raw ?? '', /5\.7\.0 .*Eicar-Test-Signature/);
    assert.equal(get('banned').final?.code, 554, JSON.stringify(get('banned')));
    assert.match(get('banned').final?.raw ?? '', /5\.7\.0 /);
    assert.equal(get('worm').final?.code, 554, JSON.stringify(get('worm')));
    assert.match(get('worm').final?.raw ?? '', /Win\.Worm\.TestMydoom/);
    const mixed = get('relay-mixed');
    assert.deepEqual(mixed.rcpts.map((r) => r.code), [554, 250], JSON.stringify(mixed));
    assert.match(mixed.rcpts[0]?.raw ?? '', /5\.7\.1 /);
    assert.equal(mixed.final?.code, 250, JSON.stringify(mixed));
    const only = get('relay-only');
    assert.deepEqual(only.rcpts.map((r) => r.code), [554, 554, 554], JSON.stringify(only));
    assert.equal(only.final, undefined);
  });

  test('each message has one JSON log line with queue id, client address and name, sender, counts, size, verdict, reasons and timings', async () => {
    const g = gw();
    // The relay-only transaction is logged when Postfix aborts it (RSET), after the last reply.
    await g.waitForLog((l) => l.msg === 'message' && l['verdict'] === 'refused-envelope', 10_000);
    const lines = g.messageLines();
    assert.equal(lines.length, 6, lines.map((l) => JSON.stringify(l)).join('\n'));
    const [clean, eicar, banned, worm, mixed, only] = lines as [LogLine, LogLine, LogLine, LogLine, LogLine, LogLine];

    const queueIds = new Set<string>();
    for (const l of [clean, eicar, banned, worm, mixed]) {
      const context = JSON.stringify(l);
      assert.match(String(l['queueId']), /^[0-9A-Za-z]{6,}$/, context);
      queueIds.add(String(l['queueId']));
      assert.equal(l['recipients'], 1, context);
      assert.equal(typeof l['size'], 'number', context);
      assert.ok((l['size'] as number) > 100, context);
      assert.ok(Array.isArray(l['reasons']), context);
      assert.equal(typeof l['scanMs'], 'number', context);
      assert.equal(typeof l['totalMs'], 'number', context);
      assert.ok((l['scanMs'] as number) >= 0 && (l['totalMs'] as number) >= (l['scanMs'] as number) - 1, context);
      assert.ok((l['totalMs'] as number) < 30_000, context);
    }
    assert.equal(queueIds.size, 5, 'every message its own queue id');

    assert.equal(clean['client'], '127.0.0.1');
    // The private Postfix looks no name up (no DNS here): it names an unknown client by its bracketed address.
    assert.equal(clean['clientName'], '[127.0.0.1]');
    assert.equal(clean['sender'], '<sender@example.org>');
    assert.equal(clean['verdict'], 'accepted');
    assert.deepEqual(clean['reasons'], []);

    for (const l of [eicar, banned, worm]) {
      assert.equal(l['client'], INBOUND_MX, JSON.stringify(l));
      assert.equal(l['clientName'], INBOUND_MX_NAME, JSON.stringify(l));
      assert.equal(l['sender'], '<someone@sender.example>');
      assert.equal(l['verdict'], 'rejected');
    }
    // The size is what the milter saw: our message plus the headers Postfix added.
    const wormMessage = withAttachment('someone@sender.example', 'update', FILES.worm, 'application/octet-stream', fakeWormExe());
    assert.ok((worm['size'] as number) >= wormMessage.length - 200, `size ${String(worm['size'])} for a ${wormMessage.length}-byte message`);

    const reasons = (l: LogLine): string => (l['reasons'] as string[]).join(' | ');
    assert.match(reasons(eicar), new RegExp(`virus: ${SIGNATURES.eicar.replace(/\./g, '\\.')}`));
    assert.match(reasons(banned), /banned-extension: invoice\.exe/);
    assert.doesNotMatch(reasons(banned), /virus/);
    assert.match(reasons(worm), new RegExp(`virus: ${SIGNATURES.worm.replace(/\./g, '\\.')}`));
    assert.match(reasons(worm), /update\.exe/);

    assert.equal(mixed['client'], RELAY_ABUSER);
    assert.equal(mixed['clientName'], `[${RELAY_ABUSER}]`, 'XCLIENT NAME=[UNAVAILABLE]');
    assert.equal(mixed['sender'], '<promo@abuser.example>');
    assert.equal(mixed['verdict'], 'accepted');
    assert.equal(mixed['refusedRecipients'], 1);

    // The transaction that never reached DATA: no size or scan, but who, what and which rules.
    assert.equal(only['client'], RELAY_ABUSER);
    assert.equal(only['clientName'], `[${RELAY_ABUSER}]`);
    assert.equal(only['sender'], '<promo@abuser.example>');
    assert.equal(only['recipients'], 0);
    assert.equal(only['refusedRecipients'], 3);
    assert.match(reasons(only), /relay-denied/);
    assert.match(reasons(only), /percent-hack/);
    assert.equal(typeof only['totalMs'], 'number');
  });

  test('the log line names the HELO the client gave', () => {
    const helos = gw().messageLines().map((l) => l['helo']);
    assert.deepEqual(helos, ['client.example.org', INBOUND_MX_NAME, INBOUND_MX_NAME, INBOUND_MX_NAME, 'relay.abuser.example', 'relay.abuser.example']);
  });

  test('every dashboard query returns a finite value, and the instance variable lists the milter', async () => {
    const p = prom();
    // A scrape after the last message (5 messages reached a verdict; the relay-only transaction never did).
    await p.waitForData(`sum(pmt_messages_total{instance="${target}"}) == 5`, 10_000);
    await p.waitForData(`sum(pmt_recipients_total{instance="${target}"}) == 9`, 10_000);
    const expressions = dashboardExpressions(DASHBOARD, { range: '10m', rateInterval: '1m' });
    assert.ok(expressions.length > 40, `${expressions.length} expressions`);
    const empty: string[] = [];
    for (const e of expressions) {
      const result = await p.query(e.expr);
      if (!result.some((s) => Number.isFinite(Number(s.value)))) empty.push(`${e.source} ${e.name}: ${e.expr} → ${JSON.stringify(result)}`);
    }
    assert.deepEqual(empty, [], `queries without data:\n${empty.join('\n')}`);

    const variable = expressions.find((e) => e.source === 'variable' && e.name === 'instance');
    assert.ok(variable);
    assert.deepEqual((await p.query(variable.expr)).map((s) => s.metric['instance']), [target]);

    // The "top" panels show what was sent, not just zeros.
    const top = async (title: string): Promise<Record<string, number>> => {
      const e = expressions.find((x) => x.name.startsWith(title));
      assert.ok(e, title);
      return Object.fromEntries((await p.query(e.expr)).map((s) => [Object.values(s.metric)[0] ?? '', Math.round(Number(s.value))]));
    };
    assert.deepEqual(Object.keys(await top('Top virus platforms')).sort(), ['Win', 'other']);
    assert.deepEqual(Object.keys(await top('Top virus categories')).sort(), ['Worm', 'other']);
    assert.ok(Object.keys(await top('Top blocked extensions')).includes('exe'));
  });

  test('the alert rules load and evaluate healthy; every metric they name has data; the old-signature alert holds', async () => {
    const p = prom();
    const expressions = ruleExpressions(readFileSync(ALERTS_FILE, 'utf8'));
    assert.equal(expressions.length, 9);
    const missing: string[] = [];
    for (const e of expressions) {
      for (const name of metricNamesIn(e.expr)) {
        // Exposed only with a Redis rate-limit store; this gateway counts in memory.
        if (name === 'pmt_rate_limit_store_up') continue;
        if ((await p.query(`${name}{instance="${target}"}`)).length === 0) missing.push(`${e.name}: ${name}`);
      }
    }
    assert.deepEqual(missing, [], `metrics named by alerts without data:\n${missing.join('\n')}`);

    const rules = await waitFor('every rule evaluated', async () => {
      const r = await p.rules();
      return r.length === 9 && r.every((x) => x.health === 'ok') ? r : undefined;
    }, 10_000);
    assert.deepEqual(rules.map((r) => r.type), Array(9).fill('alerting'));

    const byName = new Map(expressions.map((e) => [e.name, e.expr]));
    // Our daily database was built on DAILY_BUILD_TIME, days ago: the outdated-signatures condition holds.
    assert.ok(Date.now() - DAILY_BUILD_TIME.getTime() > 86_400_000, 'the test database must be older than a day');
    assert.ok((await p.query(byName.get('ClamdSignaturesOutdated') as string)).length > 0);
    // While everything is fine, the down alerts see nothing.
    for (const name of ['PostfixMilterDown', 'ClamdEndpointDown', 'ClamdAllDown', 'ClamdHealthCheckStale', 'MilterConfigReloadFailed', 'MilterTempfailRatioHigh', 'RateLimitStoreDown']) {
      assert.deepEqual(await p.query(byName.get(name) as string), [], `${name} holds while everything is up`);
    }
  });

  test('no address, domain, IP, file name, queue id or signature name is a label of the real exposition', async () => {
    const r = await fetch(`${metricsUrl}/metrics`);
    assert.equal(r.status, 200);
    const text = await r.text();
    const values = new Set<string>();
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || !line.includes('{')) continue;
      const labels = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
      for (const m of labels.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) values.add(m[2] as string);
    }
    assert.ok(values.has('exe') && values.has('Win') && values.has('relay-denied'), 'the exposition has the bounded labels this traffic fed');
    const queueIds = gw().messageLines().map((l) => l['queueId']).filter((q): q is string => typeof q === 'string');
    const forbidden = [
      ALICE, ...FOREIGN, PERCENT_HACK, 'sender@example.org', 'someone@sender.example', 'promo@abuser.example',
      'example.test', 'elsewhere.example', 'example.org', 'sender.example', 'abuser.example', INBOUND_MX_NAME, 'client.example.org',
      RELAY_ABUSER, INBOUND_MX, '127.0.0.1',
      ...Object.values(FILES), 'invoice', 'readme', 'update',
      SIGNATURES.eicar, SIGNATURES.worm, 'Eicar', 'TestMydoom',
      ...queueIds,
    ].map((s) => s.toLowerCase());
    const leaks: string[] = [];
    for (const v of values) {
      const lower = v.toLowerCase();
      for (const f of forbidden) if (lower.includes(f)) leaks.push(`${v} (contains ${f})`);
      if (v.includes('@')) leaks.push(`${v} (an address)`);
      if (/\b\d{1,3}(?:\.\d{1,3}){3}\b/.test(v) || /[0-9a-f]{0,4}:[0-9a-f]{0,4}:[0-9a-f:]*/i.test(v)) leaks.push(`${v} (an IP)`);
      if (/\.(?:exe|txt|zip|com|scr)$/i.test(v)) leaks.push(`${v} (a file or domain name)`);
    }
    assert.deepEqual(leaks, []);
  });

  test('/healthz is 200 while clamd answers, and `postfix-milter-ts offenders` lists the relay abuser first', async () => {
    const health = await fetch(`${metricsUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await health.text()).trim(), 'ok');

    const { code, stdout, stderr } = await runCli(['offenders', '--metrics-listen', target]);
    assert.equal(code, 0, stderr);
    const rows = stdout.trim().split('\n').slice(1);
    assert.ok(rows.length >= 2, stdout);
    // 192.0.2.77: four refused recipients; 198.51.100.23: three rejected messages.
    assert.match(rows[0] ?? '', new RegExp(`^\\s*4\\s+${RELAY_ABUSER.replace(/\./g, '\\.')}\\s`), stdout);
    assert.match(rows[1] ?? '', new RegExp(`^\\s*3\\s+${INBOUND_MX.replace(/\./g, '\\.')}\\s`), stdout);

    const json = await runCli(['offenders', '--metrics-listen', target, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const body = JSON.parse(json.stdout) as { offenders: Array<{ address: string; refusals: number; lastRule?: string }> };
    assert.equal(body.offenders[0]?.address, RELAY_ABUSER);
    assert.equal(body.offenders[0]?.refusals, 4);
  });

  test('with clamd stopped: /healthz 503 with the reason, mail is tempfailed, and the clamd-down and tempfail alerts see it', async () => {
    await (clamd as ClamdInstance).stop();
    const reason = await waitFor('/healthz to turn 503', async () => {
      const r = await fetch(`${metricsUrl}/healthz`);
      const text = await r.text();
      return r.status === 503 ? text : undefined;
    }, 10_000);
    assert.match(reason, /^unhealthy: no clamd endpoint answered its last check/);

    // Never accept unscanned mail.
    const offendersBefore = await (await fetch(`${metricsUrl}/offenders`)).json();
    const smtp = await connect('client.example.org');
    const r = await smtp.sendMessage('sender@example.org', [ALICE], plain('sender@example.org', 'while clamd is down'));
    await smtp.quit();
    replies.set('clamd-down', r);
    assert.equal(r.final?.code, 451, JSON.stringify(r));
    const line = await gw().waitForLog((l) => l.msg === 'message' && l['verdict'] === 'tempfailed', 10_000);
    assert.match((line['reasons'] as string[]).join(' '), /virus check failed/);
    // Our checks failing makes no client an offender.
    assert.deepEqual(await (await fetch(`${metricsUrl}/offenders`)).json(), offendersBefore);

    const p = prom();
    const byName = new Map(ruleExpressions(readFileSync(ALERTS_FILE, 'utf8')).map((e) => [e.name, e.expr]));
    for (const name of ['ClamdAllDown', 'ClamdEndpointDown', 'MilterTempfailRatioHigh']) {
      const result = await p.waitForData(byName.get(name) as string, 15_000);
      assert.equal(result[0]?.metric['instance'], target, name);
    }
    // The dashboard's clamd stat panel shows it as well.
    assert.equal(await scalar(`min(pmt_clamd_up{instance="${target}"})`), 0);
  });

  describe('Prometheus stored exactly what the test sent', () => {
    before(async () => {
      // A scrape after the tempfailed message.
      await prom().waitForData(`sum(pmt_messages_total{instance="${target}"}) == 6`, 10_000);
    });

    test('messages by verdict and recipients by outcome', async () => {
      // accept: clean, relay-mixed; reject: eicar, banned, worm; tempfail: the one sent while clamd was down.
      assert.deepEqual(await countsBy('pmt_messages_total', 'verdict'), { accept: 2, reject: 3, tempfail: 1 });
      // accepted: one per message (6); rejected: one in relay-mixed, three in relay-only.
      assert.deepEqual(await countsBy('pmt_recipients_total', 'outcome'), { accepted: 6, rejected: 4 });
      assert.equal(await scalar(`sum(pmt_message_processing_seconds_count{instance="${target}"})`), 6);
      assert.equal(await scalar(`sum(pmt_message_size_bytes_count{instance="${target}"})`), 6);
      assert.ok((await scalar(`sum(pmt_connections_total{instance="${target}"})`)) >= 4);
    });

    test('relay rejections by rule, and no rate limit was hit', async () => {
      assert.deepEqual(await countsBy('pmt_relay_rejections_total', 'rule'), { 'relay-denied': 3, 'percent-hack': 1 });
      assert.deepEqual(await countsBy('pmt_rate_limit_hits_total', 'kind'), {});
    });

    test('virus detections by platform and category, and clamd scans by result', async () => {
      assert.deepEqual(await countsBy('pmt_virus_detections_total', 'platform'), { other: 1, Win: 1 });
      assert.deepEqual(await countsBy('pmt_virus_detections_by_category_total', 'category'), { other: 1, Worm: 1 });
      assert.equal(await scalar(`sum(pmt_virus_detections_unofficial_total{instance="${target}"})`), 2);
      // clean: clean, banned, relay-mixed; infected: eicar, worm; unreachable: the message after clamd stopped.
      assert.deepEqual(await countsBy('pmt_clamd_scans_total', 'result'), { clean: 3, infected: 2, unreachable: 1 });
      assert.equal(await scalar(`sum(pmt_clamd_scan_duration_seconds_count{instance="${target}"})`), 6);
      assert.ok((await scalar(`sum(pmt_clamd_scanned_bytes_total{instance="${target}"})`)) > 2 * 1024);
    });

    test('blocked attachments by rule (the finding kind) and by extension', async () => {
      // invoice.exe and update.exe: each is a banned extension and Windows executable content.
      // One per blocked file: the PE named .exe is counted once, under the finding that names the extension.
      assert.deepEqual(await countsBy('pmt_attachments_blocked_total', 'rule'), { 'banned-extension': 2 });
      const byExtension = await countsBy('pmt_attachments_blocked_by_extension_total', 'extension');
      assert.deepEqual(byExtension, { exe: 2 });
    });
  });
});
