// The one log line per message, without real servers: the gateway filter (no clamd configured) behind the
// protocol server, driven by the MTA-side client the way Postfix drives it, with pino writing into memory.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AddressFamily, optionRequestFor, ProtocolFlag, type MacroPair } from '@postfix-milter-ts/protocol';
import { MilterClient } from '@postfix-milter-ts/protocol/testing';
import { InMemoryGateway, type LogLine as Line } from '../../harness/in-memory-gateway.js';

const CLIENT = '192.0.2.77';
const HELO = 'relay.abuser.example';

function attachmentMessage(name: string, content: Buffer): { headers: Array<[string, string]>; body: Buffer } {
  const body = [
    '--b1',
    'Content-Type: text/plain',
    '',
    'see attached',
    '--b1',
    `Content-Type: application/octet-stream; name="${name}"`,
    `Content-Disposition: attachment; filename="${name}"`,
    'Content-Transfer-Encoding: base64',
    '',
    content.toString('base64'),
    '--b1--',
    '',
  ].join('\r\n');
  return {
    headers: [
      ['From', 'promo@abuser.example'],
      ['To', 'alice@example.test'],
      ['Subject', 'invoice'],
      ['MIME-Version', '1.0'],
      ['Content-Type', 'multipart/mixed; boundary="b1"'],
    ],
    body: Buffer.from(body, 'latin1'),
  };
}

