// The fixture corpus (test/fixtures/messages/*.eml, verdicts in expected.json) end to end, two ways, with a
// real clamd: through the offline `postfix-milter-ts scan` command (a child process: JSON lines and exit
// status 0 / 1 / 2), and through a real Postfix with the product as its milter (refused messages get 5xx at end
// of DATA and are never delivered; accepted ones are delivered).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClamdInstance, EICAR, SIGNATURES } from '../harness/clamd-instance.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { SmtpClient } from '../harness/smtp-client.js';

const CLI = new URL('../../../dist/cli.js', import.meta.url).pathname;
const DIR = new URL('../../../test/fixtures/messages/', import.meta.url).pathname;

interface Expected {
  readonly verdict: 'accept' | 'refuse';
  readonly kinds: readonly string[];
  readonly why: string;
}
const EXPECTED = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Record<string, Expected>;
const FILES = Object.keys(EXPECTED).sort();
const CLEAN = FILES.filter((f) => EXPECTED[f]?.verdict === 'accept');

interface ScanLine {
  readonly file: string;
  readonly verdict: string;
  readonly reply?: string;
  readonly findings: readonly { readonly kind: string; readonly rule: string; readonly name: string }[];
  readonly failures?: readonly string[];
  readonly error?: string;
}

function runScan(args: readonly string[]): Promise<{ status: number | null; lines: ScanLine[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'scan', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      try {
        resolve({ status, lines: out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ScanLine), stderr: err });
      } catch (e) {
        reject(new Error(`scan printed a line that is not JSON: ${(e as Error).message}\n${out}\n${err}`));
      }
    });
  });
}

function kindsOf(line: ScanLine): string[] {
  return [...new Set(line.findings.map((f) => f.kind))].sort();
}

let clamd: ClamdInstance;
let scratch: string;

before(async () => {
  assert.ok(FILES.length >= 25, `${FILES.length} messages in the corpus`);
  assert.deepEqual(readdirSync(DIR).filter((f) => f.endsWith('.eml')).sort(), FILES, 'every .eml is in expected.json and back');
  clamd = await ClamdInstance.start();
  scratch = mkdtempSync(join(tmpdir(), 'pmt-corpus-'));
});

