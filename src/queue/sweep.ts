// The queue sweep: reads every queue file of the chosen Postfix queues (read-only), applies the milter's
// attachment and virus policies (the same `checkMessage` as `scan`) and the header/envelope matchers, and
// reports the queue IDs of the messages selected. Bounded concurrency, bounded memory (content beyond
// clamav.maxScanBytes is not read), resumable through a checkpoint.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { checkMessage } from '../commands/scan.js';
import type { GatewayConfig } from '../config/schema.js';
import { ClamdScanner } from '../scanner/clamd-scanner.js';
import { type Checkpoint, type CheckpointCounts, type CheckpointSelection, emptyCounts, saveCheckpoint } from './checkpoint.js';
import { type HeaderField, type Matcher, applyMatchers, decodeEncodedWords, parseHeaderFields } from './matchers.js';
import { readQueueFile } from './queue-file.js';
import { QueueFileError, type RandomAccess } from './record.js';
import { type QueueEntry, type QueueName, makeKeyComparator, walkQueues } from './queue-walker.js';

export interface SweepOptions {
  readonly queueDir: string;
  readonly queues: readonly QueueName[];
  readonly matchers: readonly Matcher[];
  readonly config: GatewayConfig;
  /** Apply the attachment policy (and, with virusScan, the virus policy). False: matchers only. */
  readonly contentChecks: boolean;
  readonly virusScan: boolean;
  readonly concurrency: number;
  /** Stop after this many queue files (this run); the checkpoint lets the next run continue. */
  readonly limit?: number | undefined;
  readonly checkpoint?: { readonly file: string; readonly previous: Checkpoint | undefined; readonly fingerprint: string; readonly every: number } | undefined;
  readonly signal?: AbortSignal | undefined;
  /** How often `onProgress` is called, in ms. */
  readonly progressInterval?: number;
}

export interface Selection {
  readonly id: string;
  readonly queue: string;
  /** Path below the queue directory, e.g. `deferred/A/B/ABC123`. */
  readonly key: string;
  /** Printed again from the checkpoint of an earlier run (not re-read). */
  readonly replayed?: true;
  readonly sender?: string | undefined;
  readonly recipients?: readonly string[];
  readonly subject?: string | undefined;
  readonly size?: number;
  readonly arrival?: string | undefined;
  /** The verdict the milter would give (`rejected`, `quarantined`…), when the content policy selected it. */
  readonly verdict?: string;
  readonly reasons: readonly string[];
}

export interface SweepProblem {
  readonly key: string;
  /** `error`: corrupt or unreadable (counted, not retried); `retry`: a check could not run, retried on resume. */
  readonly kind: 'error' | 'retry' | 'note';
  readonly message: string;
}

export interface SweepEvents {
  onSelected(selection: Selection): void;
  onProblem(problem: SweepProblem): void;
  onProgress?(progress: SweepProgress): void;
}

export interface SweepProgress {
  /** Totals including earlier runs of the same checkpoint. */
  readonly counts: Readonly<CheckpointCounts>;
  /** Files read by this run. */
  readonly filesThisRun: number;
  readonly elapsedMs: number;
  /** The file most recently started, to show where the sweep is. */
  readonly at: string | undefined;
}

export interface SweepSummary extends SweepProgress {
  /** Stopped by the signal before the end. */
  readonly interrupted: boolean;
  /** Stopped by --limit before the end. */
  readonly limited: boolean;
  /** Walked to the end of every queue. */
  readonly finished: boolean;
  /** Files whose check could not run and which a resumed sweep will retry. */
  readonly retryPending: number;
  readonly replayed: number;
  readonly errorsThisRun: number;
  readonly selectedThisRun: number;
  /** Selected messages in the maildrop queue (not found by a plain `postsuper -d -`). */
  readonly selectedInMaildrop: number;
}

export class SweepSetupError extends Error {
  override readonly name = 'SweepSetupError';
}

type Outcome = 'done' | 'retry';

/** Tracks which issued keys are settled, to advance the watermark in walk order. */
class ProgressTracker {
  readonly #pending: { key: string; outcome: Outcome | undefined }[] = [];
  readonly #byKey = new Map<string, { key: string; outcome: Outcome | undefined }>();
  readonly #compare: (a: string, b: string) => number;
  watermark: string | null;
  /** Settled keys after the watermark from an earlier run (the walker skips them). */
  #carried: string[];
  readonly retry = new Set<string>();