describe('the gateway filter writes one log line per message', () => {
  const gateway = new InMemoryGateway({ relay: { localDomains: ['example.test'] } });
  const { lines, filter } = gateway;

  before(() => gateway.start());
  after(() => gateway.stop());

  async function session(): Promise<MilterClient> {
    const c = await MilterClient.connect(gateway.address);
    await c.negotiate();
    await c.send({ type: 'connect', hostname: `[${CLIENT}]`, family: AddressFamily.INET, port: 40123, address: CLIENT }, [['j', 'mx.example.test'], ['{daemon_addr}', '127.0.0.1']]);
    await c.send({ type: 'helo', name: HELO });
    return c;
  }

  async function messageLine(count: number): Promise<Line> {
    for (let i = 0; i < 100 && lines.filter((l) => l['msg'] === 'message').length < count; i++) await new Promise((r) => setTimeout(r, 10));
    const found = lines.filter((l) => l['msg'] === 'message')[count - 1];
    assert.ok(found, `log line ${count}: ${JSON.stringify(lines)}`);
    return found;
  }

  async function sendContent(c: MilterClient, queueId: string, headers: Array<[string, string]>, body: Buffer): Promise<string> {
    const macros: MacroPair[] = [['i', queueId]];
    await c.send({ type: 'data' }, macros);
    for (const [name, value] of headers) await c.send({ type: 'header', name, value: ` ${value}` });
    await c.send({ type: 'eoh' });
    await c.body(body);
    const r = await c.send({ type: 'eom', chunk: Buffer.alloc(0) }, macros);
    return r?.final.type === 'replycode' ? r.final.text : (r?.final.type ?? 'none');
  }

  test('an accepted message with a refused relay recipient: queue id, client address and name, sender, counts, size, verdict, timings', async () => {
    const c = await session();
    await c.send({ type: 'mail', sender: '<promo@abuser.example>', esmtpArgs: [] });
    const foreign = await c.send({ type: 'rcpt', recipient: '<victim@elsewhere.example>', esmtpArgs: [] });
    assert.equal(foreign?.final.type, 'replycode');
    await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    const body = Buffer.from('Hello.\r\n');
    assert.equal(await sendContent(c, '4QxYz1AbCd', [['From', 'promo@abuser.example'], ['Subject', 'hi']], body), 'accept');
    await c.quit();

    const line = await messageLine(1);
    assert.equal(line['queueId'], '4QxYz1AbCd');
    assert.equal(line['client'], CLIENT);
    assert.equal(line['clientName'], `[${CLIENT}]`);
    assert.equal(line['sender'], '<promo@abuser.example>');
    assert.equal(line['recipients'], 1);
    assert.equal(line['refusedRecipients'], 1);
    assert.equal(typeof line['size'], 'number');
    assert.ok((line['size'] as number) >= body.length, JSON.stringify(line));
    assert.equal(line['verdict'], 'accepted');
    assert.deepEqual(line['reasons'], []);
    assert.equal(typeof line['scanMs'], 'number');
    assert.equal(typeof line['totalMs'], 'number');
    assert.equal(line['level'], 30);
  });

  test('a banned attachment: the reasons name the rule and the file', async () => {
    const c = await session();
    await c.send({ type: 'mail', sender: '<promo@abuser.example>', esmtpArgs: [] });
    await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    const { headers, body } = attachmentMessage('invoice.exe', Buffer.from('not really a program'));
    assert.match(await sendContent(c, '4QxYz2AbCd', headers, body), /^554 5\.7\.0 /);
    await c.quit();
    const line = await messageLine(2);
    assert.equal(line['queueId'], '4QxYz2AbCd');
    assert.equal(line['verdict'], 'rejected');
    assert.ok((line['reasons'] as string[]).some((r) => /banned-extension/.test(r) && r.includes('invoice.exe')), JSON.stringify(line));
  });

  test('a transaction whose every recipient was refused is logged once when the MTA aborts it', async () => {
    const c = await session();
    await c.send({ type: 'mail', sender: '<promo@abuser.example>', esmtpArgs: [] });
    await c.send({ type: 'rcpt', recipient: '<one@elsewhere.example>', esmtpArgs: [] });
    await c.send({ type: 'rcpt', recipient: '<two@elsewhere.example>', esmtpArgs: [] });
    await c.send({ type: 'abort' });
    await c.quit();
    const line = await messageLine(3);
    assert.equal(line['verdict'], 'refused-envelope');
    assert.equal(line['client'], CLIENT);
    assert.equal(line['recipients'], 0);
    assert.equal(line['refusedRecipients'], 2);
    assert.equal((line['reasons'] as string[]).filter((r) => r.endsWith('relay-denied')).length, 2, JSON.stringify(line));
  });

  test('the filter asks the MTA for HELO, so every message line can name it', async () => {
    // Without a `helo` hook the session negotiates SMFIP_NOHELO and Postfix never sends the HELO name.
    assert.equal(optionRequestFor(filter).protocol & ProtocolFlag.NOHELO, 0, 'the gateway filter negotiates NOHELO');
    const messages = lines.filter((l) => l['msg'] === 'message');
    assert.equal(messages.length, 3);
    assert.deepEqual(messages.map((l) => l['helo']), [HELO, HELO, HELO]);
  });
  test('text a client chose is bounded in the line: each reason, the number of reasons, HELO and sender', async () => {
    const c = await MilterClient.connect(gateway.address);
    await c.negotiate();
    await c.send({ type: 'connect', hostname: `[${CLIENT}]`, family: AddressFamily.INET, port: 40124, address: CLIENT });
    await c.send({ type: 'helo', name: 'h'.repeat(5000) });
    await c.send({ type: 'mail', sender: `<${'s'.repeat(5000)}@abuser.example>`, esmtpArgs: [] });
    await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    await c.send({ type: 'abort' });
    await c.send({ type: 'mail', sender: '<promo@abuser.example>', esmtpArgs: [] });
    await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    const parts = Array.from({ length: 30 }, (_, k) => [
      '--b1',
      `Content-Type: application/octet-stream; name="${'n'.repeat(2000)}${k}.exe"`,
      '',
      'x',
    ].join('\r\n'));
    const body = Buffer.from([...parts, '--b1--', ''].join('\r\n'), 'latin1');
    const headers: Array<[string, string]> = [['MIME-Version', '1.0'], ['Content-Type', 'multipart/mixed; boundary="b1"']];
    assert.match(await sendContent(c, '4QxYz5AbCd', headers, body), /^554 /);
    await c.quit();

    const line = lines.filter((l) => l['msg'] === 'message').find((l) => l['queueId'] === '4QxYz5AbCd');
    assert.ok(line, JSON.stringify(lines.at(-1)).slice(0, 500));
    const reasons = line['reasons'] as string[];
    assert.equal(reasons.length, 21);
    assert.match(reasons[20] ?? '', /^\+\d+ more$/);
    for (const r of reasons.slice(0, 20)) assert.ok(r.length < 400 && /more characters\)$/.test(r), r.slice(0, 80));
    assert.match(String(line['helo']), /^h{300}…\(4700 more characters\)$/);
    assert.ok(JSON.stringify(line).length < 16_000, `${JSON.stringify(line).length} bytes`);
    const refused = lines.find((l) => l['verdict'] === 'refused-envelope' && String(l['sender']).startsWith('<sss'));
    assert.match(String(refused?.['sender']), /^<s{299}…\(4717 more characters\)$/);
  });

  test('SMTPUTF8 text is logged as UTF-8, not as the bytes the protocol hands over one per character', async () => {
    const c = await MilterClient.connect(gateway.address);
    await c.negotiate();
    await c.send({ type: 'connect', hostname: `[${CLIENT}]`, family: AddressFamily.INET, port: 40125, address: CLIENT });
    await c.send({ type: 'helo', name: HELO });
    // What Postfix sends for MAIL FROM:<jörg@bücher.example>: UTF-8 bytes.
    await c.send({ type: 'mail', sender: Buffer.from('<jörg@bücher.example>', 'utf8').toString('latin1'), esmtpArgs: ['SMTPUTF8'] });
    await c.send({ type: 'rcpt', recipient: '<victim@elsewhere.example>', esmtpArgs: [] });
    await c.send({ type: 'abort' });
    await c.quit();
    for (let i = 0; i < 100 && !lines.some((l) => String(l['sender']).startsWith('<j')); i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(lines.filter((l) => String(l['sender']).startsWith('<j')).map((l) => l['sender']), ['<jörg@bücher.example>']);
  });
});
