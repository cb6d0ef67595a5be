// Faults the gateway must survive, end to end: the product (`serve` as a child process) behind a real Postfix,
// with a real clamd, a fake clamd for the faults a real one will not produce on demand, and a real Redis for
// the shared rate-limit counters. Each test checks what the MTA sees (SMTP replies through Postfix, or milter
// replies where the MTA is our MilterClient), that no mail that should be refused or tempfailed was
// delivered, and that the gateway's open descriptors and resident memory return to their baseline.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { MacroPair } from '@postfix-milter-ts/protocol';
import { MilterClient } from '@postfix-milter-ts/protocol/testing';
import { ClamdInstance, EICAR } from '../harness/clamd-instance.js';
import { FakeClamd, type FakeScanBehavior } from '../harness/fake-clamd.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { RedisInstance } from '../harness/redis-instance.js';
import { SmtpClient, type TransactionResult } from '../harness/smtp-client.js';

const MAX_SESSIONS = 40;
const SCANNED = /^X-Virus-Scanned: postfix-milter-ts with ClamAV$/m;

let clamd: ClamdInstance;
let fake: FakeClamd;
const redis = new RedisInstance();
let gateway: GatewayProcess;
let postfix: PostfixInstance;

function config(clamdEndpoint: string): string {
  return `
milter:
  listen: inet:127.0.0.1:0
  maxSessions: ${MAX_SESSIONS}
  idleTimeout: 20s
relay:
  localDomains: [example.test]
rateLimit:
  store:
    type: redis
    url: ${redis.url}
    commandTimeout: 200ms
    connectTimeout: 500ms
    fallback: local
clamav:
  endpoints: [${clamdEndpoint}]
  connectTimeout: 1s
  scanDeadline: 3s
  sendTimeout: 3s
  reprobeInterval: 500ms
  healthCheckInterval: 1h
  admissionWait: 2s
metrics:
  port: 0
`;
}

before(async () => {
  await redis.start();
  [clamd, fake] = await Promise.all([ClamdInstance.start(), FakeClamd.start()]);
  gateway = await GatewayProcess.start({ config: config(clamd.unixEndpoint) });
  postfix = new PostfixInstance({
    milter: gateway.milterAddress,
    mailboxes: ['alice'],
    milterTimeouts: { connect: '2s', command: '10s', content: '15s' },
    mainCf: { smtpd_relay_restrictions: 'check_client_access static:OK, reject_unauth_destination' },
  });
  await postfix.start();
});

after(async () => {
  await postfix?.stop();
  await gateway?.stop();
  await Promise.all([clamd?.destroy(), fake?.stop(), redis.dispose()]);
});

// --- helpers -------------------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

