// The queue sweep against a REAL private Postfix queue and a REAL clamd. Mail reaches the queue without a
// milter (the outbreak got in before the gateway caught it) and stays there: recipients are remote and
// `defer_transports` keeps them in deferred/ (hashed subdirectories); some are moved to hold.
// The sweep must print exactly the bad queue IDs, `postsuper -d -` fed with them must remove exactly those,
// and an interrupted sweep must resume from its checkpoint without reading finished files again.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ClamdInstance, EICAR, fakeWormExe } from '../harness/clamd-instance.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { run } from '../harness/run-command.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { buildMessage } from '../harness/mail-builder.js';
import { makeZip } from '../unit/content/zip-writer.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLEAN_COUNT = 300;
/** Long enough for some files to be done, well before the end (the whole sweep takes seconds). */
// The command as installed (`dist/cli.js sweep-queue`) once the CLI wires it; until then the same command
// definition mounted on a bare program, so the flags, output and exit codes under test are the real ones.
const CLI_HAS_SWEEP = /^\s+sweep-queue\b/m.test(spawnSync(process.execPath, [join(ROOT, 'dist/cli.js'), '--help'], { cwd: ROOT, encoding: 'utf8' }).stdout);
const SHIM = `
import { Command } from 'commander';
import { configureSweepQueueCommand } from 'postfix-milter-ts/commands/sweep-queue.js';
const program = new Command().name('postfix-milter-ts').exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 64));
configureSweepQueueCommand(program.command('sweep-queue'));
await program.parseAsync();`;
function commandLine(args: readonly string[]): string[] {
  return CLI_HAS_SWEEP ? [join(ROOT, 'dist/cli.js'), 'sweep-queue', ...args] : ['--input-type=module', '-e', SHIM, 'sweep-queue', ...args];
}

