// A reload (SIGHUP) must not give every client a fresh quota: the in-memory rate-limit counters live on while
// the store settings stay the same, and only a change of those settings starts them anew. The product runs as a
// child process; the MTA side is the protocol package's client, sessions from an untrusted address.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MilterClient } from '@postfix-milter-ts/protocol/testing';
import { GatewayProcess } from '../harness/gateway-process.js';

let gateway: GatewayProcess;

function config(maxKeys = 100_000): string {
  return `milter:
  listen: inet:127.0.0.1:0
relay:
  localDomains: [example.test]
rateLimit:
  maxKeys: ${maxKeys}
  untrusted:
    messages: {limit: 2, window: 1h}
clamav:
  endpoints: [inet:127.0.0.1:1]
metrics:
  enabled: false
`;
}

before(async () => {
  gateway = await GatewayProcess.start({ config: config() });
});
after(() => gateway?.stop());

/** One message's RCPT from 192.0.2.50: 'continue', or the refusal's text. */
async function rcptAnswer(): Promise<string> {
  const c = await MilterClient.connect(gateway.milterAddress);
  try {
    await c.negotiate();
    await c.send({ type: 'connect', hostname: '[192.0.2.50]', family: '4', port: 40000, address: '192.0.2.50' }, [['j', 'mx.example.test'], ['{daemon_addr}', '127.0.0.1']]);
    await c.send({ type: 'helo', name: 'client.example.org' });
    await c.send({ type: 'mail', sender: '<sender@example.org>', esmtpArgs: [] });
    const r = await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    await c.send({ type: 'abort' });
    return r === undefined ? 'no reply' : r.final.type === 'replycode' ? r.final.text : r.final.type;
  } finally {
    await c.quit();
  }
}

const TOO_MANY = /^451 4\.7\.1 Too many messages from your address: at most 2 per 1 h/;

test('the message limit holds across a reload with the same config, and across one that changes other keys', async () => {
  assert.equal(await rcptAnswer(), 'continue');
  assert.equal(await rcptAnswer(), 'continue');
  assert.match(await rcptAnswer(), TOO_MANY);
  const same = await gateway.reload(config());
  assert.match(same.msg, /^config reloaded/);
  assert.match(await rcptAnswer(), TOO_MANY, 'the same config: the count goes on');
  const other = await gateway.reload(config().replace('localDomains: [example.test]', 'localDomains: [example.test, example.net]'));
  assert.match(other.msg, /^config reloaded/);
  assert.match(await rcptAnswer(), TOO_MANY, 'another relay rule: the count goes on');
});

test('a reload that changes the store settings starts counting anew', async () => {
  const changed = await gateway.reload(config(50_000));
  assert.match(changed.msg, /^config reloaded/);
  assert.equal(await rcptAnswer(), 'continue');
});
