// Issue #3 end to end: two gateway processes (the CLI's `serve`), each behind its own real Postfix, count
// rate limits in ONE real redis-server, so a client spreading its mail over both gateways meets one combined
// limit (5 messages per minute for an untrusted client: 3 through A + 3 through B → exactly 5 accepted, the
// 6th gets 451 4.7.1). Then Redis is stopped: with the default fallback (`local`) mail still flows, each
// gateway now limiting alone, and each says so in its log and on /metrics (pmt_redis_fallbacks_total, and
// pmt_rate_limit_store_up 0 until Redis is back).
// When Redis is back both report it and count in Redis again.
// A third gateway uses `fallback: tempfail`: a client that connected while Redis was down is tempfailed only
// while it is down, and accepted in the same SMTP session once it is back; it is not listed among the offenders.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ClamdInstance } from '../harness/clamd-instance.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { RedisInstance } from '../harness/redis-instance.js';
import { SmtpClient, type SmtpReply } from '../harness/smtp-client.js';

const LIMIT = 5;
const STORE_UP = 'pmt_rate_limit_store_up\\{store="redis"\\}';

let clamd: ClamdInstance | undefined;
const redis = new RedisInstance();
const gateways: GatewayProcess[] = [];
const postfixes: PostfixInstance[] = [];

function config(clamdEndpoint: string, redisUrl: string, fallback: 'local' | 'tempfail'): string {
  return `
milter:
  listen: inet:127.0.0.1:0
relay:
  localDomains: [example.test]
rateLimit:
  store:
    type: redis
    url: ${redisUrl}
    fallback: ${fallback}
    # Not the 250 ms default: three gateways, three Postfix and clamd share two cores here, and one late answer
    # would send a decision to the local counters and split the combined count this file checks.
    commandTimeout: 2s
  untrusted:
    messages: { limit: ${LIMIT}, window: 1m }
clamav:
  endpoints: [${clamdEndpoint}]
metrics:
  port: 0
`;
}

before(async () => {
  clamd = await ClamdInstance.start();
  await redis.start();
  // A and B fall back to local counters (the default); C, the third, tempfails.
  for (const fallback of ['local', 'local', 'tempfail'] as const) gateways.push(await GatewayProcess.start({ config: config(clamd.unixEndpoint, redis.url, fallback) }));
  for (const g of gateways) {
    const postfix = new PostfixInstance({
      milter: g.milterAddress,
      mailboxes: ['alice'],
      mainCf: { smtpd_relay_restrictions: 'check_client_access static:OK, reject_unauth_destination', default_transport: 'discard', relay_transport: 'discard' },
    });
    postfixes.push(postfix);
    await postfix.start();
  }
});

after(async () => {
  for (const p of postfixes) await p.stop();
  for (const g of gateways) await g.stop();
  await redis.dispose();
  await clamd?.destroy();
});

function gateway(i: number): GatewayProcess {
  const g = gateways[i];
  assert.ok(g, `gateway ${i} is running`);
  return g;
}

function postfix(i: number): PostfixInstance {
  const p = postfixes[i];
  assert.ok(p, `Postfix ${i} is running`);
  return p;
}

interface Attempt {
  readonly via: 'A' | 'B';
  /** The reply that settled the envelope: MAIL's if it refused, else the RCPT's (the gateway refuses a message at RCPT). */
  readonly envelope: SmtpReply;
  readonly final: SmtpReply | undefined;
}

/** One whole message to alice@example.test through gateway `i`'s Postfix, as untrusted client `client` (XCLIENT). */
async function send(i: number, client: string, subject: string): Promise<Attempt> {
  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix(i).smtpPort });
  try {
    await smtp.ehlo('client.example.org');
    const x = await smtp.xclient({ ADDR: client, NAME: '[UNAVAILABLE]' });
    assert.equal(x.code, 220, x.raw);
    await smtp.ehlo('client.example.org');
    const message = `From: sender@example.org\r\nTo: alice@example.test\r\nSubject: ${subject}\r\n\r\nHello.\r\n`;
    const r = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message);
    await smtp.quit();
    return { via: i === 0 ? 'A' : 'B', envelope: r.mail.code === 250 ? (r.rcpts[0] ?? r.mail) : r.mail, final: r.final };
  } finally {
    smtp.destroy();
  }
}

async function metric(i: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gateway(i).metricsPort}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  assert.ok(m?.[1] !== undefined, `${name} on gateway ${i}'s /metrics`);
  return Number(m[1]);
}

/** The attempts, and any store outage the gateways logged meanwhile (a decision made on local counters). */
function summary(attempts: readonly Attempt[]): string {
  const lines = attempts.map((a, n) => `${n + 1} via ${a.via}: MAIL/RCPT ${a.envelope.raw}${a.final ? ` / DATA ${a.final.raw}` : ''}`);
  const outages = gateways.flatMap((g, i) => g.logs.filter((l) => l.msg.startsWith('Redis rate-limit store')).map((l) => `gateway ${i}: ${JSON.stringify(l)}`));
  return [...lines, ...outages].join('\n');
}

