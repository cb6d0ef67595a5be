// Last-resort cleanup of what a harness started: servers still running and temp dirs still present when the
// process exits (a crashed test, a missing `after`, Ctrl-C) are torn down synchronously, so no daemon or temp
// dir outlives the test run. Each harness keeps its own set, with its own synchronous teardown; the process
// hooks are installed the first time something is added.

export interface ExitCleanupOptions {
  /**
   * Also clean up on SIGINT, SIGTERM and SIGHUP, then die of the same signal as without the handler. For
   * servers whose processes would otherwise survive an interrupted run (they do not die with their parent).
   */
  readonly signals?: boolean;
}

export class ExitCleanup<T> {
  readonly #live = new Set<T>();
  readonly #cleanupSync: (item: T) => void;
  readonly #signals: boolean;
  #installed = false;

  /** `cleanupSync` runs once per item still live at exit; there is no event loop then, so it must not await. */
  constructor(cleanupSync: (item: T) => void, options: ExitCleanupOptions = {}) {
    this.#cleanupSync = cleanupSync;
    this.#signals = options.signals ?? false;
  }

  /** From now until delete(), `item` is cleaned up at exit. */
  add(item: T): void {
    this.#install();
    this.#live.add(item);
  }

  /** `item` was cleaned up normally. */
  delete(item: T): void {
    this.#live.delete(item);
  }

  #cleanAll(): void {
    for (const item of this.#live) this.#cleanupSync(item);
  }

  #install(): void {
    if (this.#installed) return;
    this.#installed = true;
    process.on('exit', () => this.#cleanAll());
    if (!this.#signals) return;
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      // Clean up, then die of the same signal as without this handler (`once`: the re-raise is not caught).
      process.once(signal, () => {
        this.#cleanAll();
        process.kill(process.pid, signal);
      });
    }
  }
}
