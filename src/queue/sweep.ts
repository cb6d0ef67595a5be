// The queue sweep: reads every queue file of the chosen Postfix queues (read-only), applies the milter's
// attachment and virus policies (the same `checkMessage` as `scan`) and the header/envelope matchers, and
// reports the queue IDs of the messages selected. Bounded concurrency, bounded memory (content beyond
// clamav.maxScanBytes is not read), resumable through a checkpoint.
//
// Messages are known by queue ID, not path: Postfix moves them between queues while we read. After the walk
// the queues are listed again (a few times at most) and IDs not seen yet are read, so a message that moved
// behind the walk is still checked, once.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { checkMessage } from '../commands/scan.js';
import type { GatewayConfig } from '../config/schema.js';
import { ClamdScanner } from '../scanner/clamd-scanner.js';
import { type Checkpoint, CheckpointError, type CheckpointCounts, type CheckpointSelection, type CheckpointUnchecked, emptyCounts, saveCheckpoint } from './checkpoint.js';
import { type HeaderField, type Matcher, applyMatchers, decodeEncodedWords, parseHeaderFields } from './matchers.js';
import { readQueueFile } from './queue-file.js';
import { QueueFileError, type RandomAccess } from './record.js';
import { type QueueEntry, type QueueName, walkQueues } from './queue-walker.js';

/** Listings of the queues after the walk, at most: each one that found something to read earns another. */
const MAX_RELISTS = 4;

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
  /**
   * `error`: corrupt or unreadable (counted, not retried); `retry`: the check could not run (a run with the
   * checkpoint tries again); `unchecked`: too large to check, so not selected; `note`: for information.
   */
  readonly kind: 'error' | 'retry' | 'unchecked' | 'note';
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
  /** Walked every queue and listed them again until nothing new turned up. */
  readonly walked: boolean;
  /** Walked, and no file is left to retry. */
  readonly finished: boolean;
  /** Files whose check could not run (not selected); a run with the checkpoint tries them again. */
  readonly retryPending: number;
  /** The last checkpoint write failed with this reason: a rerun does not continue from this run. */
  readonly checkpointError: string | undefined;
  readonly replayed: number;
  readonly errorsThisRun: number;
  readonly selectedThisRun: number;
  /** Selected messages in the maildrop queue (not found by a plain `postsuper -d -`). */
  readonly selectedInMaildrop: number;
}

export class SweepSetupError extends Error {
  override readonly name = 'SweepSetupError';
}