function pid(): number {
  const p = gateway.child?.pid;
  assert.ok(p !== undefined && gateway.exitCode === undefined, 'the gateway is running');
  return p;
}
const fds = (): number => readdirSync(`/proc/${pid()}/fd`).length;
const rssMiB = (): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid()}/status`, 'utf8'))?.[1]) / 1024;

interface Baseline {
  readonly fds: number;
  readonly rss: number;
}
async function baseline(): Promise<Baseline> {
  await sleep(200);
  return { fds: fds(), rss: rssMiB() };
}
/** Descriptors back to the baseline (exactly: transient probes are waited out), memory near it. */
async function backToBaseline(b: Baseline, rssSlackMiB = 40): Promise<void> {
  await waitFor(`gateway descriptors back to ${b.fds} (now ${fds()})`, () => fds() <= b.fds);
  const rss = rssMiB();
  assert.ok(rss < b.rss + rssSlackMiB, `RSS ${rss.toFixed(1)} MiB, baseline ${b.rss.toFixed(1)} MiB`);
}

/** One scrape on a connection of its own, closed after it (a kept-alive one would count as a descriptor for 5 s). */
function scrape(): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port: gateway.metricsPort, path: '/metrics', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(text)).on('error', reject);
    }).on('error', reject);
  });
}

async function metric(name: string, labels = ''): Promise<number> {
  const text = await scrape();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function message(subject: string, body = 'Hello.\r\n'): string {
  return `From: sender@example.org\r\nTo: alice@example.test\r\nSubject: ${subject}\r\n\r\n${body}`;
}
const eicarMessage = (subject: string): string => message(subject, `see below\r\n${EICAR.toString('latin1')}\r\n`);

async function smtpSend(msg: string): Promise<TransactionResult> {
  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix.smtpPort });
  try {
    await smtp.ehlo('client.example.org');
    return await smtp.sendMessage('sender@example.org', ['alice@example.test'], msg);
  } finally {
    await smtp.quit().catch(() => smtp.destroy());
  }
}

async function delivered(): Promise<string[]> {
  return postfix.readMessages('alice');
}

/** Delivered messages whose Subject is exactly `subject`. */
async function deliveredWithSubject(subject: string): Promise<string[]> {
  return (await delivered()).filter((m) => m.includes(`\nSubject: ${subject}\n`) || m.includes(`\nSubject: ${subject}\r\n`));
}

/** Mail refused or tempfailed must not be delivered: checks a while after the refusal. */
async function assertNotDelivered(...subjects: string[]): Promise<void> {
  await sleep(300);
  for (const s of subjects) assert.deepEqual(await deliveredWithSubject(s), [], `'${s}' must not be delivered`);
}

async function assertDeliveredScanned(subject: string): Promise<void> {
  await waitFor(`'${subject}' delivered`, async () => (await deliveredWithSubject(subject)).length === 1);
  const [m] = await deliveredWithSubject(subject);
  assert.match(m ?? '', SCANNED, 'delivered mail carries the scanned header');
}

const CONNECT_MACROS: readonly MacroPair[] = [['j', 'mx.example.test'], ['v', 'Postfix 3.7.11'], ['{daemon_addr}', '127.0.0.1']];

/** A MilterClient session that has sent CONNECT and MAIL/RCPT and the headers of a message. */
async function sessionInMessage(subject: string): Promise<MilterClient> {
  const c = await MilterClient.connect(gateway.milterAddress, { replyTimeoutMs: 15_000 });
  await c.negotiate();
  const r = await c.send({ type: 'connect', hostname: 'localhost', family: '4', port: 40000, address: '127.0.0.1' }, CONNECT_MACROS);
  assert.equal(r, undefined, 'the gateway waives its CONNECT reply (NR_CONN)');
  await c.send({ type: 'helo', name: 'client.example.org' });
  await c.send({ type: 'mail', sender: '<sender@example.org>', esmtpArgs: [] }, [['i', 'ABC123']]);
  await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
  await c.send({ type: 'header', name: 'From', value: ' sender@example.org' });
  await c.send({ type: 'header', name: 'Subject', value: ` ${subject}` });
  await c.send({ type: 'eoh' });
  return c;
}

/** A 200 kB body with EICAR near its start: whatever happens to the scan, this must never be accepted. */
const INFECTED_BODY = Buffer.concat([Buffer.from(`EICAR follows\r\n${EICAR.toString('latin1')}\r\n`, 'latin1'), Buffer.alloc(200_000, 'abcdefgh\r\n')]);

function isTempfail(reply: { final: { type: string; text?: string } } | undefined): boolean {
  if (!reply) return false;
  if (reply.final.type === 'tempfail') return true;
  return reply.final.type === 'replycode' && /^4\d\d /.test(reply.final.text ?? '');
}

// --- tests ---------------------------------------------------------------------------------------------

test('baseline: clean mail is delivered scanned, EICAR is refused', async () => {
  const clean = await smtpSend(message('fault-baseline-clean'));
  assert.equal(clean.final?.code, 250, JSON.stringify(clean));
  const infected = await smtpSend(eicarMessage('fault-baseline-eicar'));
  assert.equal(infected.final?.code, 554, JSON.stringify(infected));
  await assertDeliveredScanned('fault-baseline-clean');
  await assertNotDelivered('fault-baseline-eicar');
});

test('clamd killed mid-scan: the message in flight is tempfailed, and so is all mail while clamd is down', async () => {
  const b = await baseline();
  const c = await sessionInMessage('killed-mid-scan');
  await c.body(INFECTED_BODY.subarray(0, 100_000));
  // The scan is streaming: our milter connection and the INSTREAM connection to clamd are open.
  await waitFor('the INSTREAM connection', () => clamd.unixConnections() === 1);
  await clamd.kill();
  await c.body(INFECTED_BODY.subarray(100_000));
  const eom = await c.send({ type: 'eom', chunk: Buffer.alloc(0) });
  assert.ok(isTempfail(eom), `EOM after clamd died: ${JSON.stringify(eom?.final)}`);
  await c.quit();

  // Through Postfix while clamd is down: 4xx for clean and infected mail alike, nothing delivered.
  const clean = await smtpSend(message('clamd-down-clean'));
  const infected = await smtpSend(eicarMessage('clamd-down-eicar'));
  assert.equal(Math.floor((clean.final?.code ?? 0) / 100), 4, JSON.stringify(clean));
  assert.equal(Math.floor((infected.final?.code ?? 0) / 100), 4, JSON.stringify(infected));
  await assertNotDelivered('clamd-down-clean', 'clamd-down-eicar');
  assert.equal(await metric('pmt_clamd_up', '{endpoint="0"}'), 0);
  await backToBaseline(b);
});

test('clamd restarted: mail flows again at once, scanned; EICAR refused', async () => {
  const b = await baseline();
  await clamd.restart();
  const t0 = Date.now();
  const clean = await smtpSend(message('clamd-back-clean'));
  assert.equal(clean.final?.code, 250, JSON.stringify(clean));
  assert.ok(Date.now() - t0 < 5000);
  const infected = await smtpSend(eicarMessage('clamd-back-eicar'));
  assert.equal(infected.final?.code, 554, JSON.stringify(infected));
  await assertDeliveredScanned('clamd-back-clean');
  await assertNotDelivered('clamd-back-eicar');
  await waitFor('pmt_clamd_up 1', async () => (await metric('pmt_clamd_up', '{endpoint="0"}')) === 1);
  await backToBaseline(b, 20);
});

test('a clamd answering garbage, resetting mid-scan or never answering: 4xx within the deadline, nothing delivered', async () => {
  const reload = await gateway.reload(config(fake.endpoint));
  assert.equal(reload.msg.startsWith('config reloaded'), true, JSON.stringify(reload));
  await sleep(300);
  const b = await baseline();
  try {
    const cases: Array<[string, FakeScanBehavior]> = [
      ['garbage', { kind: 'reply', reply: '\x01\x02 <html>what?</html>' }],
      ['empty reply', { kind: 'reply', reply: '' }],
      ['error', { kind: 'reply', reply: 'INSTREAM: Can\'t allocate memory ERROR' }],
      ['close mid-scan', { kind: 'close-mid-scan', afterBytes: 10 }],
      ['reset mid-scan', { kind: 'close-mid-scan', afterBytes: 10, reset: true }],
      ['stall', { kind: 'stall' }],
    ];
    for (const [what, behavior] of cases) {
      fake.scanBehavior = behavior;
      for (const subject of [`fake-${what}-clean`, `fake-${what}-eicar`]) {
        const from = gateway.logs.length;
        const t0 = Date.now();
        const result = await smtpSend(subject.endsWith('eicar') ? eicarMessage(subject) : message(subject));
        const smtpMs = Date.now() - t0;
        // Our own tempfail, not Postfix's after its milter timeout (15 s here), and the client is not kept near that.
        assert.match(result.final?.raw ?? '', /^451 4\.7\.1 Message could not be checked/, `${what}: ${JSON.stringify(result)}`);
        assert.ok(smtpMs < 10_000, `${what}: ${smtpMs} ms at the SMTP client`);
        // The deadline as the gateway kept it, from end of data to its verdict (a host slow to schedule Postfix or
        // this test adds to the SMTP time, not to this): a failure is answered without waiting for the 3 s scan
        // deadline; a stalled scan ends at it.
        const line = await gateway.waitForLog((l) => l.msg === 'message', 5000, from);
        const eomMs = Number(line['eomMs']);
        console.log(`# fake clamd ${what}: ${eomMs} ms from end of data to the verdict, ${smtpMs} ms at the SMTP client`);
        if (what === 'stall') assert.ok(eomMs >= 2900 && eomMs < 3500, `${what}: ${JSON.stringify(line)}`);
        else assert.ok(eomMs < 2000, `${what}: ${JSON.stringify(line)}`);
      }
      await assertNotDelivered(`fake-${what}-clean`, `fake-${what}-eicar`);
    }
    assert.ok((await metric('pmt_clamd_scans_total', '{result="timeout"}')) >= 2);
    assert.ok((await metric('pmt_clamd_scans_total', '{result="protocol"}')) + (await metric('pmt_clamd_scans_total', '{result="error"}')) >= 6);
    fake.scanBehavior = { kind: 'detect' };
    await waitFor('the fake to have no open connections', () => fake.openConnections === 0);
    await backToBaseline(b, 20);
  } finally {
    fake.scanBehavior = { kind: 'detect' };
    await gateway.reload(config(clamd.unixEndpoint));
  }
  const again = await smtpSend(message('after-fake-clean'));
  assert.equal(again.final?.code, 250, JSON.stringify(again));
  await assertDeliveredScanned('after-fake-clean');
});

