// Issue #6 end to end, the operations an administrator relies on, with the product (`serve` as a child process)
// behind a real private Postfix:
// - the README's Postfix snippet, taken from README.md as written and put into a private Postfix's main.cf,
//   passes mail through the milter, and tempfails (4.7.1) with the milter down, with no warning from Postfix;
// - reload under load: three SMTP senders in a loop while the config changes twice (to a valid file with a new
//   banned extension, then to an invalid file); every message gets a definite answer, every 250 is delivered
//   exactly once, nothing else is delivered, the new rule applies to every session opened after the reload,
//   the invalid file is refused with its line in the log and the config before it stays, and a session open
//   across both reloads is not dropped and keeps its config;
// - SIGTERM with messages in flight (a fake clamd answers slowly) lets them finish: 250 and delivered, then
//   exit 0; a session opened while draining is tempfailed by Postfix (milter_default_action), never accepted.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClamdInstance } from '../harness/clamd-instance.js';
import { FakeClamd } from '../harness/fake-clamd.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { run } from '../harness/run-command.js';
import { SmtpClient, type SmtpReply, type TransactionResult } from '../harness/smtp-client.js';
import { buildMessage } from '../harness/mail-builder.js';

const README = new URL('../../../README.md', import.meta.url);
/** The milter address the README's snippet uses (the embedded default). */
const README_MILTER = 'inet:127.0.0.1:10031';

let clamd: ClamdInstance | undefined;
let gateway: GatewayProcess | undefined;
let postfix: PostfixInstance | undefined;
let readmePostfix: PostfixInstance | undefined;
let fake: FakeClamd | undefined;
let drainGateway: GatewayProcess | undefined;
let drainPostfix: PostfixInstance | undefined;

function config(clamdEndpoint: string, banned: readonly string[], extra = ''): string {
  return `milter:
  listen: inet:127.0.0.1:0
relay:
  localDomains: [example.test]
attachments:
  bannedExtensions: [${banned.join(', ')}]
${extra}clamav:
  endpoints: [${clamdEndpoint}]
  maxScanBytes: 900K
metrics:
  port: 0
`;
}

before(async () => {
  clamd = await ClamdInstance.start();
  gateway = await GatewayProcess.start({ config: config(clamd.unixEndpoint, ['exe']) });
  postfix = new PostfixInstance({ milter: gateway.milterAddress, mailboxes: ['alice', 'postmaster'] });
  await postfix.start();
});

after(async () => {
  await readmePostfix?.stop();
  await drainPostfix?.stop();
  await postfix?.stop();
  await gateway?.stop();
  await drainGateway?.stop();
  await fake?.stop();
  await clamd?.destroy();
});

function message(id: string, attachment?: string): string {
  const common = { subject: `op ${id}`, messageId: `${id}@example.org` };
  if (attachment === undefined) return buildMessage({ ...common, text: `Hello from ${id}.` });
  return buildMessage({ ...common, text: `see attached (${id})`, attachment: { name: attachment, content: Buffer.from(`quarterly figures for ${id}\n`) } });
}

/** One SMTP session, one message; never throws (a failure is returned as `error`). */
async function sendOne(port: number, id: string, attachment?: string): Promise<{ result?: TransactionResult; error?: string; connectStart: number; greeted: number; finished: number }> {
  const connectStart = Date.now();
  let greeted = Number.NaN;
  let smtp: SmtpClient | undefined;
  try {
    smtp = await SmtpClient.connect({ host: '127.0.0.1', port, timeoutMs: 20_000 });
    greeted = Date.now();
    await smtp.ehlo('client.example.org');
    const result = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message(id, attachment));
    await smtp.quit();
    return { result, connectStart, greeted, finished: Date.now() };
  } catch (e) {
    return { error: (e as Error).message, connectStart, greeted, finished: Date.now() };
  } finally {
    smtp?.destroy();
  }
}

