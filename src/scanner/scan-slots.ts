// Admission for scans: at most `limit` at once; a scan waits a bounded time for a slot and is otherwise
// turned away, so a slow or stuck clamd shows up as quick tempfails instead of a pile of waiting sessions.

/** Gives the slot back; calling it more than once is harmless. */
export type ReleaseSlot = () => void;

interface Waiter {
  readonly grant: (release: ReleaseSlot | null) => void;
  readonly timer: NodeJS.Timeout;
}

export class ScanSlots {
  readonly limit: number;
  #active = 0;
  readonly #waiters: Waiter[] = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`scan slot limit must be a positive integer, got ${limit}`);
    this.limit = limit;
  }

  get active(): number {
    return this.#active;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** A slot at once when one is free and nobody waits, else null (then `acquire` waits its turn). */
  tryAcquire(): ReleaseSlot | null {
    return this.#active < this.limit && this.#waiters.length === 0 ? this.#take() : null;
  }

  /** Resolves with a release function, or null when no slot freed up within `waitMs` or `signal` aborted. */
  acquire(waitMs: number, signal?: AbortSignal): Promise<ReleaseSlot | null> {
    if (signal?.aborted === true) return Promise.resolve(null);
    const now = this.tryAcquire();
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve) => {
      const onAbort = (): void => finish(null);
      const finish = (release: ReleaseSlot | null): void => {
        clearTimeout(waiter.timer);
        signal?.removeEventListener('abort', onAbort);
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
        resolve(release);
      };
      const waiter: Waiter = { grant: finish, timer: setTimeout(() => finish(null), waitMs) };
      this.#waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #take(): ReleaseSlot {
    this.#active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      const next = this.#waiters[0];
      if (next !== undefined) next.grant(this.#take());
    };
  }
}
