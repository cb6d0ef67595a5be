// The sweep over a fabricated queue directory (no Postfix, no clamd): attachment policy and matchers select,
// corrupt and half-written files are reported or skipped, a --limit run resumes from its checkpoint without
// reading finished files again, and a different sweep refuses the checkpoint.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import { configureSweepQueueCommand, runSweepQueue, type SweepQueueFlags } from 'postfix-milter-ts/commands/sweep-queue.js';
import { DEFAULT_CONFIG } from 'postfix-milter-ts/config/schema.js';
import { buildQueueFile, type Rec } from './queue-file-builder.js';
import { literalPattern } from '../../harness/literal-pattern.js';

let dir: string;

function message(subject: string, attachment?: { name: string; content: Buffer }): Rec[] {
  const lines = [`From: someone@example.org`, `Subject: ${subject}`];
  if (attachment) {
    lines.push('MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain', '', 'see attached', '--b1');
    lines.push(`Content-Type: application/octet-stream; name="${attachment.name}"`, `Content-Disposition: attachment; filename="${attachment.name}"`, 'Content-Transfer-Encoding: base64', '');
    lines.push(...(attachment.content.toString('base64').match(/.{1,76}/g) ?? []), '--b1--');
  } else lines.push('', 'Nothing to see.');
  return lines.map((l) => ['N', l] as const);
}

const EXE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(200, 0x90)]);

async function put(key: string, content: Rec[], opts: { sender?: string; mode?: number } = {}): Promise<void> {
  const path = join(dir, key);
  await mkdir(join(path, '..'), { recursive: true });
  const { bytes } = buildQueueFile({ envelope: [['T', '1795357256 0'], ['S', opts.sender ?? 'a@example.org'], ['R', 'b@example.test']], content });
  await writeFile(path, bytes, { mode: opts.mode ?? 0o700 });
  await chmod(path, opts.mode ?? 0o700);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sweep-unit-'));
  await put('deferred/1/10000000001', message('clean one'));
  await put('deferred/1/10000000002', message('banned', { name: 'invoice.pdf.exe', content: EXE }));
  await put('deferred/2/20000000001', message('clean two'));
  await put('deferred/2/20000000002', message('Invoice 4711'));
  await put('hold/30000000001', message('held banned', { name: 'x.scr', content: EXE }));
  await put('hold/30000000002', message('from the spammer'), { sender: 'spammer@evil.example' });
  await put('active/40000000001', message('clean three'));
  await put('incoming/50000000001', message('half written'), { mode: 0o600 });
  await mkdir(join(dir, 'maildrop'));
  // Corrupt: the end is missing.
  const { bytes } = buildQueueFile({ envelope: [['S', 'a@b']], content: message('cut') });
  await writeFile(join(dir, 'active/40000000002'), bytes.subarray(0, bytes.length - 3), { mode: 0o700 });
  await writeFile(join(dir, 'active/not-a-queue-file.tmp'), 'x');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sweep(args: Parameters<typeof runSweepQueue>[0]): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  let err = '';
  const code = await runSweepQueue({ queueDir: dir, quiet: true, ...args }, DEFAULT_CONFIG, {
    stdout: (t) => out.push(...t.split('\n').filter((l) => l !== '')),
    stderr: (t) => (err += t),
    env: process.env,
  });
  return { code, out, err };
}

test('the attachment policy selects banned files; corrupt files are reported; exit 2 on errors', async () => {
  const r = await sweep({ virusScan: false });
  assert.deepEqual(r.out.sort(), ['10000000002', '30000000001']);
  assert.match(r.err, /active\/40000000002: corrupt queue file: truncated/);
  assert.match(r.err, /1 being written/);
  assert.equal(r.code, 2);
});