after(async () => {
  await clamd?.destroy();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('`postfix-milter-ts scan` with a real clamd', () => {
  test('the whole corpus: one JSON line per file in order, verdicts and finding kinds as expected, exit 1', async () => {
    const { status, lines, stderr } = await runScan(['--clamd', clamd.unixEndpoint, ...FILES.map((f) => join(DIR, f))]);
    assert.equal(lines.length, FILES.length, stderr);
    const mismatches: string[] = [];
    FILES.forEach((file, i) => {
      const line = lines[i];
      const want = EXPECTED[file] as Expected;
      assert.equal(line?.file, join(DIR, file));
      assert.equal(line.failures, undefined, `${file}: ${JSON.stringify(line.failures)}`);
      const verdict = want.verdict === 'accept' ? 'accepted' : 'rejected';
      if (line.verdict !== verdict || JSON.stringify(kindsOf(line)) !== JSON.stringify(want.kinds)) {
        mismatches.push(`${file}: ${line.verdict} ${JSON.stringify(kindsOf(line))}, expected ${verdict} ${JSON.stringify(want.kinds)} (${want.why})`);
      }
      if (want.verdict === 'refuse') assert.match(line.reply ?? '', /^554 5\.7\.0 Message refused: /, file);
      else assert.equal(line.reply, undefined, file);
    });
    assert.deepEqual(mismatches, []);
    assert.equal(status, 1, 'exit 1: some message is refused');
  });

  test('only clean messages: exit 0', async () => {
    const { status, lines } = await runScan(['--clamd', clamd.unixEndpoint, ...CLEAN.map((f) => join(DIR, f))]);
    assert.ok(CLEAN.length >= 5);
    assert.deepEqual(lines.map((l) => l.verdict), CLEAN.map(() => 'accepted'));
    assert.equal(status, 0);
  });

  test('clamd finds EICAR in a message the attachment rules accept: rejected with a virus finding, exit 1', async () => {
    const file = join(scratch, 'eicar.eml');
    writeFileSync(file, `From: a@example.org\r\nTo: b@example.test\r\nSubject: eicar\r\n\r\n${EICAR.toString('latin1')}\r\n`);
    const { status, lines } = await runScan(['--clamd', clamd.unixEndpoint, join(DIR, CLEAN[0] as string), file]);
    assert.equal(lines[0]?.verdict, 'accepted');
    assert.equal(lines[1]?.verdict, 'rejected');
    assert.deepEqual(lines[1]?.findings, [{ kind: 'virus', rule: 'clamav', name: SIGNATURES.eicar }]);
    assert.equal(status, 1);
  });

  test('an unreadable file (missing, a directory): a line with verdict error, the others still scanned, exit 2', async () => {
    const missing = join(scratch, 'no-such.eml');
    const refused = join(DIR, 'plain-exe.eml');
    const { status, lines } = await runScan(['--clamd', clamd.unixEndpoint, missing, join(DIR, CLEAN[0] as string), scratch, refused]);
    assert.deepEqual(lines.map((l) => [l.file, l.verdict]), [
      [missing, 'error'],
      [join(DIR, CLEAN[0] as string), 'accepted'],
      [scratch, 'error'],
      [refused, 'rejected'],
    ]);
    assert.match(lines[0]?.error ?? '', /ENOENT/);
    assert.match(lines[2]?.error ?? '', /EISDIR/);
    assert.equal(status, 2, 'an error wins over a refusal');
  });

  test('clamd unreachable: the clean message is tempfailed, not accepted, exit 2', async () => {
    const dead = `unix:${join(scratch, 'no-clamd.sock')}`;
    const { status, lines } = await runScan(['--clamd', dead, join(DIR, CLEAN[0] as string)]);
    assert.equal(lines[0]?.verdict, 'tempfailed');
    assert.match((lines[0]?.failures ?? []).join(' '), /virus: unreachable/);
    assert.equal(status, 2);
  });
});

describe('the corpus through a real Postfix with the product as milter', () => {
  let gateway: GatewayProcess;
  let postfix: PostfixInstance;

  before(async () => {
    gateway = await GatewayProcess.start({
      config: `
milter:
  listen: inet:127.0.0.1:0
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
  });

  test('refused messages get 554 at end of DATA, accepted ones are delivered, nothing else is', async () => {
    const results: { file: string; code: number | undefined; raw: string; data: number | undefined }[] = [];
    const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix.smtpPort });
    try {
      await smtp.ehlo('client.example.org');
      // Several transactions on one connection, as a relaying MTA sends them.
      for (const file of FILES) {
        // Mark each message so its delivered copy can be recognised whatever its own headers say.
        const message = `X-Corpus-File: ${file}\r\n${readFileSync(join(DIR, file), 'latin1')}`;
        const r = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message);
        results.push({ file, code: r.final?.code, raw: r.final?.raw ?? JSON.stringify(r), data: r.data?.code });
      }
      await smtp.quit();
    } finally {
      smtp.destroy();
    }
    const mismatches: string[] = [];
    for (const r of results) {
      const want = EXPECTED[r.file] as Expected;
      assert.equal(r.data, 354, `${r.file}: DATA was answered ${r.data}`);
      const ok = want.verdict === 'accept' ? r.code === 250 : r.code === 554 && /^554 5\.7\.0 Message refused: /.test(r.raw);
      if (!ok) mismatches.push(`${r.file}: ${r.raw} (expected ${want.verdict}: ${want.why})`);
    }
    assert.deepEqual(mismatches, []);

    await postfix.waitForMessages('alice', CLEAN.length, 15_000);
    await sleep(300);
    const delivered = (await postfix.readMessages('alice')).map((m) => /^X-Corpus-File: (.*?)\r?$/m.exec(m)?.[1] ?? '?').sort();
    assert.deepEqual(delivered, CLEAN);
    for (const m of await postfix.readMessages('alice')) assert.match(m, /^X-Virus-Scanned: postfix-milter-ts with ClamAV\r?$/m);
    assert.match(await postfix.postqueue(), /Mail queue is empty/);
    // One log line per message, with the same verdicts.
    const verdicts = gateway.messageLines().map((l) => l['verdict']);
    assert.equal(verdicts.filter((v) => v === 'accepted').length, CLEAN.length);
    assert.equal(verdicts.filter((v) => v === 'rejected').length, FILES.length - CLEAN.length);
  });
});