test(`two gateways sharing Redis enforce one combined limit: 3 + 3 messages → exactly ${LIMIT} accepted, the 6th gets 451`, async (t) => {
  const before = [(await postfix(0).readMessages('alice')).length, (await postfix(1).readMessages('alice')).length];
  const attempts: Attempt[] = [];
  for (let n = 0; n < 6; n++) attempts.push(await send(n % 2, '192.0.2.70', `shared ${n + 1}`));
  t.diagnostic(summary(attempts));
  for (const a of attempts.slice(0, LIMIT)) {
    assert.equal(a.envelope.code, 250, summary(attempts));
    assert.equal(a.final?.code, 250, summary(attempts));
  }
  const sixth = attempts[LIMIT];
  assert.equal(sixth?.via, 'B');
  assert.equal(sixth?.envelope.code, 451, summary(attempts));
  assert.match(sixth?.envelope.raw ?? '', /^451 4\.7\.1 Too many messages from your address: at most 5 per 1 min; try again later/);
  await gateway(1).waitForLog((l) => l.msg.startsWith('refused at mail') && l['rule'] === 'rate-messages' && l['client'] === '192.0.2.70', 5000);
  // Gateway A, which accepted only 3 itself, refuses too: the count is shared.
  const seventh = await send(0, '192.0.2.70', 'shared 7');
  assert.equal(seventh.envelope.code, 451, seventh.envelope.raw);
  // What was accepted was delivered: 3 through A, 2 through B.
  await postfix(0).waitForMessages('alice', (before[0] ?? 0) + 3);
  await postfix(1).waitForMessages('alice', (before[1] ?? 0) + 2);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await postfix(0).readMessages('alice')).length, (before[0] ?? 0) + 3);
  assert.equal((await postfix(1).readMessages('alice')).length, (before[1] ?? 0) + 2);
  for (const i of [0, 1]) assert.equal(await metric(i, 'pmt_redis_fallbacks_total'), 0, 'Redis answered every decision');
  for (const i of [0, 1]) assert.equal(await metric(i, STORE_UP), 1);
});

test('Redis stopped: mail still flows through both gateways on local counters, which each gateway logs and counts', async (t) => {
  const from = gateways.map((g) => g.logs.length);
  await redis.stop();
  const warnings = await Promise.all(
    [0, 1].map((i) => gateway(i).waitForLog((l) => l.msg.startsWith('Redis rate-limit store unreachable'), 10_000, from[i])),
  );
  for (const w of warnings) {
    assert.equal(w['fallback'], 'local');
    assert.equal(w.level, 40, 'logged as a warning');
  }

  // A new client: accepted through both gateways while Redis is down.
  for (const i of [0, 1]) {
    const a = await send(i, '192.0.2.71', `during the outage ${i}`);
    assert.equal(a.envelope.code, 250, a.envelope.raw);
    assert.equal(a.final?.code, 250, a.final?.raw);
  }
  // Each gateway still limits on its own: 4 more through A make 5 there, the 6th is refused.
  const attempts: Attempt[] = [];
  for (let n = 0; n < LIMIT; n++) attempts.push(await send(0, '192.0.2.71', `outage A ${n}`));
  t.diagnostic(summary(attempts));
  assert.deepEqual(attempts.map((a) => a.envelope.code), [250, 250, 250, 250, 451], summary(attempts));
  for (const i of [0, 1]) {
    const fallbacks = await metric(i, 'pmt_redis_fallbacks_total');
    t.diagnostic(`gateway ${i === 0 ? 'A' : 'B'}: pmt_redis_fallbacks_total ${fallbacks}`);
    assert.ok(fallbacks >= 1, `gateway ${i}: pmt_redis_fallbacks_total ${fallbacks}`);
    assert.equal(await metric(i, STORE_UP), 0, `gateway ${i}: the outage shows on /metrics`);
  }
});

test('Redis back: both gateways report it and share counts again', async () => {
  const from = gateways.map((g) => g.logs.length);
  await redis.start();
  await Promise.all([0, 1].map((i) => gateway(i).waitForLog((l) => l.msg === 'Redis rate-limit store reachable again', 15_000, from[i])));
  for (const i of [0, 1]) assert.equal(await metric(i, STORE_UP), 1);
  // Shared again: a fresh client gets 5 in all over both gateways (the restarted Redis is empty).
  const attempts: Attempt[] = [];
  for (let n = 0; n < 6; n++) attempts.push(await send(n % 2, '192.0.2.72', `after recovery ${n + 1}`));
  assert.deepEqual(attempts.map((a) => a.envelope.code), [250, 250, 250, 250, 250, 451], summary(attempts));
});

test('fallback tempfail: connected while Redis was down, tempfailed until it is back, then accepted in the same session; no offender', async () => {
  const client = '192.0.2.80';
  let from = gateway(2).logs.length;
  await redis.stop();
  await gateway(2).waitForLog((l) => l.msg.startsWith('Redis rate-limit store unreachable'), 10_000, from);

  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix(2).smtpPort });
  try {
    await smtp.ehlo('client.example.org');
    // Postfix opens a new milter connection with a CONNECT for this address: it arrives while Redis is down.
    assert.equal((await smtp.xclient({ ADDR: client, NAME: '[UNAVAILABLE]' })).code, 220);
    await smtp.ehlo('client.example.org');
    const message = 'From: sender@example.org\r\nTo: alice@example.test\r\nSubject: after the outage\r\n\r\nHello.\r\n';

    const during = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message);
    assert.match(during.rcpts[0]?.raw ?? '', /^451 4\.3\.0 /, JSON.stringify(during));
    assert.equal((await smtp.command('RSET')).code, 250);

    from = gateway(2).logs.length;
    await redis.start();
    await gateway(2).waitForLog((l) => l.msg === 'Redis rate-limit store reachable again', 15_000, from);
    const before = (await postfix(2).readMessages('alice')).length;
    const after = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message);
    assert.equal(after.rcpts[0]?.code, 250, JSON.stringify(after));
    assert.equal(after.final?.code, 250, JSON.stringify(after));
    await postfix(2).waitForMessages('alice', before + 1);
    await smtp.quit();
  } finally {
    smtp.destroy();
  }

  const offenders = await (await fetch(`http://127.0.0.1:${gateway(2).metricsPort}/offenders`)).text();
  assert.ok(!offenders.includes(client), `our outage is not the client's offence: ${offenders}`);
});
