// The milter on a UNIX socket behind a real Postfix, set up the way postfix-examples/master.cf.notes says: a
// directory of the Postfix group (mode 750), the milter running with group postfix, the socket mode 0660. Postfix's
// smtpd (user postfix) must reach it, and mail must be checked exactly as over TCP. A socket the postfix group
// cannot use is shown too: Postfix then tempfails (milter_default_action), it never passes mail unchecked.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ClamdInstance, EICAR } from '../harness/clamd-instance.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { SmtpClient, type TransactionResult } from '../harness/smtp-client.js';

const POSTFIX_GID = Number(execFileSync('getent', ['group', 'postfix'], { encoding: 'utf8' }).split(':')[2]);

let dir: string;
let clamd: ClamdInstance;
let gateway: GatewayProcess;
let postfix: PostfixInstance;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pmt-unix-'));
  chownSync(dir, 0, POSTFIX_GID);
  chmodSync(dir, 0o750);
  clamd = await ClamdInstance.start();
  gateway = await GatewayProcess.start({
    gid: POSTFIX_GID,
    config: `
milter:
  listen: unix:${dir}/pmt.sock
  socketMode: "0660"
relay:
  localDomains: [example.test]
clamav:
  endpoints: [${clamd.unixEndpoint}]
metrics:
  enabled: false
`,
  });
  postfix = new PostfixInstance({ milter: gateway.milterAddress, mailboxes: ['alice'] });
  await postfix.start();
});

after(async () => {
  await postfix?.stop();
  await gateway?.stop();
  await clamd?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

async function send(subject: string, body: string): Promise<TransactionResult> {
  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix.smtpPort });
  try {
    await smtp.ehlo('client.example.org');
    return await smtp.sendMessage('sender@example.org', ['alice@example.test'], `From: sender@example.org\r\nTo: alice@example.test\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);
  } finally {
    await smtp.quit().catch(() => smtp.destroy());
  }
}

test('the socket is where the config says, mode 0660, group postfix', () => {
  assert.equal(gateway.milterAddress, `unix:${dir}/pmt.sock`);
  const st = statSync(join(dir, 'pmt.sock'));
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o660);
  assert.equal(st.gid, POSTFIX_GID);
});

test('clean mail through the UNIX socket is delivered scanned; EICAR is refused at end of DATA', async () => {
  const clean = await send('over a unix socket', 'Hello.');
  assert.equal(clean.final?.code, 250, JSON.stringify(clean));
  const [delivered] = await postfix.waitForMessages('alice', 1);
  assert.match(delivered ?? '', /^X-Virus-Scanned: postfix-milter-ts with ClamAV\r?$/m);
  const infected = await send('eicar over a unix socket', EICAR.toString('latin1'));
  assert.equal(infected.final?.code, 554, JSON.stringify(infected));
  assert.match(infected.final?.raw ?? '', /^554 5\.7\.0 .*Eicar/i);
});

test('a socket the postfix group may not use: Postfix tempfails, nothing is accepted unchecked', async () => {
  chmodSync(join(dir, 'pmt.sock'), 0o600);
  try {
    const r = await send('socket closed to postfix', 'Hello.');
    const codes = [r.mail.code, ...r.rcpts.map((x) => x.code), r.final?.code].filter((c) => c !== undefined);
    assert.ok(codes.some((c) => c === 451), JSON.stringify(r));
    assert.notEqual(r.final?.code, 250);
  } finally {
    chmodSync(join(dir, 'pmt.sock'), 0o660);
  }
  assert.equal((await send('socket open again', 'Hello.')).final?.code, 250);
});