/** What became of one queue file. Counts change only when it is settled, together with the done set. */
type Outcome =
  /** Read and checked; selected when `selection` is set. */
  | { readonly kind: 'checked'; readonly bytes: number; readonly selection?: Omit<Selection, 'id' | 'queue' | 'key'> }
  /** Corrupt or unreadable: an error, not tried again. `bytes` when it was opened. */
  | { readonly kind: 'error'; readonly bytes: number | undefined; readonly message: string }
  /** Too large to check: done, never selected, always reported. */
  | { readonly kind: 'too-large'; readonly bytes: number; readonly message: string }
  /** The check could not run (clamd failure, read error): not done; the next run with the checkpoint tries again. */
  | { readonly kind: 'failed'; readonly message: string }
  /** Gone before it was opened: delivered, deleted, or moved (the next listing finds it at its new place). */
  | { readonly kind: 'vanished' }
  /** Still being written (incoming/maildrop without the owner execute bit). */
  | { readonly kind: 'incomplete' }
  /** Our own interruption cut the check short. */
  | { readonly kind: 'aborted' };

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
  const startedAt = new Date().toISOString();
  const previous = options.checkpoint?.previous;
  const counts: CheckpointCounts = previous ? { ...previous.counts } : emptyCounts();
  const vanishedBefore = counts.vanished;
  /** Queue IDs read to a final outcome, in this run and earlier runs of the checkpoint. */
  const done = new Set(previous?.done ?? []);
  /** Queue IDs whose check could not run: earlier runs' until read again, and this run's failures. */
  const retry = new Set(previous?.retry ?? []);
  /** After a completed walk, a rerun reads only what is left to retry (not mail that arrived since). */
  const walkedBefore = previous?.walked === true;
  const only = walkedBefore ? new Set(previous.retry) : undefined;
  /** Handed to a worker and not settled yet, or failed in this run (tried again by the next run, not this one). */
  const claimed = new Set<string>();
  const vanished = new Set<string>();
  const incomplete = new Set<string>();
  const selected: CheckpointSelection[] = [...(previous?.selected ?? [])];
  const selectedIds = new Set(selected.map((s) => s.id));
  const unchecked: CheckpointUnchecked[] = [...(previous?.unchecked ?? [])];
  let filesThisRun = 0;
  let at: string | undefined;
  let limited = false;
  let walked = false;
  let selectedInMaildrop = 0;
  let errorsThisRun = 0;
  let selectedThisRun = 0;

  const totals = (): CheckpointCounts => ({ ...counts, vanished: vanishedBefore + vanished.size, incomplete: incomplete.size });
  const snapshot = (file: { readonly fingerprint: string }): Checkpoint => ({
    version: 2,
    fingerprint: file.fingerprint,
    startedAt: previous?.startedAt ?? startedAt,
    updatedAt: new Date().toISOString(),
    walked: walked || walkedBefore,
    finished: (walked || walkedBefore) && retry.size === 0,
    done: [...done],
    retry: [...retry],
    selected,
    unchecked,
    counts: totals(),
  });

  // A checkpoint that cannot be written would make every "run again to continue" a lie: find out now.
  if (options.checkpoint) {
    try {
      await saveCheckpoint(options.checkpoint.file, snapshot(options.checkpoint));
    } catch (e) {
      throw new CheckpointError(`${(e as Error).message}; nothing was swept. Give --checkpoint a file in a directory you can write to`);
    }
  }

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

  const tooLarge = (id: string, reason: string, earlier = ''): string => `queue ID ${id} NOT CHECKED, so not selected: ${reason}${earlier}; look at it yourself (postcat -q ${id})`;
  // What an earlier run of this checkpoint found is reported again, so this run's output is complete.
  for (const s of selected) {
    if (s.key.startsWith('maildrop/')) selectedInMaildrop++;
    events.onSelected({ id: s.id, queue: s.key.split('/')[0] ?? '', key: s.key, replayed: true, reasons: ['selected by an earlier run of this checkpoint'] });
  }
  for (const u of unchecked) events.onProblem({ key: u.key, kind: 'unchecked', message: tooLarge(u.id, u.reason, ' (found by an earlier run of this checkpoint)') });
  const replayed = selected.length;

  // Checkpoint writes: one at a time; a request during a write schedules one more.
  let saving: Promise<void> | undefined;
  let saveAgain = false;
  let sinceSave = 0;
  let checkpointError: string | undefined;
  const save = (): Promise<void> => {
    const cp = options.checkpoint;
    if (!cp) return Promise.resolve();
    if (saving) {
      saveAgain = true;
      return saving;
    }
    saving = saveCheckpoint(cp.file, snapshot(cp))
      .then(
        () => {
          checkpointError = undefined;
        },
        (e: unknown) => {
          const message = (e as Error).message;
          if (message !== checkpointError) events.onProblem({ key: 'checkpoint', kind: 'error', message });
          checkpointError = message;
        },
      )
      .finally(() => {
        saving = undefined;
        if (saveAgain) {
          saveAgain = false;
          void save();
        }
      });
    return saving;
  };

  const select = (entry: QueueEntry, s: Omit<Selection, 'id' | 'queue' | 'key'>): void => {
    counts.selected++;
    selectedThisRun++;
    if (!selectedIds.has(entry.id)) {
      selectedIds.add(entry.id);
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
      if (code === 'ENOENT') return { kind: 'vanished' };
      return { kind: 'error', bytes: undefined, message: `cannot open: ${code ?? (e as Error).message}` };
    }
    let message;
    let bytes = 0;
    try {
      const st = await fh.stat();
      if (!st.isFile()) return { kind: 'vanished' };
      // cleanup and postdrop set the owner execute bit when a file is complete; until then it is being written.
      if ((entry.queue === 'incoming' || entry.queue === 'maildrop') && (st.mode & STAT_EXEC_OWNER) === 0) return { kind: 'incomplete' };
      bytes = st.size;
      message = await readQueueFile(fileSource(fh, st.size), { maxContentBytes: maxContent });
    } catch (e) {
      if (e instanceof QueueFileError) return { kind: 'error', bytes, message: `corrupt queue file: ${e.message}` };
      return { kind: 'failed', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
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
      // A match is enough to select: the content checks (the slow part) are skipped.
      if (reasons.length > 0) return { kind: 'checked', bytes, selection: { ...details(), reasons } };
    }
    if (!options.contentChecks) return { kind: 'checked', bytes };
    if (message.content === undefined) {
      return { kind: 'too-large', bytes, message: `${message.contentSize} bytes of content, more than clamav.maxScanBytes (${options.config.clamav.maxScanBytes})` };
    }
    const check = await checkMessage(message.content, options.config, scanner);
    if (check.findingsVerdict.action !== 'accept') return { kind: 'checked', bytes, selection: { ...details(), verdict: check.findingsVerdict.label, reasons: check.findingsVerdict.reasons } };
    if (check.failures.length > 0) {
      // Our own interruption cut the scan short: not an error, and not done (the next run reads it again).
      if (options.signal?.aborted === true) return { kind: 'aborted' };
      return { kind: 'failed', message: check.failures.map((f) => `${f.check}: ${f.reason}: ${f.detail}`).join('; ') };
    }
    if (check.oversize) {
      return {
        kind: 'too-large',
        bytes,
        message: `clamd refused to scan its ${message.contentSize} bytes (clamd's StreamMaxLength is smaller: raise it in clamd.conf, keeping clamav.maxScanBytes at most that)`,
      };
    }
    return { kind: 'checked', bytes };
  }

  // Between listings the generator waits for every file in flight, so a file that vanished (moved) is known
  // before the queues are listed again.
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  const idle = (): Promise<void> => (inFlight === 0 ? Promise.resolve() : new Promise((r) => (onIdle = r)));
  /** Set when a file of the current listing came to anything but "still being written": worth another listing. */
  let progressed = false;

  function settle(entry: QueueEntry, outcome: Outcome): void {
    const id = entry.id;
    claimed.delete(id);
    switch (outcome.kind) {
      case 'checked':
      case 'error':
      case 'too-large':
        done.add(id);
        retry.delete(id);
        vanished.delete(id);
        incomplete.delete(id);
        progressed = true;
        if (outcome.bytes !== undefined) {
          counts.files++;
          counts.bytes += outcome.bytes;
          filesThisRun++;
        }
        if (outcome.kind === 'checked' && outcome.selection) select(entry, outcome.selection);
        if (outcome.kind === 'error') {
          counts.errors++;
          errorsThisRun++;
          events.onProblem({ key: entry.key, kind: 'error', message: outcome.message });
        }
        if (outcome.kind === 'too-large') {
          counts.oversize++;
          unchecked.push({ id, key: entry.key, reason: outcome.message });
          events.onProblem({ key: entry.key, kind: 'unchecked', message: tooLarge(id, outcome.message) });
        }
        break;
      case 'failed':
        claimed.add(id);
        retry.add(id);
        progressed = true;
        events.onProblem({ key: entry.key, kind: 'retry', message: `could not be checked: ${outcome.message}` });
        break;
      case 'vanished':
        vanished.add(id);
        progressed = true;
        break;
      case 'incomplete':
        incomplete.add(id);
        break;
      case 'aborted':
        break;
    }
    if (--inFlight === 0 && onIdle) {
      const resolveIdle = onIdle;
      onIdle = undefined;
      resolveIdle();
    }
  }

  const reportedDirs = new Set<string>();
  const aborted = (): boolean => options.signal?.aborted === true;
  // The walk, then listings again until one finds nothing to read (or MAX_RELISTS): a message that moved
  // behind the walk (active → deferred) is read at its new place. Skipped by ID: done, or taken already.
  async function* entries(): AsyncGenerator<QueueEntry> {
    for (let listing = 0; ; listing++) {
      progressed = false;
      for await (const e of walkQueues({
        queueDir: options.queueDir,
        queues: options.queues,
        onProblem: (p) => {
          if (reportedDirs.has(p.path)) return;
          reportedDirs.add(p.path);
          counts.errors++;
          errorsThisRun++;
          events.onProblem({ key: p.path, kind: 'error', message: `cannot read the directory: ${p.error}` });
        },
      })) {
        if (aborted()) return;
        if (done.has(e.id) || claimed.has(e.id) || (only !== undefined && !only.has(e.id))) continue;
        claimed.add(e.id);
        inFlight++;
        yield e;
      }
      await idle();
      if (aborted()) return;
      if (!progressed || listing >= MAX_RELISTS) break;
    }
    // What was left to retry and is not in the queue any more is gone (delivered or deleted).
    for (const id of retry) {
      if (claimed.has(id)) continue; // failed in this run: still there
      retry.delete(id);
      vanished.add(id);
    }
    walked = true;
  }

  const progressTimer = events.onProgress
    ? setInterval(() => events.onProgress?.({ counts: totals(), filesThisRun, elapsedMs: performance.now() - started, at }), options.progressInterval ?? 2000)
    : undefined;
  progressTimer?.unref();

  const source = entries();
  let issued = 0;
  const stopped = (): boolean => aborted() || limited;
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
      // Not read: the next run finds it again. Only an interruption stops here: this entry was issued within
      // --limit, and another worker reaching the limit meanwhile must not drop it.
      if (aborted()) {
        settle(entry, { kind: 'aborted' });
        return;
      }
      at = entry.key;
      let outcome: Outcome;
      try {
        outcome = await processEntry(entry);
      } catch (e) {
        outcome = { kind: 'failed', message: `internal error: ${(e as Error).message}` };
      }
      settle(entry, outcome);
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
  const interrupted = aborted() && !walked;
  while (saving) await saving;
  await save();
  while (saving) await saving;
  return {
    counts: totals(),
    filesThisRun,
    elapsedMs: performance.now() - started,
    at,
    interrupted,
    limited: limited && !walked,
    walked,
    finished: walked && retry.size === 0,
    retryPending: retry.size,
    checkpointError,
    replayed,
    errorsThisRun,
    selectedThisRun,
    selectedInMaildrop,
  };
}