/** A loopback port nobody listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The reply that decided a transaction: the end of DATA, or the refusal before it. */
function decidingReply(r: TransactionResult): SmtpReply {
  if (r.final) return r.final;
  if (r.data) return r.data;
  if (r.mail.code !== 250) return r.mail;
  return r.rcpts.find((x) => x.code !== 250) ?? r.mail;
}

/** How often each `op <id>` subject occurs in the Maildir. */
function countIds(messages: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of messages) {
    const id = /^Subject: op (\S+)/m.exec(m)?.[1];
    if (id !== undefined) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** `name = value` lines of the first main.cf block in the README's "Plug it into Postfix" section, read as Postfix reads main.cf. */
function readmeMainCf(): Map<string, string> {
  const text = readFileSync(README, 'utf8');
  const section = /^## Plug it into Postfix\s*$([\s\S]*?)^## /m.exec(text)?.[1];
  assert.ok(section !== undefined, 'README.md has a "## Plug it into Postfix" section');
  const block = /^```[^\n]*\n([\s\S]*?)^```/m.exec(section)?.[1];
  assert.ok(block !== undefined, 'the section has a code block');
  assert.match(block, /main\.cf/, 'the code block is the main.cf fragment');
  const params = new Map<string, string>();
  // postconf(5): a line whose first non-blank character is # is a comment; there are no comments after a
  // value (a # there is part of the value); leading blanks continue the previous line.
  let last: string | undefined;
  for (const line of block.split('\n')) {
    if (/^\s*(#|$)/.test(line)) continue;
    if (/^\s/.test(line) && last !== undefined) {
      params.set(last, `${params.get(last) ?? ''} ${line.trim()}`);
      continue;
    }
    const m = /^([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
    assert.ok(m?.[1] !== undefined, `not a main.cf line: ${JSON.stringify(line)}`);
    last = m[1];
    params.set(m[1], m[2] ?? '');
  }
  return params;
}

test("the README's Postfix snippet, put into a private Postfix's main.cf, passes mail through the milter", { timeout: 60_000 }, async () => {
  assert.ok(gateway);
  const params = readmeMainCf();
  for (const name of ['smtpd_milters', 'milter_default_action', 'milter_protocol']) assert.ok(params.has(name), `the snippet sets ${name}`);
  assert.ok([...params.values()].some((v) => v.includes(README_MILTER)), `the snippet names ${README_MILTER}`);
  // Only the milter address differs (the test's gateway listens on a free port, not 10031).
  const mainCf = Object.fromEntries([...params].map(([k, v]) => [k, v.split(README_MILTER).join(gateway?.milterAddress ?? '')]));
  readmePostfix = new PostfixInstance({ milter: gateway.milterAddress, mailboxes: ['alice', 'postmaster'], mainCf });
  await readmePostfix.start();

  const clean = await sendOne(readmePostfix.smtpPort, 'readme-clean');
  assert.equal(clean.error, undefined, clean.error);
  assert.equal(clean.result?.final?.code, 250, JSON.stringify(clean.result));
  const [delivered] = await readmePostfix.waitForMessages('alice', 1);
  assert.match(delivered ?? '', /^X-Virus-Scanned: postfix-milter-ts with ClamAV\r?$/m, 'the milter added its header');
  assert.match(delivered ?? '', /^Subject: op readme-clean/m);

  const banned = await sendOne(readmePostfix.smtpPort, 'readme-banned', 'setup.exe');
  assert.equal(banned.error, undefined, banned.error);
  assert.equal(banned.result?.final?.code, 554, JSON.stringify(banned.result));
  assert.match(banned.result?.final?.raw ?? '', /5\.7\.0 Message refused: attachment "setup\.exe"/);
  await sleep(300);
  assert.equal((await readmePostfix.readMessages('alice')).length, 1, 'the refused message was not delivered');

  // "milter down => 4xx": the same main.cf with the milter address pointing where nothing listens.
  const dead = await deadPort();
  const down = Object.fromEntries([...params].map(([k, v]) => [k, v.split(README_MILTER).join(`inet:127.0.0.1:${dead}`)]));
  const edit = await run('/usr/sbin/postconf', ['-c', readmePostfix.configDir, '-e', ...Object.entries(down).filter(([k]) => k.endsWith('_milters')).map(([k, v]) => `${k}=${v}`)]);
  assert.equal(edit.code, 0, edit.stderr);
  const reload = await run('/usr/sbin/postfix', ['-c', readmePostfix.configDir, 'reload']);
  assert.equal(reload.code, 0, reload.stderr);
  await sleep(1000);
  const tempfailed = await sendOne(readmePostfix.smtpPort, 'readme-milter-down');
  assert.equal(tempfailed.error, undefined, tempfailed.error);
  const refusal = decidingReply(tempfailed.result as TransactionResult);
  assert.ok(refusal.code >= 400 && refusal.code < 500, `with the milter down: ${refusal.raw}`);
  await sleep(300);
  assert.equal((await readmePostfix.readMessages('alice')).length, 1, 'nothing was accepted unchecked');

  // Postfix took every value of the snippet as meant. main.cf has no end-of-line comments: a `# …` after a
  // value is part of the value (postconf(5)), so such a line sets something else than it says.
  const misread: string[] = [];
  for (const [name, value] of Object.entries(down)) {
    const effective = await readmePostfix.postconf(name);
    assert.equal(effective, value.replace(/\s+/g, ' '), `${name} as Postfix reads it`);
    if (effective.includes('#')) misread.push(`${name} = ${JSON.stringify(effective)}`);
  }

  // Postfix complained about none of the snippet's settings while it used them.
  const warnings = (await readmePostfix.maillog()).split('\n').filter((l) => /warning: .*(unrecognized|invalid|bad)/i.test(l));
  assert.deepEqual([...misread, ...warnings], [], 'README main.cf lines Postfix reads with the comment in the value (main.cf has no end-of-line comments: put them on their own lines), and the warnings Postfix logs for them');
  assert.equal(refusal.raw, '451 4.7.1 Service unavailable - try again later', 'the milter_default_action = tempfail reply');

  await readmePostfix.stop();
  readmePostfix = undefined;
});

test('reload under load: two config changes (one invalid) while three senders loop lose no message and the new rule applies to new sessions', { timeout: 90_000 }, async () => {
  assert.ok(gateway && postfix && clamd);
  const gw = gateway;
  const port = postfix.smtpPort;
  const before = (await postfix.readMessages('alice')).length;
  const logFrom = gw.logs.length;

  interface Sent {
    readonly id: string;
    readonly connectStart: number;
    readonly greeted: number;
    readonly finished: number;
    readonly result?: TransactionResult;
    readonly error?: string;
  }
  const sent: Sent[] = [];
  let stop = false;
  const sender = async (n: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const id = `s${n}-${i}`;
      // Every message carries a .xyz attachment: allowed by the first config, banned by the second.
      const r = await sendOne(port, id, `figures-${id}.xyz`);
      sent.push({ id, ...r });
    }
  };
  const senders = [sender(1), sender(2), sender(3)];
  const count = (): number => sent.length;
  const waitForMore = async (n: number): Promise<void> => {
    const target = count() + n;
    const deadline = Date.now() + 30_000;
    while (count() < target) {
      assert.ok(Date.now() < deadline, `the senders are stuck at ${count()} messages`);
      await sleep(20);
    }
  };

  let validSent = 0;
  let validDone = 0;
  let invalidDone = 0;
  // One more SMTP session, opened before the reloads and used after each: an open session keeps its config.
  const held = await SmtpClient.connect({ host: '127.0.0.1', port, timeoutMs: 20_000 });
  const heldResults: Array<{ id: string; result: TransactionResult }> = [];
  try {
    assert.equal((await held.ehlo('held.example.org')).code, 250);
    await waitForMore(20);

    // 1. A valid file with a new rule: .xyz is banned for sessions opened from now on.
    validSent = Date.now();
    const reloaded = await gw.reload(config(clamd.unixEndpoint, ['exe', 'xyz']));
    validDone = Date.now();
    assert.match(reloaded.msg, /^config reloaded/, JSON.stringify(reloaded));
    heldResults.push({ id: 'held-1', result: await held.sendMessage('sender@example.org', ['alice@example.test'], message('held-1', 'figures-held-1.xyz')) });
    await waitForMore(20);

    // 2. An invalid file (it would also drop the new rule): refused, with the file, line and key in the log.
    const invalid = config(clamd.unixEndpoint, ['exe'], '  maxParts: lots\n');
    const refused = await gw.reload(invalid);
    invalidDone = Date.now();
    assert.match(refused.msg, /^config reload refused; the running config stays in force/, JSON.stringify(refused));
    assert.equal(refused.level, 50, 'logged as an error');
    const problems = refused['problems'] as string[];
    const line = invalid.split('\n').findIndex((l) => l.includes('maxParts')) + 1;
    assert.deepEqual(problems, [`${gw.configFile}:${line}: attachments.maxParts: expected number, got "lots"`]);
    await waitForMore(20);
    heldResults.push({ id: 'held-2', result: await held.sendMessage('sender@example.org', ['alice@example.test'], message('held-2', 'figures-held-2.xyz')) });
    await held.quit();
  } finally {
    held.destroy();
    stop = true;
    await Promise.all(senders);
  }

  // The session open across both reloads was not dropped and kept the first config for both its messages.
  for (const h of heldResults) assert.equal(h.result.final?.code, 250, `${h.id}, sent in a session opened before the reload: ${JSON.stringify(h.result)}`);
  assert.equal(heldResults.length, 2);

  // Every message got a definite SMTP answer: 250, or a 4xx/5xx refusal.
  const lost = sent.filter((s) => s.error !== undefined || s.result === undefined);
  assert.deepEqual(lost.map((s) => `${s.id}: ${s.error ?? ''}`), [], 'messages without a definite SMTP answer');
  const outcome = sent.map((s) => ({ ...s, reply: decidingReply(s.result as TransactionResult) }));
  for (const o of outcome) assert.ok(o.reply.code === 250 || (o.reply.code >= 400 && o.reply.code < 600), `${o.id}: ${o.reply.raw}`);
  const accepted = outcome.filter((o) => o.reply.code === 250);

  // Sessions opened (greeted, so the milter connection existed) before SIGHUP ran under the first config;
  // sessions started after the reload was logged run under the second, and still after the invalid file.
  const old = outcome.filter((o) => o.greeted < validSent);
  const renewed = outcome.filter((o) => o.connectStart > validDone);
  const afterInvalid = outcome.filter((o) => o.connectStart > invalidDone);
  assert.ok(old.length >= 10 && renewed.length >= 20 && afterInvalid.length >= 10, `too few messages per phase: ${old.length}/${renewed.length}/${afterInvalid.length}`);
  for (const o of old) assert.equal(o.reply.code, 250, `${o.id} (first config, .xyz allowed): ${o.reply.raw}`);
  // Among them, sessions still open when the reload happened (not dropped, finished on the old config).
  const spanning = old.filter((o) => o.finished > validDone);
  for (const o of renewed) {
    assert.equal(o.reply.code, 554, `${o.id} (second config, .xyz banned): ${o.reply.raw}`);
    assert.match(o.reply.raw, new RegExp(`5\\.7\\.0 Message refused: attachment "figures-${o.id}\\.xyz"`));
  }

  // Every 250 was delivered, exactly once; nothing refused was delivered.
  const expected = before + accepted.length + heldResults.length;
  await postfix.waitForMessages('alice', expected, 20_000);
  await sleep(500);
  const all = await postfix.readMessages('alice');
  const counts = countIds(all);
  for (const o of [...accepted, ...heldResults]) assert.equal(counts.get(o.id), 1, `${o.id}: accepted with 250, delivered ${counts.get(o.id) ?? 0} times`);
  for (const o of outcome.filter((x) => x.reply.code !== 250)) assert.equal(counts.get(o.id), undefined, `${o.id}: refused (${o.reply.code}) but delivered`);
  assert.equal(all.length, expected, 'nothing but the accepted messages was delivered');

  // The gateway logged one verdict line per message, and stayed up.
  assert.equal(gw.exitCode, undefined, 'the gateway is still running');
  const verdicts = gw.logs.slice(logFrom).filter((l) => l.msg === 'message').map((l) => String(l['verdict']));
  assert.equal(verdicts.filter((v) => v === 'accepted').length, accepted.length + heldResults.length, 'accepted lines');
  assert.equal(verdicts.filter((v) => v === 'rejected').length, outcome.filter((o) => o.reply.code === 554).length, 'rejected lines');
  assert.equal(verdicts.length, sent.length + heldResults.length, 'one line per message');
  console.log(`# reload under load: ${sent.length} messages, ${accepted.length} accepted, ${sent.length - accepted.length} refused; ${old.length} before the reload (${spanning.length} open across it), ${renewed.length} after`);
});

test('SIGTERM with messages in flight lets them finish (250, delivered), refuses new sessions, and exits 0', { timeout: 60_000 }, async () => {
  const SCAN_DELAY_MS = 2500;
  fake = await FakeClamd.start({ scan: { kind: 'slow', delayMs: SCAN_DELAY_MS, reply: 'stream: OK' } });
  drainGateway = await GatewayProcess.start({ config: config(fake.endpoint, ['exe'], '').replace('milter:\n', 'milter:\n  progressInterval: 500ms\n  shutdownGrace: 20s\n') });
  drainPostfix = new PostfixInstance({ milter: drainGateway.milterAddress, mailboxes: ['alice', 'postmaster'] });
  await drainPostfix.start();
  const gw = drainGateway;
  const pf = drainPostfix;
  const scansBefore = fake.scans.filter((s) => s.ended).length;

  const inFlight = [1, 2, 3].map((n) => sendOne(pf.smtpPort, `drain-${n}`));
  // All three are at end of DATA, waiting for clamd's (slow) verdict.
  const deadline = Date.now() + 15_000;
  while (fake.scans.filter((s) => s.ended).length < scansBefore + 3) {
    assert.ok(Date.now() < deadline, `only ${fake.scans.filter((s) => s.ended).length - scansBefore} scans reached clamd`);
    await sleep(20);
  }
  const signalled = Date.now();
  const logsBefore = gw.logs.length;
  gw.child?.kill('SIGTERM');
  const stopping = await gw.waitForLog((l) => l.msg.startsWith('stopping'), 5000, logsBefore);
  assert.ok(Number(stopping['sessions']) >= 3, `sessions in flight at SIGTERM: ${String(stopping['sessions'])}`);

  // While draining, a new SMTP session cannot reach the milter: Postfix tempfails it (milter_default_action).
  const late = await sendOne(pf.smtpPort, 'drain-late');
  assert.equal(late.error, undefined, late.error);
  const lateReply = decidingReply(late.result as TransactionResult);
  assert.ok(lateReply.code >= 400 && lateReply.code < 500, `a session opened while draining: ${lateReply.raw}`);

  const results = await Promise.all(inFlight);
  for (const [i, r] of results.entries()) {
    assert.equal(r.error, undefined, `drain-${i + 1}: ${r.error ?? ''}`);
    assert.equal(r.result?.final?.code, 250, `drain-${i + 1}: ${JSON.stringify(r.result)}`);
  }
  assert.ok(Date.now() - signalled >= SCAN_DELAY_MS / 2, 'the messages really were in flight when SIGTERM came');

  await gw.waitForExit();
  assert.equal(gw.exitCode, 0);
  assert.ok(gw.logs.some((l) => l.msg === 'stopped'));
  const delivered = await pf.waitForMessages('alice', 3, 15_000);
  const counts = countIds(delivered);
  assert.deepEqual([...counts.entries()].sort(), [['drain-1', 1], ['drain-2', 1], ['drain-3', 1]]);
  for (const m of delivered) assert.match(m, /^X-Virus-Scanned: postfix-milter-ts with ClamAV\r?$/m);
});