interface SweepRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a sweep; with `interruptWhen`, sends SIGINT as soon as that holds (polled every 5 ms once it started). */
function sweep(args: readonly string[], interruptWhen?: () => boolean): Promise<SweepRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, commandLine(args), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (!signalled && interruptWhen !== undefined && /sweep-queue: \//.test(stderr)) {
        signalled = true;
        const poll = setInterval(() => {
          if (!interruptWhen()) return;
          clearInterval(poll);
          child.kill('SIGINT');
        }, 5);
        child.once('close', () => clearInterval(poll));
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const ids = (stdout: string): string[] => stdout.split('\n').filter((l) => l !== '').sort();

function mime(subject: string, name: string, type: string, content: Buffer): string {
  return buildMessage({ to: 'someone@remote.example', subject, attachment: { name, type, content } });
}

function plain(subject: string, body: string): string {
  return `From: sender@example.org\r\nTo: someone@remote.example\r\nSubject: ${subject}\r\n\r\n${body}\r\n`;
}

interface QueuedMessage {
  readonly queue_name: string;
  readonly queue_id: string;
}

describe('sweep-queue on a real Postfix queue with a real clamd', () => {
  let clamd: ClamdInstance;
  let postfix: PostfixInstance;
  let work: string;
  const bad = new Set<string>();
  const banned = new Set<string>();
  const invoices = new Set<string>();
  const all = new Set<string>();
  const held = new Set<string>();

  async function queued(): Promise<QueuedMessage[]> {
    const r = await run('/usr/sbin/postqueue', ['-c', postfix.configDir, '-j'], { timeoutMs: 10_000 });
    return r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as QueuedMessage);
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'sweep-e2e-'));
    clamd = await ClamdInstance.start();
    postfix = new PostfixInstance({
      milter: '',
      mainCf: {
        smtpd_milters: '',
        non_smtpd_milters: '',
        smtpd_relay_restrictions: 'permit_mynetworks, reject_unauth_destination',
        // Remote mail would be discarded, but the discard transport is deferred: everything stays queued.
        default_transport: 'discard',
        relay_transport: 'discard',
        defer_transports: 'discard',
      },
    });
    await postfix.start();

    const messages: { body: string; kind: 'clean' | 'virus' | 'banned' | 'invoice' }[] = [];
    for (let i = 0; i < CLEAN_COUNT; i++) messages.push({ kind: 'clean', body: plain(`newsletter ${i}`, `Hello number ${i}.\r\n${'filler text '.repeat(i % 50)}`) });
    for (let i = 0; i < 4; i++) messages.push({ kind: 'virus', body: plain(`plain eicar ${i}`, EICAR.toString('latin1')) });
    for (let i = 0; i < 2; i++) messages.push({ kind: 'virus', body: mime(`zipped eicar ${i}`, 'documents.zip', 'application/zip', makeZip([{ name: 'readme.txt', data: 'hi\n' }, { name: 'docs/test-file.txt', data: EICAR }])) });
    for (let i = 0; i < 3; i++) messages.push({ kind: 'banned', body: mime(`worm ${i}`, 'update.exe', 'application/octet-stream', fakeWormExe()) });
    for (let i = 0; i < 3; i++) messages.push({ kind: 'banned', body: mime(`banned ${i}`, 'invoice.pdf.scr', 'application/octet-stream', Buffer.from('not really a screensaver\n')) });
    for (let i = 0; i < 2; i++) messages.push({ kind: 'invoice', body: plain(`Invoice ${4711 + i}`, 'Please pay.') });
    // Interleave the bad ones with the clean ones, as an outbreak would.
    messages.sort((a, b) => (a.body.length * 7919) % 101 - (b.body.length * 7919) % 101);

    const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix.smtpPort, timeoutMs: 20_000 });
    try {
      await smtp.ehlo('client.example.org');
      for (const m of messages) {
        const r = await smtp.sendMessage('sender@example.org', ['someone@remote.example'], m.body);
        const id = /queued as ([0-9A-Za-z]+)/.exec(r.final?.raw ?? '')?.[1];
        assert.ok(id, JSON.stringify(r));
        all.add(id);
        if (m.kind === 'virus' || m.kind === 'banned') bad.add(id);
        if (m.kind === 'banned') banned.add(id);
        if (m.kind === 'invoice') invoices.add(id);
      }
      await smtp.quit();
    } finally {
      smtp.destroy();
    }
    // Wait until every message sits in deferred (none in incoming or active any more).
    const deadline = Date.now() + 60_000;
    for (;;) {
      const q = await queued();
      if (q.length === all.size && q.every((m) => m.queue_name === 'deferred')) break;
      if (Date.now() > deadline) throw new Error(`queue not settled: ${q.length} of ${all.size}, ${JSON.stringify(q.filter((m) => m.queue_name !== 'deferred').slice(0, 5))}`);
      await sleep(200);
    }
    // Some bad and some clean ones to hold.
    const toHold = [...[...bad].slice(0, 2), ...[...all].filter((id) => !bad.has(id)).slice(0, 3)];
    const r = await run('/usr/sbin/postsuper', ['-c', postfix.configDir, '-h', '-'], { input: `${toHold.join('\n')}\n`, timeoutMs: 10_000 });
    assert.equal(r.code, 0, r.stderr);
    for (const id of toHold) held.add(id);
    const q = await queued();
    assert.equal(q.filter((m) => m.queue_name === 'hold').length, toHold.length);
  });

  after(async () => {
    await postfix?.stop();
    await clamd?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('the queue files are where the sweep looks: hashed deferred/ subdirectories and hold/', async () => {
    const r = await run('/usr/bin/find', [postfix.queueDir, '-type', 'f', '-path', '*/deferred/*'], { timeoutMs: 10_000 });
    const deferred = r.stdout.split('\n').filter((l) => l !== '');
    assert.equal(deferred.length, all.size - held.size);
    assert.ok(deferred.every((p) => /\/deferred\/[0-9A-F]\/[0-9A-F]+$/.test(p)), deferred.slice(0, 3).join('\n'));
  });

  test('with clamd: prints exactly the bad queue IDs (virus or banned attachment), exit 1', async (t) => {
    const r = await sweep(['--queue-dir', postfix.queueDir, '--clamd', clamd.unixEndpoint, '--concurrency', '4']);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(ids(r.stdout), [...bad].sort());
    assert.match(r.stderr, new RegExp(`done: ${all.size} files in [0-9.]+ s \\(\\d+/s\\), ${bad.size} selected, 0 errors`));
    t.diagnostic(r.stderr.split('\n').find((l) => l.includes('done:')) ?? '');
  });

  test('--json gives the reasons; --no-virus-scan finds the banned attachments without clamd', async (t) => {
    const r = await sweep(['--queue-dir', postfix.queueDir, '--clamd', clamd.unixEndpoint, '--json', '--queues', 'hold']);
    const lines = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { id: string; queue: string; reasons: string[]; subject: string; recipients: string[] });
    assert.deepEqual(lines.map((l) => l.id).sort(), [...held].filter((id) => bad.has(id)).sort());
    for (const l of lines) {
      assert.equal(l.queue, 'hold');
      assert.deepEqual(l.recipients, ['someone@remote.example']);
      assert.ok(l.reasons.length > 0 && l.reasons.every((x) => /^(virus|[a-z-]+): /.test(x)), JSON.stringify(l));
    }
    const nv = await sweep(['--queue-dir', postfix.queueDir, '--no-virus-scan', '--clamd', 'inet:127.0.0.1:1']);
    assert.equal(nv.code, 1, nv.stderr);
    // The .exe and .scr attachments; EICAR (plain text, or a .txt in a zip) needs clamd.
    assert.deepEqual(ids(nv.stdout), [...banned].sort());
    t.diagnostic(nv.stderr.split('\n').find((l) => l.includes('done:')) ?? '');
  });

  test('matchers alone select exactly the matching messages', async (t) => {
    const r = await sweep(['--queue-dir', postfix.queueDir, '--matchers-only', '--match-header', 'Subject:/^invoice \\d+$/i']);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(ids(r.stdout), [...invoices].sort());
    t.diagnostic(r.stderr.split('\n').find((l) => l.includes('done:')) ?? '');
  });

  test('clamd unreachable: exit 2 at once with the reason, nothing printed', async () => {
    const r = await sweep(['--queue-dir', postfix.queueDir, '--clamd', 'inet:127.0.0.1:1']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /clamd does not answer .*--no-virus-scan/);
  });

  test('an interrupted sweep resumes from its checkpoint, reads each file once and finds messages Postfix moved meanwhile', async () => {
    const cp = join(work, 'sweep.checkpoint');
    const args = ['--queue-dir', postfix.queueDir, '--clamd', clamd.unixEndpoint, '--checkpoint', cp, '--checkpoint-every', '10', '--concurrency', '4'];
    // Interrupted once a checkpoint records files done (the first write, at the start, records none): a sweep
    // reads ~800 files/s here, so any fixed delay is either too short or lets it finish. Files are in flight then.
    const filesDone = (): number => {
      try {
        return (JSON.parse(readFileSync(cp, 'utf8')) as { counts: { files: number } }).counts.files;
      } catch {
        return 0;
      }
    };
    const first = await sweep(args, () => filesDone() >= 10);
    assert.equal(first.code, 130, first.stderr);
    assert.match(first.stderr, /SIGINT: stopping, saving the checkpoint/);
    const saved = JSON.parse(await readFile(cp, 'utf8')) as { finished: boolean; counts: { files: number }; done: string[] };
    assert.equal(saved.finished, false);
    const done = saved.counts.files;
    assert.equal(saved.done.length, done, 'each file done is counted once');
    assert.ok(done > 0 && done < all.size, `interrupted after ${done} of ${all.size}`);
    for (const id of ids(first.stdout)) assert.ok(bad.has(id));

    // Postfix moves the held messages back to deferred (same queue IDs, hashed paths anywhere in the walk order).
    const release = await run('/usr/sbin/postsuper', ['-c', postfix.configDir, '-H', 'ALL'], { timeoutMs: 10_000 });
    assert.equal(release.code, 0, release.stderr);
    assert.equal((await queued()).filter((m) => m.queue_name === 'hold').length, 0);

    const second = await sweep(args);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`resuming from .* \\(${done} files done`));
    assert.match(second.stderr, new RegExp(`done: ${all.size - done} files `), 'only the files not done before');
    assert.match(second.stderr, new RegExp(`in all ${all.size} files, ${bad.size} selected`));
    // The resumed run prints the earlier selection again: its output alone is the complete list, each ID once.
    assert.deepEqual(second.stdout.split('\n').filter((l) => l !== '').sort(), [...bad].sort());
    assert.equal(JSON.parse(await readFile(cp, 'utf8')).finished, true);
  });

  test('`postsuper -d -` fed with the output removes exactly the bad messages', async () => {
    const r = await sweep(['--queue-dir', postfix.queueDir, '--clamd', clamd.unixEndpoint, '-q']);
    assert.equal(r.code, 1, r.stderr);
    await writeFile(join(work, 'ids'), r.stdout);
    const del = await run('/usr/sbin/postsuper', ['-c', postfix.configDir, '-d', '-'], { input: r.stdout, timeoutMs: 20_000 });
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stderr, new RegExp(`Deleted: ${bad.size} messages`));
    const left = (await queued()).map((m) => m.queue_id).sort();
    assert.deepEqual(left, [...all].filter((id) => !bad.has(id)).sort());
    // And the sweep now finds nothing: exit 0.
    const again = await sweep(['--queue-dir', postfix.queueDir, '--clamd', clamd.unixEndpoint, '-q']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, '');
  });
});
