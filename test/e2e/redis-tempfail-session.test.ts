// Finding from a real run: with `fallback: tempfail`, a client that connected while Redis was down had every
// later message of that SMTP session tempfailed (451 4.3.0), long after Redis was back, and was recorded as an
// offender. Behind a real Postfix and a real redis-server: the session's messages are tempfailed while Redis is
// down and accepted once it is back, in the same session; the client is not listed among the offenders.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ClamdInstance } from '../harness/clamd-instance.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { RedisInstance } from '../harness/redis-instance.js';
import { SmtpClient } from '../harness/smtp-client.js';

const CLIENT = '192.0.2.80';

let clamd: ClamdInstance | undefined;
const redis = new RedisInstance();
let gateway: GatewayProcess | undefined;
let postfix: PostfixInstance | undefined;

before(async () => {
  clamd = await ClamdInstance.start();
  await redis.start();
  gateway = await GatewayProcess.start({
    config: `
milter:
  listen: inet:127.0.0.1:0
relay:
  localDomains: [example.test]
rateLimit:
  store:
    type: redis
    url: ${redis.url}
    fallback: tempfail
clamav:
  endpoints: [${clamd.unixEndpoint}]
metrics:
  port: 0
`,
  });
  postfix = new PostfixInstance({
    milter: gateway.milterAddress,
    mailboxes: ['alice'],
    mainCf: { smtpd_relay_restrictions: 'check_client_access static:OK, reject_unauth_destination', default_transport: 'discard', relay_transport: 'discard' },
  });
  await postfix.start();
});

after(async () => {
  await postfix?.stop();
  await gateway?.stop();
  await redis.dispose();
  await clamd?.destroy();
});

function gw(): GatewayProcess {
  assert.ok(gateway, 'the gateway is running');
  return gateway;
}

function pf(): PostfixInstance {
  assert.ok(postfix, 'Postfix is running');
  return postfix;
}

test('connected while Redis was down: tempfailed until Redis is back, then accepted in the same session; no offender', async () => {
  let from = gw().logs.length;
  await redis.stop();
  await gw().waitForLog((l) => l.msg.startsWith('Redis rate-limit store unreachable'), 10_000, from);

  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: pf().smtpPort });
  try {
    await smtp.ehlo('client.example.org');
    // Postfix opens a new milter connection with a CONNECT for this address: it arrives while Redis is down.
    assert.equal((await smtp.xclient({ ADDR: CLIENT, NAME: '[UNAVAILABLE]' })).code, 220);
    await smtp.ehlo('client.example.org');
    const message = 'From: sender@example.org\r\nTo: alice@example.test\r\nSubject: after the outage\r\n\r\nHello.\r\n';

    const during = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message);
    assert.match(during.rcpts[0]?.raw ?? '', /^451 4\.3\.0 /, JSON.stringify(during));
    assert.equal((await smtp.command('RSET')).code, 250);

    from = gw().logs.length;
    await redis.start();
    await gw().waitForLog((l) => l.msg === 'Redis rate-limit store reachable again', 15_000, from);
    const before = (await pf().readMessages('alice')).length;
    const after = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message);
    assert.equal(after.rcpts[0]?.code, 250, JSON.stringify(after));
    assert.equal(after.final?.code, 250, JSON.stringify(after));
    await pf().waitForMessages('alice', before + 1);
    await smtp.quit();
  } finally {
    smtp.destroy();
  }

  const offenders = await (await fetch(`http://127.0.0.1:${gw().metricsPort}/offenders`)).text();
  assert.ok(!offenders.includes(CLIENT), `our outage is not the client's offence: ${offenders}`);
});
