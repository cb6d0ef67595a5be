// The sweep when the queue changes under it and when a run stops early: messages that Postfix moves between
// queues (same queue ID, new path) are checked exactly once, in one run and across a checkpoint; files whose
// check could not run are what a second run checks; totals stay right after an interruption; a message too
// large to check is never called clean; a checkpoint that cannot be written stops the sweep before it starts.
// Fabricated queue directories and a fake clamd; no Postfix.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runSweepQueue, type SweepQueueFlags } from 'postfix-milter-ts/commands/sweep-queue.js';
import { configSchema, DEFAULT_CONFIG, type GatewayConfig } from 'postfix-milter-ts/config/schema.js';
import { buildQueueFile, type Rec } from './queue-file-builder.js';
import { FakeClamd, type FakeClamdOptions } from '../../harness/fake-clamd.js';
import { literalPattern } from '../../harness/literal-pattern.js';

const dirs: string[] = [];
const fakes: FakeClamd[] = [];
after(async () => {
  await Promise.all(fakes.map((f) => f.stop()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sweep-resume-'));
  dirs.push(d);
  return d;
}

async function fake(options: FakeClamdOptions): Promise<FakeClamd> {
  const f = await FakeClamd.start({ unix: true, ...options });
  fakes.push(f);
  return f;
}

function withClamd(f: FakeClamd, clamav: Record<string, unknown> = {}): GatewayConfig {
  return configSchema.parse({ clamav: { endpoints: [f.endpoint], connectTimeout: '1s', scanDeadline: '2s', sendTimeout: '1s', ...clamav } });
}

const EXE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(200, 0x90)]);

function message(subject: string, opts: { exe?: boolean; body?: string } = {}): Rec[] {
  const lines = [`From: someone@example.org`, `Subject: ${subject}`];
  if (opts.exe) {
    lines.push('MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain', '', 'see attached', '--b1');
    lines.push('Content-Type: application/octet-stream; name="x.exe"', 'Content-Disposition: attachment; filename="x.exe"', 'Content-Transfer-Encoding: base64', '');
    lines.push(...(EXE.toString('base64').match(/.{1,76}/g) ?? []), '--b1--');
  } else lines.push('', ...(opts.body ?? 'Nothing to see.').split('\n'));
  return lines.map((l) => ['N', l] as const);
}

async function put(dir: string, key: string, content: Rec[]): Promise<void> {
  const path = join(dir, key);
  await mkdir(join(path, '..'), { recursive: true });
  const { bytes } = buildQueueFile({ envelope: [['T', '1795357256 0'], ['S', 'a@example.org'], ['R', 'b@example.test']], content });
  await writeFile(path, bytes);
  await chmod(path, 0o700);
}

/** Moves a queue file the way Postfix does: same name (queue ID), another queue. */
function move(dir: string, from: string, to: string): void {
  mkdirSync(join(dir, to, '..'), { recursive: true });
  renameSync(join(dir, from), join(dir, to));
}

interface Run {
  readonly code: number;
  readonly out: string[];
  readonly err: string;
}

async function sweep(dir: string, flags: SweepQueueFlags, opts: { config?: GatewayConfig; onLine?: (id: string) => void; signal?: AbortSignal } = {}): Promise<Run> {
  const out: string[] = [];
  let err = '';
  const code = await runSweepQueue({ queueDir: dir, quiet: true, concurrency: '1', ...flags }, opts.config ?? DEFAULT_CONFIG, {
    stdout: (t) => {
      for (const l of t.split('\n').filter((x) => x !== '')) {
        out.push(l);
        opts.onLine?.(l);
      }
    },
    stderr: (t) => (err += t),
    env: process.env,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { code, out, err };
}

const readJson = async <T>(file: string): Promise<T> => JSON.parse(await readFile(file, 'utf8')) as T;

test('a message that moves from active to deferred after deferred was walked is still checked, once', async () => {
  const dir = await tempDir();
  await put(dir, 'deferred/1/1A0000000001', message('clean'));
  await put(dir, 'hold/3A0000000001', message('held bad', { exe: true }));
  await put(dir, 'active/4A0000000001', message('moving bad', { exe: true }));
  await put(dir, 'active/4A0000000002', message('clean too'));
  // When the hold message is printed, deferred is behind the walk and active not listed yet: qmgr defers the message.
  const r = await sweep(dir, { virusScan: false }, { onLine: (id) => id === '3A0000000001' && move(dir, 'active/4A0000000001', 'deferred/4/4A0000000001') });
  assert.deepEqual(r.out, ['3A0000000001', '4A0000000001']);
  assert.match(r.err, /done: 4 files .* in all 4 files, 2 selected, 0 errors/);
  assert.equal(r.code, 1, r.err);
});

test('a checkpoint records queue IDs: a resumed sweep checks a message that moved behind it and does not print a selected one twice', async () => {
  const dir = await tempDir();
  const cp = join(dir, 'sweep.checkpoint');
  await put(dir, 'deferred/1/1B0000000001', message('bad in deferred', { exe: true }));
  await put(dir, 'deferred/2/2B0000000001', message('clean'));
  await put(dir, 'hold/3B0000000001', message('clean held'));
  await put(dir, 'active/4B0000000001', message('bad in active', { exe: true }));
  await put(dir, 'active/4B0000000002', message('clean active'));
  const flags = { virusScan: false, queues: 'deferred,hold,active', checkpoint: cp };
  const first = await sweep(dir, { ...flags, limit: '3' });
  assert.deepEqual(first.out, ['1B0000000001']);
  assert.deepEqual((await readJson<{ done: string[] }>(cp)).done.sort(), ['1B0000000001', '2B0000000001', '3B0000000001']);
  // Between the runs: the active message is deferred (behind where the first run stopped); the selected one is retried.
  move(dir, 'active/4B0000000001', 'deferred/4/4B0000000001');
  move(dir, 'deferred/1/1B0000000001', 'active/1B0000000001');
  const second = await sweep(dir, flags);
  assert.deepEqual(second.out, ['1B0000000001', '4B0000000001'], 'the earlier selection once (replayed), then the moved message');
  assert.match(second.err, /done: 2 files .* in all 5 files, 2 selected, 0 errors/);
  assert.equal(second.code, 1, second.err);
  assert.equal((await readJson<{ finished: boolean }>(cp)).finished, true);
});

test('files clamd could not check are retried by the next run with the checkpoint, and only those', async () => {
  const dir = await tempDir();
  const cp = join(dir, 'sweep.checkpoint');
  await put(dir, 'deferred/1/1C0000000001', message('virus', { body: 'EICAR test' }));
  await put(dir, 'deferred/1/1C0000000002', message('clean'));
  await put(dir, 'deferred/2/2C0000000001', message('clean, delivered before the second run'));
  const broken = await fake({ scan: { kind: 'reply', reply: "stream: Can't allocate memory ERROR" } });
  const first = await sweep(dir, { checkpoint: cp }, { config: withClamd(broken) });
  assert.equal(first.code, 2, first.err);
  assert.deepEqual(first.out, []);
  assert.match(first.err, /deferred\/1\/1C0000000001: could not be checked: virus: error/);
  assert.match(first.err, /in all 0 files, 0 selected, 0 errors, 0 too large to check, 3 could not be checked/);
  assert.match(first.err, new RegExp(`3 files could not be checked and are NOT selected \\(named above\\); run again with --checkpoint ${literalPattern(cp)} to check just those`));
  const saved = await readJson<{ walked: boolean; finished: boolean; retry: string[] }>(cp);
  assert.deepEqual([saved.walked, saved.finished, saved.retry.sort()], [true, false, ['1C0000000001', '1C0000000002', '2C0000000001']]);

  // Meanwhile one was delivered, one moved to active, and new mail arrived (not part of this sweep).
  rmSync(join(dir, 'deferred/2/2C0000000001'));
  move(dir, 'deferred/1/1C0000000002', 'active/1C0000000002');
  await put(dir, 'active/5C0000000001', message('new mail', { body: 'EICAR too' }));
  const working = await fake({ scan: { kind: 'detect' } });
  // Stopped after one file, the retry run still leaves a checkpoint that retries (the rest), not a full sweep.
  const partial = await sweep(dir, { checkpoint: cp, limit: '1' }, { config: withClamd(working) });
  assert.match(partial.err, /checking again the 3 that could not be checked/);
  assert.deepEqual(partial.out, ['1C0000000001']);
  const between = await readJson<{ walked: boolean; finished: boolean; retry: string[] }>(cp);
  assert.deepEqual([between.walked, between.finished, between.retry.sort()], [true, false, ['1C0000000002', '2C0000000001']]);
  const second = await sweep(dir, { checkpoint: cp }, { config: withClamd(working) });
  assert.match(second.err, /checking again the 2 that could not be checked/);
  assert.deepEqual(second.out, ['1C0000000001'], 'replayed');
  assert.match(second.err, /done: 1 files .* in all 2 files, 1 selected, 0 errors, 0 too large to check, 0 could not be checked, 1 vanished/);
  assert.equal(second.code, 1, second.err);
  assert.equal(working.scans.length, 2, 'the new mail was not read');
  assert.equal((await readJson<{ finished: boolean }>(cp)).finished, true);
});

test('a message too large to check is not selected, is named on stderr even with -q, and makes the exit status 2', async () => {
  const dir = await tempDir();
  await put(dir, 'deferred/1/1D0000000001', message('big', { body: 'x'.repeat(100).concat('\n').repeat(40) }));
  await put(dir, 'deferred/1/1D0000000002', message('small'));
  // Larger than clamav.maxScanBytes: not even read, so neither policy looked at it.
  const small = configSchema.parse({ clamav: { maxScanBytes: 2000, chunkSize: 1000 } });
  const r = await sweep(dir, { virusScan: false }, { config: small });
  assert.deepEqual(r.out, []);
  assert.match(r.err, /deferred\/1\/1D0000000001: queue ID 1D0000000001 NOT CHECKED, so not selected: \d+ bytes of content, more than clamav.maxScanBytes \(2000\); look at it yourself \(postcat -q 1D0000000001\)/);
  assert.match(r.err, /in all 2 files, 0 selected, 0 errors, 1 too large to check/);
  assert.equal(r.code, 2);

  // clamd refuses it (its StreamMaxLength is below maxScanBytes): not clean either.
  const strict = await fake({ scan: { kind: 'detect' }, streamMaxLength: 1000 });
  const refused = await sweep(dir, {}, { config: withClamd(strict) });
  assert.deepEqual(refused.out, []);
  assert.match(refused.err, /queue ID 1D0000000001 NOT CHECKED, so not selected: clamd refused to scan/);
  assert.match(refused.err, /1 too large to check/);
  assert.equal(refused.code, 2);

  // A resumed sweep names it again, so its own output is complete.
  const cp = join(dir, 'sweep.checkpoint');
  await sweep(dir, { virusScan: false, checkpoint: cp, limit: '1' }, { config: small });
  const resumed = await sweep(dir, { virusScan: false, checkpoint: cp }, { config: small });
  assert.match(resumed.err, /queue ID 1D0000000001 NOT CHECKED.*found by an earlier run of this checkpoint/);
  assert.equal(resumed.code, 2);
});

test('a checkpoint that cannot be written stops the sweep before it starts (exit 2), even with -q', async () => {
  const dir = await tempDir();
  await put(dir, 'deferred/1/1E0000000001', message('bad', { exe: true }));
  const r = await sweep(dir, { virusScan: false, checkpoint: '/nonexistent/dir/cp.json' });
  assert.equal(r.code, 2);
  assert.deepEqual(r.out, [], 'nothing swept');
  assert.match(r.err, /cannot write the checkpoint \/nonexistent\/dir\/cp\.json: its directory does not exist; nothing was swept/);
  assert.doesNotMatch(r.err, /run again/);
});

test('a checkpoint write that fails during the sweep is reported even with -q, and the end does not promise a resume', async () => {
  const dir = await tempDir();
  const cpDir = await tempDir();
  for (let i = 1; i <= 4; i++) await put(dir, `deferred/1/1F000000000${i}`, message(`m${i}`, { exe: i === 1 }));
  const r = await sweep(dir, { virusScan: false, checkpoint: join(cpDir, 'cp.json'), checkpointEvery: '1' }, { onLine: () => rmSync(cpDir, { recursive: true }) });
  assert.match(r.err, /sweep-queue: checkpoint: cannot write the checkpoint .*cp\.json: its directory does not exist/);
  assert.match(r.err, /the checkpoint was not saved \(.*\); a run with it will not continue from this one/);
  assert.equal(r.code, 2);
});

test('after an interruption the totals count each file once (SIGINT, and a kill between two checkpoint writes)', async () => {
  const dir = await tempDir();
  const cp = join(dir, 'sweep.checkpoint');
  const total = 12;
  for (let i = 10; i < 10 + total; i++) await put(dir, `deferred/${i % 3}/${i % 3}G00000000${i}`, message(`m${i}`));
  const slow = await fake({ scan: { kind: 'slow', delayMs: 60, reply: 'stream: OK' } });
  const flags = { checkpoint: cp, checkpointEvery: '1', concurrency: '4' };
  const controller = new AbortController();
  let killedAt: string | undefined;
  const poll = setInterval(() => {
    try {
      const text = readFileSync(cp, 'utf8');
      const files = (JSON.parse(text) as { counts: { files: number } }).counts.files;
      // What a SIGKILL right now would leave: files in flight are neither done nor counted in it.
      if (files >= 4 && killedAt === undefined) killedAt = text;
      if (files >= 4) controller.abort('SIGINT');
    } catch {
      // not written yet, or mid-rename
    }
  }, 2);
  const first = await sweep(dir, flags, { config: withClamd(slow), signal: controller.signal });
  clearInterval(poll);
  assert.equal(first.code, 130, first.err);
  assert.ok(killedAt !== undefined);

  const detect = await fake({ scan: { kind: 'detect' } });
  const resumed = await sweep(dir, flags, { config: withClamd(detect) });
  assert.match(resumed.err, new RegExp(`in all ${total} files, 0 selected, 0 errors`), resumed.err);

  // The same from the checkpoint as it was at the kill: the files in flight then are read once, counted once.
  const snapshot = JSON.parse(killedAt) as { counts: { files: number } };
  await writeFile(cp, killedAt);
  const afterKill = await sweep(dir, flags, { config: withClamd(detect) });
  assert.match(afterKill.err, new RegExp(`done: ${total - snapshot.counts.files} files .* in all ${total} files, 0 selected, 0 errors`), afterKill.err);
});
