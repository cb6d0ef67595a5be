// Walks Postfix queue directories in a fixed order: the queues in the order given, and inside each queue the
// (hashed) subdirectories and files sorted by name, depth first. The order is total and stable (progress
// shows where a sweep is); it is not a record of what is done, since Postfix moves files between queues.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** The queues a sweep may read. `postsuper -d` looks in hold, incoming, active and deferred by default. */
export const QUEUE_NAMES = ['deferred', 'hold', 'active', 'incoming', 'maildrop'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/** Short (hex) and long (enable_long_queue_ids) queue IDs; other names (temp files…) are not queue files. */
const QUEUE_ID = /^[0-9A-Za-z]{6,}$/;

export function isQueueId(name: string): boolean {
  return QUEUE_ID.test(name);
}

export interface QueueEntry {
  readonly queue: QueueName;
  /** Path relative to the queue directory, e.g. `deferred/A/B/ABC123`; also the entry's checkpoint key. */
  readonly key: string;
  readonly path: string;
  readonly id: string;
}

export interface WalkProblem {
  readonly path: string;
  readonly error: string;
}

/** Compares two keys in walk order: queue order first, then path components by code unit. */
export function makeKeyComparator(queues: readonly string[]): (a: string, b: string) => number {
  const rank = new Map(queues.map((q, i) => [q, i]));
  return (a, b) => {
    const pa = a.split('/');
    const pb = b.split('/');
    const ra = rank.get(pa[0] ?? '') ?? queues.length;
    const rb = rank.get(pb[0] ?? '') ?? queues.length;
    if (ra !== rb) return ra - rb;
    for (let i = 1; i < Math.max(pa.length, pb.length); i++) {
      const x = pa[i];
      const y = pb[i];
      if (x === y) continue;
      if (x === undefined) return -1;
      if (y === undefined) return 1;
      return x < y ? -1 : 1;
    }
    return 0;
  };
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface WalkOptions {
  readonly queueDir: string;
  readonly queues: readonly QueueName[];
  /** Entries at or before this key (in walk order) are skipped, and whole subtrees before it are not read. */
  readonly after?: string | undefined;
  /** Called for a directory that exists but cannot be read. Vanished directories are skipped quietly. */
  readonly onProblem?: (problem: WalkProblem) => void;
}

export async function* walkQueues(options: WalkOptions): AsyncGenerator<QueueEntry> {
  const compare = makeKeyComparator(options.queues);
  const after = options.after;
  for (const queue of options.queues) {
    if (after !== undefined && compare(`${queue}/\uffff`, after) <= 0 && !after.startsWith(`${queue}/`)) continue;
    yield* walkDir(options, queue, queue, compare);
  }
}

async function* walkDir(options: WalkOptions, queue: QueueName, rel: string, compare: (a: string, b: string) => number): AsyncGenerator<QueueEntry> {
  const dir = join(options.queueDir, rel);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') options.onProblem?.({ path: dir, error: code ?? String(e) });
    return;
  }
  entries.sort((a, b) => byCodeUnit(a.name, b.name));
  const after = options.after;
  for (const entry of entries) {
    const key = `${rel}/${entry.name}`;
    if (entry.isDirectory()) {
      // Skip a subtree that lies wholly before the watermark: it is before it and not an ancestor of it.
      if (after !== undefined && compare(key, after) < 0 && !after.startsWith(`${key}/`)) continue;
      yield* walkDir(options, queue, key, compare);
    } else if (entry.isFile() && isQueueId(entry.name)) {
      if (after !== undefined && compare(key, after) <= 0) continue;
      yield { queue, key, path: join(options.queueDir, key), id: entry.name };
    }
  }
}