test('a queue directory that does not exist, or holds none of the chosen queues, is an error (exit 2), not a clean queue', async () => {
  const missing = await sweep({ virusScan: false, queueDir: join(dir, 'no-such-dir') });
  assert.equal(missing.code, 2);
  assert.deepEqual(missing.out, []);
  assert.match(missing.err, new RegExp(`queue directory ${literalPattern(join(dir, 'no-such-dir'))} does not exist; give Postfix's queue_directory`));
  // A directory one level too high (e.g. /var/spool instead of /var/spool/postfix): no queue in it.
  const above = await sweep({ virusScan: false, queueDir: join(dir, 'maildrop') });
  assert.equal(above.code, 2);
  assert.match(above.err, /no Postfix queue \(deferred, hold, active, incoming, maildrop\) in .*maildrop; is it Postfix's queue_directory/);
  const file = await sweep({ virusScan: false, queueDir: join(dir, 'active/40000000001') });
  assert.equal(file.code, 2);
  assert.match(file.err, /is not a directory/);
  // Only some of the queues present (an empty `incoming` may be missing): the others count as empty.
  const partial = join(dir, 'partial');
  await mkdir(join(partial, 'deferred'), { recursive: true });
  const some = await sweep({ virusScan: false, queueDir: partial });
  assert.equal(some.code, 0, some.err);
});

test('without corrupt files in the chosen queues: exit 1 when something is selected, 0 when nothing', async () => {
  assert.equal((await sweep({ virusScan: false, queues: 'deferred,hold' })).code, 1);
  const none = await sweep({ virusScan: false, queues: 'deferred', matchSender: ['^nobody$'], matchersOnly: true });
  assert.deepEqual(none.out, []);
  assert.equal(none.code, 0);
});

test('matchers OR the policy; --matchers-only drops the policy', async () => {
  const both = await sweep({ queues: 'deferred,hold', matchHeader: ['Subject:/^invoice \\d+$/i'] });
  assert.deepEqual(both.out.sort(), ['10000000002', '20000000002', '30000000001']);
  const only = await sweep({ queues: 'deferred,hold', matchSender: ['spammer@'], matchersOnly: true, json: true });
  const parsed = only.out.map((l) => JSON.parse(l) as { id: string; subject: string; reasons: string[] });
  assert.deepEqual(parsed.map((p) => p.id), ['30000000002']);
  assert.equal(parsed[0]?.subject, 'from the spammer');
  assert.match(parsed[0]?.reasons[0] ?? '', /sender "spammer@evil\.example" matches spammer@/);
});

test('a repeated matcher flag keeps every value: matchers of one kind are alternatives', async () => {
  const senders = await sweep({ queues: 'deferred,hold', matchSender: ['spammer@', '^nobody@'], matchersOnly: true });
  assert.deepEqual(senders.out, ['30000000002'], 'the first --match-sender is not dropped');
  const headers = await sweep({ queues: 'deferred,hold', matchHeader: ['Subject:/^invoice \\d+$/i', 'Subject:/spammer/'], matchersOnly: true });
  assert.deepEqual(headers.out.sort(), ['20000000002', '30000000002']);
});

test('matchers of different kinds must all match: sender AND recipient does not select the whole queue', async () => {
  // Every message here goes to b@example.test; none comes from nobody@x. OR'ed, this selected everything.
  const r = await sweep({ queues: 'deferred,hold,active', matchersOnly: true, matchSender: ['^nobody@x$'], matchRecipient: ['example\\.test$'] });
  assert.deepEqual(r.out, []);
  const and = await sweep({ queues: 'deferred,hold', matchersOnly: true, matchSender: ['spammer@', '^a@'], matchHeader: ['Subject:/spammer|invoice/i'] });
  assert.deepEqual(and.out.sort(), ['20000000002', '30000000002'], 'subject AND (either sender)');
  const narrower = await sweep({ queues: 'deferred,hold', matchersOnly: true, matchSender: ['spammer@'], matchHeader: ['Subject:/spammer|invoice/i'], matchRecipient: ['@example\\.test$'] });
  assert.deepEqual(narrower.out, ['30000000002']);
});

/** The sweep-queue command as the CLI mounts it, with the action replaced by one that keeps the parsed flags. */
function command(): { program: Command; sweepCommand: Command; parsed: () => SweepQueueFlags | undefined } {
  const program = new Command().name('postfix-milter-ts').exitOverride();
  const sweepCommand = configureSweepQueueCommand(program.command('sweep-queue'));
  let flags: SweepQueueFlags | undefined;
  sweepCommand.action((opts: SweepQueueFlags) => {
    flags = opts;
  });
  return { program, sweepCommand, parsed: () => flags };
}

test('every matcher flag can be given more than once on the command line, and each value is kept', async () => {
  const { program, parsed } = command();
  const args = ['--match-sender', 'a@', '--match-sender', 'b@', '--match-recipient', 'x', '--match-recipient', 'y', '--match-header', 'Subject:/1/', '--match-header', 'From:/2/'];
  await program.parseAsync(['sweep-queue', ...args], { from: 'user' });
  assert.deepEqual(parsed()?.matchSender, ['a@', 'b@']);
  assert.deepEqual(parsed()?.matchRecipient, ['x', 'y']);
  assert.deepEqual(parsed()?.matchHeader, ['Subject:/1/', 'From:/2/']);
});

test('--help states how matchers combine and lists every exit status the command uses', () => {
  // outputHelp, not helpInformation: the text added after the options is part of what --help prints.
  let help = '';
  const { sweepCommand } = command();
  sweepCommand.configureOutput({ writeOut: (t) => (help += t) });
  sweepCommand.outputHelp();
  assert.match(help, /Matchers of the same kind are alternatives \(any one of them\),\s+matchers of different kinds must all match/);
  for (const code of ['0', '1', '2', '64', '78', '130']) assert.match(help, new RegExp(`^  ${code} +\\S`, 'm'), `exit status ${code}`);
  assert.match(help, /143: SIGTERM/);
});

test('bad usage is exit 64 with the reason', async () => {
  const r = await sweep({ queues: 'deferred,bogus' });
  assert.equal(r.code, 64);
  assert.match(r.err, /unknown queue "bogus"/);
  assert.equal((await sweep({ matchHeader: ['Subject:/(/'] })).code, 64);
  assert.equal((await sweep({ concurrency: '0' })).code, 64);
});

test('a --limit run resumes from the checkpoint and reads only the rest; the output is complete', async () => {
  const cp = join(dir, '..', `${dir.split('/').pop() ?? 'x'}.checkpoint`);
  try {
    const first = await sweep({ virusScan: false, queues: 'deferred,hold,active', checkpoint: cp, limit: '3', concurrency: '2' });
    assert.deepEqual(first.out, ['10000000002']);
    assert.equal(first.code, 1);
    const saved = JSON.parse(await readFile(cp, 'utf8')) as { counts: { files: number }; finished: boolean; walked: boolean; done: string[] };
    assert.equal(saved.counts.files, 3);
    assert.equal(saved.finished, false);
    assert.equal(saved.walked, false);
    assert.deepEqual([...saved.done].sort(), ['10000000001', '10000000002', '20000000001']);

    // A different sweep may not use this checkpoint.
    const other = await sweep({ virusScan: false, queues: 'deferred', checkpoint: cp });
    assert.equal(other.code, 64);
    assert.match(other.err, /belongs to a different sweep/);

    const second = await sweep({ virusScan: false, queues: 'deferred,hold,active', checkpoint: cp, concurrency: '2' });
    // The earlier selection is printed again (so `| postsuper -d -` gets every ID), then the new ones.
    assert.deepEqual(second.out, ['10000000002', '30000000001'], 'replayed first, then the one found now');
    assert.match(second.err, /done: 5 files/, 'only the 5 files after the first 3 were read');
    assert.match(second.err, /in all 8 files/);
    assert.equal(second.code, 2, 'the corrupt file in active');
    const done = JSON.parse(await readFile(cp, 'utf8')) as { finished: boolean };
    assert.equal(done.finished, true);

    // A finished checkpoint starts a new sweep.
    const third = await sweep({ virusScan: false, queues: 'deferred,hold,active', checkpoint: cp });
    assert.match(third.err, /finished at .*; starting a new sweep/);
    assert.match(third.err, /done: 8 files/);
  } finally {
    await rm(cp, { force: true });
  }
});
