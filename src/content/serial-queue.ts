// Runs async work one piece at a time, in the order it was asked for.

export class SerialQueue {
  /** The last piece asked for, settled either way: it never rejects. */
  private last: Promise<unknown> = Promise.resolve();

  /** Runs `work` once everything asked for before it has settled; its outcome is `work`'s. */
  run<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.last.then(work);
    // A failure belongs to its own caller: the next piece still gets its turn.
    this.last = turn.catch(() => undefined);
    return turn;
  }
}
