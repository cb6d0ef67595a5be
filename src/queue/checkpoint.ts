// The sweep's checkpoint: what an interrupted sweep has done, so the next run with the same file does only the
// rest. Written atomically (temp file, fsync, rename) so a crash or kill leaves the old or the new one, never
// half of one.
//
// Progress is the set of queue IDs done, not paths: Postfix moves a message between queues (maildrop →
// incoming → active → deferred, back to active on retry, to and from hold) under the same ID, so a path
// position would skip a message that moved behind it. 120,000 IDs are about 2 MB of JSON. Counts change in
// the same step as `done`, so a checkpoint taken with files in flight neither counts nor skips those files.
// IDs whose check could not run (clamd down) are under `retry`; once the queues are walked (`walked`), a run
// with the file checks just those. Selected and too-large IDs are kept so a resumed run reports the whole
// sweep again (its output alone feeds `| postsuper -d -`).
import { open, readFile, rename, unlink } from 'node:fs/promises';

export interface CheckpointSelection {
  readonly id: string;
  readonly key: string;
}

/** A message that was not checked because it is too large to scan: never selected, reported by ID. */
export interface CheckpointUnchecked {
  readonly id: string;
  readonly key: string;
  readonly reason: string;
}

export interface CheckpointCounts {
  /** Queue files read to a final outcome (checked, corrupt, or too large to check). */
  files: number;
  selected: number;
  /** Corrupt or unreadable files and unreadable directories. */
  errors: number;
  vanished: number;
  /** Files still being written (incoming/maildrop without the owner execute bit) when the run ended. */
  incomplete: number;
  /** Too large to check (clamav.maxScanBytes, or clamd refused the size): not checked, not selected. */
  oversize: number;
  bytes: number;
}

export interface Checkpoint {
  readonly version: 2;
  /** Identifies the sweep (queue dir, queues, matchers, virus scan); a different sweep refuses the file. */
  readonly fingerprint: string;
  readonly startedAt: string;
  readonly updatedAt: string;
  /** Every queue was walked and listed again until no new queue ID turned up; what is left is `retry`. */
  readonly walked: boolean;
  /** Walked and nothing left to retry: a run with this file starts a new sweep. */
  readonly finished: boolean;
  /** Queue IDs read to a final outcome. */
  readonly done: readonly string[];
  /** Queue IDs whose check could not run; not in `done`. */
  readonly retry: readonly string[];
  readonly selected: readonly CheckpointSelection[];
  readonly unchecked: readonly CheckpointUnchecked[];
  readonly counts: CheckpointCounts;
}

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

export function emptyCounts(): CheckpointCounts {
  return { files: 0, selected: 0, errors: 0, vanished: 0, incomplete: 0, oversize: 0, bytes: 0 };
}

/** The checkpoint in `file`, or undefined when there is none yet. Throws CheckpointError when it is unusable. */
export async function loadCheckpoint(file: string): Promise<Checkpoint | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CheckpointError(`cannot read checkpoint ${file}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`checkpoint ${file} is not valid JSON (${(e as Error).message}); delete it to start over`);
  }
  if (value !== null && typeof value === 'object' && (value as Record<string, unknown>)['version'] === 1) {
    throw new CheckpointError(`checkpoint ${file} is from an earlier sweep-queue that recorded paths, not queue IDs; delete it to start over`);
  }
  if (!isCheckpoint(value)) throw new CheckpointError(`checkpoint ${file} is not a queue sweep checkpoint of version 2; delete it to start over`);
  return value;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function isObjectArray(v: unknown, keys: readonly string[]): boolean {
  return Array.isArray(v) && v.every((s) => s !== null && typeof s === 'object' && keys.every((k) => typeof (s as Record<string, unknown>)[k] === 'string'));
}

function isCheckpoint(v: unknown): v is Checkpoint {
  if (v === null || typeof v !== 'object') return false;
  const c = v as Record<string, unknown>;
  const counts = c['counts'] as Record<string, unknown> | null | undefined;
  return (
    c['version'] === 2 &&
    typeof c['fingerprint'] === 'string' &&
    typeof c['startedAt'] === 'string' &&
    typeof c['walked'] === 'boolean' &&
    typeof c['finished'] === 'boolean' &&
    isStringArray(c['done']) &&
    isStringArray(c['retry']) &&
    isObjectArray(c['selected'], ['id', 'key']) &&
    isObjectArray(c['unchecked'], ['id', 'key', 'reason']) &&
    counts !== null &&
    typeof counts === 'object' &&
    ['files', 'selected', 'errors', 'vanished', 'incomplete', 'oversize', 'bytes'].every((k) => typeof counts[k] === 'number')
  );
}

/** Why a write failed, in words a person can act on (the temp file's name would only confuse). */
function writeFailure(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'its directory does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EROFS') return 'read-only file system';
  if (code === 'ENOSPC') return 'no space left on the device';
  return (e as Error).message;
}

/** Replaces `file` atomically with `checkpoint`. Throws CheckpointError with the reason. */
export async function saveCheckpoint(file: string, checkpoint: Checkpoint): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(checkpoint)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new CheckpointError(`cannot write the checkpoint ${file}: ${writeFailure(e)}`);
  }
}