  constructor(previous: Checkpoint | undefined, compare: (a: string, b: string) => number) {
    this.#compare = compare;
    this.watermark = previous?.watermark ?? null;
    this.#carried = [...(previous?.doneAfter ?? [])];
    for (const k of previous?.retry ?? []) this.retry.add(k);
  }

  get carried(): ReadonlySet<string> {
    return new Set(this.#carried);
  }

  issue(key: string): void {
    const item = { key, outcome: undefined };
    this.#pending.push(item);
    this.#byKey.set(key, item);
  }

  settle(key: string, outcome: Outcome): void {
    if (outcome === 'retry') this.retry.add(key);
    else this.retry.delete(key);
    const item = this.#byKey.get(key);
    if (item === undefined) return; // a retried key from an earlier run: it is behind the watermark already
    item.outcome = outcome;
    while (this.#pending[0]?.outcome !== undefined) {
      const done = this.#pending.shift();
      if (done === undefined) break;
      this.#byKey.delete(done.key);
      this.watermark = done.key;
    }
  }

  /** Settled keys beyond the watermark. */
  doneAfter(): string[] {
    const w = this.watermark;
    const carried = w === null ? this.#carried : this.#carried.filter((k) => this.#compare(k, w) > 0);
    this.#carried = carried;
    return [...carried, ...this.#pending.filter((p) => p.outcome !== undefined).map((p) => p.key)];
  }
}

function fileSource(fh: FileHandle, size: number): RandomAccess {
  return { size, read: async (target, length, position) => (await fh.read(target, 0, length, position)).bytesRead };
}

const STAT_EXEC_OWNER = 0o100;

/**
 * A mistyped queue directory must not read as "nothing bad in the queue": it has to exist and hold at least one
 * of the chosen queues (a missing queue among others is only an empty one).
 */
async function checkQueueDirectory(queueDir: string, queues: readonly QueueName[]): Promise<void> {
  const kind = async (path: string): Promise<'directory' | 'other' | 'missing'> => {
    try {
      return (await stat(path)).isDirectory() ? 'directory' : 'other';
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
      throw new SweepSetupError(`cannot read ${path}: ${code ?? String(e)}`);
    }
  };
  const top = await kind(queueDir);
  if (top !== 'directory') {
    throw new SweepSetupError(`queue directory ${queueDir} ${top === 'missing' ? 'does not exist' : 'is not a directory'}; give Postfix's queue_directory (postconf -h queue_directory)`);
  }
  const found = await Promise.all(queues.map((q) => kind(join(queueDir, q))));
  if (!found.includes('directory')) {
    throw new SweepSetupError(`no Postfix queue (${queues.join(', ')}) in ${queueDir}; is it Postfix's queue_directory (postconf -h queue_directory)?`);
  }
}

export async function sweepQueue(options: SweepOptions, events: SweepEvents): Promise<SweepSummary> {
  await checkQueueDirectory(options.queueDir, options.queues);
  const started = performance.now();
  const compare = makeKeyComparator(options.queues);
  const previous = options.checkpoint?.previous;
  const counts: CheckpointCounts = previous ? { ...previous.counts } : emptyCounts();
  const tracker = new ProgressTracker(previous, compare);
  const selected: CheckpointSelection[] = [...(previous?.selected ?? [])];
  const selectedKeys = new Set(selected.map((s) => s.key));
  let filesThisRun = 0;
  let at: string | undefined;
  let limited = false;
  let walkedToEnd = false;
  let selectedInMaildrop = 0;
  let errorsThisRun = 0;
  let selectedThisRun = 0;

  const scanner = options.contentChecks && options.virusScan ? new ClamdScanner(options.config.clamav) : undefined;
  if (scanner) {
    const health = await scanner.checkNow();
    if (!health.up) {
      scanner.close();
      const why = health.endpoints.map((e) => `${e.endpoint}: ${e.lastError ?? 'down'}`).join('; ');
      throw new SweepSetupError(`clamd does not answer (${why}); start it, point --clamd at it, or sweep without virus scanning (--no-virus-scan)`);
    }
  }
  const onAbort = (): void => scanner?.close();
  options.signal?.addEventListener('abort', onAbort, { once: true });

  // Messages selected by an earlier run of this checkpoint are printed again, so the output is complete.
  for (const s of selected) {
    if (s.key.startsWith('maildrop/')) selectedInMaildrop++;
    events.onSelected({ id: s.id, queue: s.key.split('/')[0] ?? '', key: s.key, replayed: true, reasons: ['selected by an earlier run of this checkpoint'] });
  }
  const replayed = selected.length;

  // Checkpoint writes: one at a time; a request during a write schedules one more.
  let saving: Promise<void> | undefined;
  let saveAgain = false;
  let sinceSave = 0;
  const snapshot = (finished: boolean): Checkpoint | undefined =>
    options.checkpoint && {
      version: 1,
      fingerprint: options.checkpoint.fingerprint,
      startedAt: previous?.startedAt ?? new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      finished,
      watermark: tracker.watermark,
      doneAfter: tracker.doneAfter(),
      retry: [...tracker.retry],
      selected,
      counts: { ...counts },
    };
  const save = (finished = false): Promise<void> => {
    if (!options.checkpoint) return Promise.resolve();
    if (saving) {
      saveAgain = true;
      return saving;
    }
    const cp = snapshot(finished);
    if (!cp) return Promise.resolve();
    const file = options.checkpoint.file;
    saving = saveCheckpoint(file, cp)
      .catch((e: unknown) => events.onProblem({ key: file, kind: 'note', message: `cannot write the checkpoint: ${(e as Error).message}` }))
      .finally(() => {
        saving = undefined;
        if (saveAgain) {
          saveAgain = false;
          void save(finished);
        }
      });
    return saving;
  };

  const select = (entry: QueueEntry, s: Omit<Selection, 'id' | 'queue' | 'key'>): void => {
    counts.selected++;
    selectedThisRun++;
    if (!selectedKeys.has(entry.key)) {
      selectedKeys.add(entry.key);
      selected.push({ id: entry.id, key: entry.key });
    }
    if (entry.queue === 'maildrop') selectedInMaildrop++;
    events.onSelected({ id: entry.id, queue: entry.queue, key: entry.key, ...s });
  };

  const maxContent = options.contentChecks ? options.config.clamav.maxScanBytes : 0;

  async function processEntry(entry: QueueEntry): Promise<Outcome> {
    let fh: FileHandle;
    try {
      fh = await open(entry.path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        counts.vanished++; // delivered or moved meanwhile
        return 'done';
      }
      counts.errors++;
      errorsThisRun++;
      events.onProblem({ key: entry.key, kind: 'error', message: `cannot open: ${code ?? (e as Error).message}` });
      return 'done';
    }
    let message;
    let fileSize = 0;
    try {
      const st = await fh.stat();
      if (!st.isFile()) return 'done';
      // cleanup and postdrop set the owner execute bit when a file is complete; until then it is being written.
      if ((entry.queue === 'incoming' || entry.queue === 'maildrop') && (st.mode & STAT_EXEC_OWNER) === 0) {
        counts.incomplete++;
        return 'retry';
      }
      counts.files++;
      fileSize = st.size;
      counts.bytes += fileSize;
      message = await readQueueFile(fileSource(fh, st.size), { maxContentBytes: maxContent });
    } catch (e) {
      counts.errors++;
      errorsThisRun++;
      if (e instanceof QueueFileError) {
        events.onProblem({ key: entry.key, kind: 'error', message: `corrupt queue file: ${e.message}` });
        return 'done';
      }
      events.onProblem({ key: entry.key, kind: 'retry', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
      return 'retry';
    } finally {
      await fh.close().catch(() => undefined);
    }

    let headers: HeaderField[] | undefined;
    const fields = (): HeaderField[] => (headers ??= parseHeaderFields(message.headers));
    const subjectField = (): string | undefined => {
      const f = fields().find((h) => h.name.toLowerCase() === 'subject');
      return f && decodeEncodedWords(f.value);
    };
    const details = (): Pick<Selection, 'sender' | 'recipients' | 'subject' | 'size' | 'arrival'> => ({
      sender: message.sender,
      recipients: message.recipients,
      subject: subjectField(),
      size: message.contentSize,
      arrival: message.arrival?.toISOString(),
    });

    if (options.matchers.length > 0) {
      const reasons = applyMatchers(options.matchers, {
        sender: message.sender,
        recipients: [...message.recipients, ...message.deliveredRecipients],
        headers: fields(),
      });
      if (reasons.length > 0) {
        // One reason is enough to select: the content checks (the slow part) are skipped.
        select(entry, { ...details(), reasons });
        return 'done';
      }
    }
    if (!options.contentChecks) return 'done';
    if (message.content === undefined) {
      counts.oversize++;
      events.onProblem({ key: entry.key, kind: 'note', message: `${message.contentSize} bytes, more than clamav.maxScanBytes (${options.config.clamav.maxScanBytes}): not checked` });
      return 'done';
    }
    const check = await checkMessage(message.content, options.config, scanner);
    if (check.findingsVerdict.action !== 'accept') {
      select(entry, { ...details(), verdict: check.findingsVerdict.label, reasons: check.findingsVerdict.reasons });
      return 'done';
    }
    if (check.failures.length > 0) {
      if (options.signal?.aborted === true) {
        // Our own interruption cut the scan short: not an error, and not done (the next run reads it again).
        counts.files--;
        counts.bytes -= fileSize;
        return 'retry';
      }
      counts.errors++;
      errorsThisRun++;
      events.onProblem({ key: entry.key, kind: 'retry', message: `could not be checked: ${check.failures.map((f) => `${f.check}: ${f.reason}: ${f.detail}`).join('; ')}` });
      return 'retry';
    }
    return 'done';
  }

  // Files to read: first those an earlier run could not check, then the walk from the watermark on.
  const carried = tracker.carried;
  const retryFirst = [...tracker.retry];
  async function* entries(): AsyncGenerator<QueueEntry> {
    for (const key of retryFirst) {
      const parts = key.split('/');
      const queue = parts[0] as QueueName;
      if (!options.queues.includes(queue)) continue;
      yield { queue, key, path: join(options.queueDir, key), id: parts[parts.length - 1] ?? key };
    }
    for await (const e of walkQueues({
      queueDir: options.queueDir,
      queues: options.queues,
      after: tracker.watermark ?? undefined,
      onProblem: (p) => {
        counts.errors++;
        errorsThisRun++;
        events.onProblem({ key: p.path, kind: 'error', message: `cannot read the directory: ${p.error}` });
      },
    })) {
      if (!carried.has(e.key)) yield e;
    }
    walkedToEnd = true;
  }

  const progressTimer = events.onProgress
    ? setInterval(() => events.onProgress?.({ counts: { ...counts }, filesThisRun, elapsedMs: performance.now() - started, at }), options.progressInterval ?? 2000)
    : undefined;
  progressTimer?.unref();

  const source = entries();
  let issued = 0;
  const stopped = (): boolean => options.signal?.aborted === true || limited;
  async function worker(): Promise<void> {
    for (;;) {
      if (stopped()) return;
      if (options.limit !== undefined && issued >= options.limit) {
        limited = true;
        return;
      }
      issued++;
      const next = await source.next();
      if (next.done) return;
      const entry = next.value;
      // Not processed: the walk will find it again. Only an interruption stops here: this entry was issued within
      // --limit, and another worker reaching the limit meanwhile must not drop it.
      if (options.signal?.aborted === true) return;
      at = entry.key;
      if (!tracker.retry.has(entry.key)) tracker.issue(entry.key);
      filesThisRun++;
      let outcome: Outcome;
      try {
        outcome = await processEntry(entry);
      } catch (e) {
        counts.errors++;
        errorsThisRun++;
        events.onProblem({ key: entry.key, kind: 'retry', message: `internal error: ${(e as Error).message}` });
        outcome = 'retry';
      }
      tracker.settle(entry.key, outcome);
      if (options.checkpoint && ++sinceSave >= options.checkpoint.every) {
        sinceSave = 0;
        void save();
      }
    }
  }

  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, () => worker()));
  } finally {
    clearInterval(progressTimer);
    options.signal?.removeEventListener('abort', onAbort);
    scanner?.close();
    await source.return(undefined);
  }
  const interrupted = options.signal?.aborted === true && !walkedToEnd;
  const finished = walkedToEnd && !interrupted;
  if (saving) await saving;
  await save(finished);
  if (saving) await saving;
  return {
    counts: { ...counts },
    filesThisRun,
    elapsedMs: performance.now() - started,
    at,
    interrupted,
    limited: limited && !walkedToEnd,
    finished,
    retryPending: tracker.retry.size,
    replayed,
    errorsThisRun,
    selectedThisRun,
    selectedInMaildrop,
  };
}
