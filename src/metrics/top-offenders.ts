// The client addresses refused most often over a recent window, in bounded memory, so an admin can act on
// the worst sources without putting addresses into metric labels.
//
// Choice: a windowed Space-Saving sketch (Metwally, Agrawal, El Abbadi 2005). The window is split into
// `buckets` equal slices; each slice has its own Space-Saving summary of `capacity` entries kept in a min-heap
// with a key → position map, so recording is O(log capacity) and memory is buckets × capacity entries,
// whatever the number of distinct addresses. A slice older than the window is dropped whole, so the window
// slides in steps of window/buckets (it covers between window − window/buckets and window of history).
// Queries merge the live slices (O(buckets × capacity)); they are rare (an admin, a CLI, a scrape of /offenders).
//
// Space-Saving overestimates: a newcomer that evicts the smallest entry inherits its count as possible error.
// Each entry reports that bound, so `refusals - errorBound` is a guaranteed lower bound.

export interface TopOffendersOptions {
  /** Addresses tracked per slice, and most returned by top(). */
  readonly capacity: number;
  /** Length of the window in milliseconds. */
  readonly windowMs: number;
  /** Slices per window. Default 6. */
  readonly buckets?: number;
  /** Clock in milliseconds (tests). Default Date.now. */
  readonly now?: () => number;
}

export interface Offender {
  /** The key given to record(): a client address, or its /64 for IPv6 if the caller groups them so. */
  readonly address: string;
  /** Estimated refusals within the window (an upper bound when errorBound > 0). */
  readonly refusals: number;
  /** The true count lies between refusals − errorBound and refusals. */
  readonly errorBound: number;
  /** Rule of the latest refusal seen for this address (label-safe name, e.g. `relay-denied`). */
  readonly lastRule: string | undefined;
  /** When the latest refusal was recorded (ISO 8601). */
  readonly lastSeen: string;
}

interface Entry {
  key: string;
  count: number;
  error: number;
  lastRule: string | undefined;
  lastSeen: number;
}

/** One Space-Saving summary: a min-heap by count with an index from key to heap position. */
class SpaceSaving {
  readonly heap: Entry[] = [];
  private readonly position = new Map<string, number>();
  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Smallest count held when full (the most a key absent from this summary can have had), else 0. */
  get floor(): number {
    return this.heap.length < this.capacity ? 0 : (this.heap[0]?.count ?? 0);
  }

  get(key: string): Entry | undefined {
    const i = this.position.get(key);
    return i === undefined ? undefined : this.heap[i];
  }

  add(key: string, rule: string | undefined, at: number): void {
    const i = this.position.get(key);
    if (i !== undefined) {
      const e = this.heap[i] as Entry;
      e.count += 1;
      e.lastRule = rule;
      e.lastSeen = at;
      this.siftDown(i);
      return;
    }
    if (this.heap.length < this.capacity) {
      this.heap.push({ key, count: 1, error: 0, lastRule: rule, lastSeen: at });
      this.position.set(key, this.heap.length - 1);
      this.siftUp(this.heap.length - 1);
      return;
    }
    // Full: the newcomer takes the place of the smallest entry and inherits its count as possible error.
    const min = this.heap[0] as Entry;
    this.position.delete(min.key);
    min.error = min.count;
    min.count += 1;
    min.key = key;
    min.lastRule = rule;
    min.lastSeen = at;
    this.position.set(key, 0);
    this.siftDown(0);
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((this.heap[parent] as Entry).count <= (this.heap[i] as Entry).count) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < n && (this.heap[l] as Entry).count < (this.heap[smallest] as Entry).count) smallest = l;
      if (r < n && (this.heap[r] as Entry).count < (this.heap[smallest] as Entry).count) smallest = r;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private swap(a: number, b: number): void {
    const ea = this.heap[a] as Entry;
    const eb = this.heap[b] as Entry;
    this.heap[a] = eb;
    this.heap[b] = ea;
    this.position.set(eb.key, a);
    this.position.set(ea.key, b);
  }
}

interface Slice {
  readonly id: number;
  readonly summary: SpaceSaving;
}

/** Longest key kept; an IPv6 address in text is at most 45 characters. */
const MAX_KEY_LENGTH = 64;

export class TopOffenders {
  readonly capacity: number;
  readonly windowMs: number;
  readonly buckets: number;
  private readonly sliceMs: number;
  private readonly now: () => number;
  /** Oldest first; at most `buckets` slices. */
  private slices: Slice[] = [];

  constructor(options: TopOffendersOptions) {
    const buckets = options.buckets ?? 6;
    if (!Number.isInteger(options.capacity) || options.capacity < 1) throw new RangeError(`top offenders: capacity must be a positive integer, got ${options.capacity}`);
    if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`top offenders: buckets must be a positive integer, got ${buckets}`);
    if (!(options.windowMs >= buckets)) throw new RangeError(`top offenders: the window (${options.windowMs} ms) must be at least 1 ms per bucket`);
    this.capacity = options.capacity;
    this.windowMs = options.windowMs;
    this.buckets = buckets;
    this.sliceMs = options.windowMs / buckets;
    this.now = options.now ?? Date.now;
  }

  /** One refusal of a client (by address or address group), with the rule that refused it. */
  record(address: string, rule?: string): void {
    if (address === '') return;
    const key = address.length > MAX_KEY_LENGTH ? address.slice(0, MAX_KEY_LENGTH) : address;
    const at = this.now();
    this.current(at).summary.add(key, rule, at);
  }

  /** The `limit` (default: capacity) addresses with the most refusals in the window, most first. */
  top(limit = this.capacity): Offender[] {
    const live = this.liveSlices(this.now());
    const merged = new Map<string, Entry>();
    for (const slice of live) {
      for (const e of slice.summary.heap) {
        const m = merged.get(e.key);
        if (m === undefined) {
          merged.set(e.key, { ...e });
        } else {
          m.count += e.count;
          m.error += e.error;
          if (e.lastSeen >= m.lastSeen) {
            m.lastSeen = e.lastSeen;
            m.lastRule = e.lastRule;
          }
        }
      }
    }
    // A key missing from a full slice may still have had up to that slice's floor refusals there.
    for (const m of merged.values()) {
      for (const slice of live) {
        if (slice.summary.get(m.key) === undefined) {
          const floor = slice.summary.floor;
          m.count += floor;
          m.error += floor;
        }
      }
    }
    return [...merged.values()]
      .sort((a, b) => b.count - a.count || b.lastSeen - a.lastSeen)
      .slice(0, Math.max(0, Math.min(limit, this.capacity)))
      .map((e) => ({ address: e.key, refusals: e.count, errorBound: e.error, lastRule: e.lastRule, lastSeen: new Date(e.lastSeen).toISOString() }));
  }

  /** Entries held across all slices (at most capacity × buckets). */
  get entries(): number {
    return this.slices.reduce((n, s) => n + s.summary.size, 0);
  }

  private liveSlices(at: number): Slice[] {
    const oldest = Math.floor(at / this.sliceMs) - this.buckets + 1;
    this.slices = this.slices.filter((s) => s.id >= oldest);
    return this.slices;
  }

  private current(at: number): Slice {
    const id = Math.floor(at / this.sliceMs);
    const last = this.slices[this.slices.length - 1];
    if (last !== undefined && last.id === id) return last;
    const slice = { id, summary: new SpaceSaving(this.capacity) };
    this.liveSlices(at).push(slice);
    return slice;
  }
}