test("clamd's StreamMaxLength below clamav.maxScanBytes: the message is too large to scan, 552 5.3.4 (actions.oversize), not a tempfail", async () => {
  const reload = await gateway.reload(config(fake.endpoint));
  assert.equal(reload.msg.startsWith('config reloaded'), true, JSON.stringify(reload));
  fake.streamMaxLength = 20_000;
  try {
    const big = await smtpSend(message('over-clamd-limit', 'abcdefgh\r\n'.repeat(5000)));
    assert.match(big.final?.raw ?? '', /^552 5\.3\.4 /, JSON.stringify(big));
    const small = await smtpSend(message('under-clamd-limit'));
    assert.equal(small.final?.code, 250, JSON.stringify(small));
    await assertNotDelivered('over-clamd-limit');
    await assertDeliveredScanned('under-clamd-limit');
  } finally {
    fake.streamMaxLength = 100 * 1024 * 1024;
    await gateway.reload(config(clamd.unixEndpoint));
  }
});

test('a clamd whose connect never completes (accept queue full): 4xx after clamav.connectTimeout, nothing delivered', async () => {
  // A listener that never accepts, with its backlog filled: further SYNs are dropped, so connect() hangs, as it
  // does with an overloaded clamd. A Node child listens with backlog 1 (0 would mean Node's default) and then
  // blocks its own event loop, so the kernel queues connections nobody takes.
  const listener = spawn(
    process.execPath,
    ['-e', "const s=require('net').createServer();s.listen({host:'127.0.0.1',port:0,backlog:1},()=>{process.stdout.write(s.address().port+'\\n',()=>Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,60000))})"],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: Socket[] = [];
  try {
    const port = await new Promise<number>((resolve, reject) => {
      listener.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      listener.once('exit', () => reject(new Error('the listener exited')));
    });
    for (let i = 0; i < 3; i++) {
      const f = connect({ host: '127.0.0.1', port });
      f.on('error', () => undefined);
      fillers.push(f);
    }
    await sleep(300);
    const reload = await gateway.reload(config(`inet:127.0.0.1:${port}`));
    assert.ok(reload.msg.startsWith('config reloaded'), JSON.stringify(reload));
    const t0 = Date.now();
    const clean = await smtpSend(message('connect-hangs-clean'));
    const ms = Date.now() - t0;
    assert.equal(Math.floor((clean.final?.code ?? 0) / 100), 4, JSON.stringify(clean));
    assert.ok(ms >= 900 && ms < 4000, `${ms} ms; connectTimeout is 1 s`);
    await assertNotDelivered('connect-hangs-clean');
    assert.ok(gateway.logs.some((l) => l.msg === 'message' && JSON.stringify(l['reasons'] ?? '').includes('unreachable')) || (await metric('pmt_clamd_scans_total', '{result="unreachable"}')) >= 1);
  } finally {
    for (const f of fillers) f.destroy();
    listener.kill('SIGKILL');
    await gateway.reload(config(clamd.unixEndpoint));
  }
  const again = await smtpSend(message('after-connect-hangs-clean'));
  assert.equal(again.final?.code, 250, JSON.stringify(again));
  await assertDeliveredScanned('after-connect-hangs-clean');
});

test('Redis down or hung: rate limits fall back to local counters within the command timeout; mail flows', async () => {
  const fallbacks0 = await metric('pmt_redis_fallbacks_total');
  const b = await baseline();
  await redis.kill();
  const t0 = Date.now();
  const down = await smtpSend(message('redis-down-clean'));
  assert.equal(down.final?.code, 250, JSON.stringify(down));
  const infected = await smtpSend(eicarMessage('redis-down-eicar'));
  assert.equal(infected.final?.code, 554, JSON.stringify(infected));
  assert.ok(Date.now() - t0 < 4000, `${Date.now() - t0} ms for two messages with Redis down`);

  await redis.restart();
  await sleep(1500); // ioredis reconnects on its own
  redis.pause(); // connected but silent: every command must give up after commandTimeout (200 ms)
  try {
    const t1 = Date.now();
    const hung = await smtpSend(message('redis-hung-clean'));
    assert.equal(hung.final?.code, 250, JSON.stringify(hung));
    // CONNECT, MAIL and RCPT each ask Redis: at most ~3 × 200 ms added.
    assert.ok(Date.now() - t1 < 3000, `${Date.now() - t1} ms with Redis hung`);
  } finally {
    redis.resume();
  }
  await assertDeliveredScanned('redis-down-clean');
  await assertDeliveredScanned('redis-hung-clean');
  await assertNotDelivered('redis-down-eicar');
  assert.ok((await metric('pmt_redis_fallbacks_total')) > fallbacks0, 'the fallback was counted');
  await sleep(1000);
  await backToBaseline(b, 20);
});

test('MTA disconnecting mid-body: the scan and its clamd connection are released', async () => {
  const b = await baseline();
  const scans0 = await metric('pmt_clamd_scans_total', '{result="clean"}');
  for (let i = 0; i < 5; i++) {
    const c = await sessionInMessage(`disconnect-${i}`);
    await c.body(INFECTED_BODY.subarray(0, 150_000));
    await waitFor('the INSTREAM connection', () => clamd.unixConnections() === 1);
    await c.close(); // no EOM, no ABORT: the MTA just goes away
    await waitFor(`no clamd connection left after disconnect ${i}`, () => clamd.unixConnections() === 0);
  }
  assert.equal(await metric('pmt_clamd_scans_total', '{result="clean"}'), scans0, 'no aborted scan counted as clean');
  assert.equal(await metric('pmt_sessions_active'), 0);
  await backToBaseline(b, 20);
});

test('ABORT mid-body: the scan is released and the next message on the same connection is scanned normally', async () => {
  const b = await baseline();
  const c = await sessionInMessage('aborted');
  try {
    await c.body(INFECTED_BODY.subarray(0, 150_000));
    await waitFor('the INSTREAM connection', () => clamd.unixConnections() === 1);
    await c.send({ type: 'abort' });
    await waitFor('the clamd connection closed', () => clamd.unixConnections() === 0);
    // A second message, infected, on the same session: refused with the signature, not confused with the first.
    await c.send({ type: 'mail', sender: '<sender@example.org>', esmtpArgs: [] }, [['i', 'DEF456']]);
    await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    await c.send({ type: 'header', name: 'Subject', value: ' second' });
    await c.send({ type: 'eoh' });
    await c.body(INFECTED_BODY);
    const eom = await c.send({ type: 'eom', chunk: Buffer.alloc(0) });
    assert.equal(eom?.final.type, 'replycode');
    assert.match(eom?.final.type === 'replycode' ? eom.final.text : '', /^554 5\.7\.0 .*Eicar-Test-Signature/);
  } finally {
    await c.quit().catch(() => c.close());
  }
  await backToBaseline(b, 20);
});

test(`2000 concurrent MTA connections against milter.maxSessions ${MAX_SESSIONS}: the extra ones are refused, the process stays up and returns to its baseline`, async () => {
  const b = await baseline();
  const overload0 = await metric('pmt_overload_tempfails_total', '{reason="max-sessions"}');
  await metric('nodejs_eventloop_lag_max_seconds'); // resets prom-client's event-loop histogram
  const N = 2000;
  let peakRss = 0;
  let peakFds = 0;
  const sampler = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, rssMiB());
      peakFds = Math.max(peakFds, fds());
    } catch {
      // the process went away: asserted below
    }
  }, 50);
  type Outcome = 'served' | 'tempfail-451' | 'closed' | 'other';
  const held: MilterClient[] = [];
  const t0 = Date.now();
  const outcomes = await Promise.all(
    Array.from({ length: N }, async (_, i): Promise<Outcome> => {
      let c: MilterClient | undefined;
      try {
        c = await MilterClient.connect(gateway.milterAddress, { replyTimeoutMs: 30_000 });
        await c.negotiate();
        const r = await c.send({ type: 'connect', hostname: 'localhost', family: '4', port: 10_000 + i, address: '127.0.0.1' }, CONNECT_MACROS);
        // A served session waives its CONNECT reply; one over the limit negotiated without that and answers 451.
        if (r === undefined) {
          held.push(c);
          return 'served';
        }
        await c.quit();
        if (r?.final.type === 'replycode' && r.final.text.startsWith('451 4.3.2 ')) return 'tempfail-451';
        return 'other';
      } catch {
        // Past maxSessions plus a small allowance of polite refusals, connections are closed at once: the MTA
        // applies milter_default_action (tempfail).
        c?.close().catch(() => undefined);
        return 'closed';
      }
    }),
  );
  const floodMs = Date.now() - t0;
  const count = (o: Outcome): number => outcomes.filter((x) => x === o).length;
  // While the served ones are still held, the gateway is at its limit: a session beyond it is tempfailed.
  assert.ok(count('served') <= MAX_SESSIONS, `${count('served')} sessions served, limit ${MAX_SESSIONS}`);
  assert.equal(count('other'), 0);
  assert.ok(count('tempfail-451') >= 1, JSON.stringify({ served: count('served'), t451: count('tempfail-451'), closed: count('closed') }));
  assert.equal(count('served') + count('tempfail-451') + count('closed'), N);
  // The sessions that got in work normally: a whole message on one of them is scanned and accepted.
  const first = held[0];
  assert.ok(first !== undefined);
  await first.send({ type: 'mail', sender: '<sender@example.org>', esmtpArgs: [] });
  await first.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
  await first.send({ type: 'header', name: 'Subject', value: ' during the flood' });
  await first.send({ type: 'eoh' });
  await first.body(Buffer.from('clean\r\n'));
  assert.equal((await first.send({ type: 'eom', chunk: Buffer.alloc(0) }))?.final.type, 'accept');
  await Promise.all(held.map((c) => c.quit()));
  clearInterval(sampler);

  const lagMax = await metric('nodejs_eventloop_lag_max_seconds');
  const overloads = (await metric('pmt_overload_tempfails_total', '{reason="max-sessions"}')) - overload0;
  console.log(
    `# ${N} connections in ${floodMs} ms: served ${count('served')}, 451 4.3.2 ${count('tempfail-451')}, closed ${count('closed')}; ` +
      `overload metric +${overloads}; peak RSS ${peakRss.toFixed(1)} MiB (baseline ${b.rss.toFixed(1)}), peak fds ${peakFds} (baseline ${b.fds}); ` +
      `event-loop lag max ${(lagMax * 1000).toFixed(1)} ms`,
  );
  assert.ok(overloads >= count('tempfail-451'), `overload metric +${overloads}`);
  assert.ok(peakRss < b.rss + 150, `peak RSS ${peakRss.toFixed(1)} MiB`);
  assert.ok(lagMax < 1, `event-loop lag max ${lagMax} s`);
  // Still serving through Postfix, and back to the baseline.
  const after = await smtpSend(message('after-flood-clean'));
  assert.equal(after.final?.code, 250, JSON.stringify(after));
  await assertDeliveredScanned('after-flood-clean');
  await backToBaseline(b, 80);
});

// Connections dropped past maxSessions + the overflow allowance open no session; the count must not drift.
test('after the flood, pmt_sessions_active is back to 0', async () => {
  await waitFor('pmt_sessions_active back to 0', async () => (await metric('pmt_sessions_active')) === 0, 3000).catch(async (e: Error) => {
    throw new Error(`${e.message}: pmt_sessions_active = ${await metric('pmt_sessions_active')}`);
  });
});
