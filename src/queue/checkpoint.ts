// The sweep's checkpoint: where an interrupted sweep stopped, so the next run with the same file skips what
// is done. Written atomically (temp file, fsync, rename) so a crash or kill leaves the old or the new one,
// never half of one.
//
// Progress is a watermark (every queue file at or before this key, in walk order, is done) plus the few keys
// after it that finished while an earlier one was still in flight. Files whose check could not run (clamd
// down) are listed under `retry` and tried again on resume. Selected queue IDs are kept so a resumed run
// prints the complete list again (for `| postsuper -d -`).
import { open, readFile, rename, unlink } from 'node:fs/promises';

export interface CheckpointSelection {
  readonly id: string;
  readonly key: string;
}

export interface CheckpointCounts {
  files: number;
  selected: number;
  errors: number;
  vanished: number;
  incomplete: number;
  oversize: number;
  bytes: number;
}

export interface Checkpoint {
  readonly version: 1;
  /** Identifies the sweep (queue dir, queues, matchers, virus scan); a different sweep refuses the file. */
  readonly fingerprint: string;
  readonly startedAt: string;
  readonly updatedAt: string;
  /** The sweep walked every queue to the end. */
  readonly finished: boolean;
  readonly watermark: string | null;
  readonly doneAfter: readonly string[];
  readonly retry: readonly string[];
  readonly selected: readonly CheckpointSelection[];
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
  if (!isCheckpoint(value)) throw new CheckpointError(`checkpoint ${file} is not a queue sweep checkpoint of version 1; delete it to start over`);
  return value;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function isCheckpoint(v: unknown): v is Checkpoint {
  if (v === null || typeof v !== 'object') return false;
  const c = v as Record<string, unknown>;
  const counts = c['counts'] as Record<string, unknown> | null | undefined;
  return (
    c['version'] === 1 &&
    typeof c['fingerprint'] === 'string' &&
    typeof c['startedAt'] === 'string' &&
    typeof c['finished'] === 'boolean' &&
    (c['watermark'] === null || typeof c['watermark'] === 'string') &&
    isStringArray(c['doneAfter']) &&
    isStringArray(c['retry']) &&
    Array.isArray(c['selected']) &&
    (c['selected'] as unknown[]).every((s) => s !== null && typeof s === 'object' && typeof (s as Record<string, unknown>)['id'] === 'string' && typeof (s as Record<string, unknown>)['key'] === 'string') &&
    counts !== null &&
    typeof counts === 'object' &&
    ['files', 'selected', 'errors', 'vanished', 'incomplete', 'oversize', 'bytes'].every((k) => typeof counts[k] === 'number')
  );
}

/** Replaces `file` atomically with `checkpoint`. */
export async function saveCheckpoint(file: string, checkpoint: Checkpoint): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(checkpoint)}\n`);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  await rename(tmp, file);
}
