// Lists archives other than zip (RAR, 7z, CAB, ARJ, LZH, tar) with 7-Zip in a worker thread, one at a time.
// A listing that runs past its time limit is the archive's fault (a header bomb): the worker is stopped and the
// archive reported unreadable. A listing that cannot even start in time is overload, and a worker that fails
// (it cannot load, or dies) is ours: the caller tempfails.
// The worker starts on the first archive and stops after a quiet minute, so gateways that never see such
// archives never load 7-Zip.
import { Worker } from 'node:worker_threads';
import type { SevenZipListing, SevenZipRequest } from './seven-zip-listing.js';

export interface ArchiveLister {
  /** Lists `data`; rejects (the message is tempfailed) when the lister is too busy to start in time or fails. */
  list(data: Buffer, maxMembers: number, timeoutMs: number): Promise<SevenZipListing>;
}

export class ArchiveListerBusyError extends Error {
  override readonly name = 'ArchiveListerBusyError';
}

interface Job {
  readonly request: SevenZipRequest;
  readonly timeoutMs: number;
  readonly resolve: (listing: SevenZipListing) => void;
  readonly reject: (e: Error) => void;
  waitTimer?: NodeJS.Timeout;
}

export interface SevenZipListerOptions {
  /** Archives waiting for the worker before new ones are refused as overload (one per message, see ArchiveContext.listingTurns). */
  readonly maxWaiting?: number;
  /** The worker stops after this long without work. */
  readonly idleMs?: number;
  /** The worker's module (tests give a broken one). */
  readonly workerUrl?: URL;
}

const WORKER_URL = new URL('./seven-zip-worker.js', import.meta.url);

export class SevenZipLister implements ArchiveLister {
  private worker: Worker | undefined;
  private readonly waiting: Job[] = [];
  private running: { job: Job; timer: NodeJS.Timeout } | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private readonly maxWaiting: number;
  private readonly idleMs: number;
  private readonly workerUrl: URL;

  constructor(options: SevenZipListerOptions = {}) {
    this.maxWaiting = options.maxWaiting ?? 32;
    this.idleMs = options.idleMs ?? 60_000;
    this.workerUrl = options.workerUrl ?? WORKER_URL;
  }

  /** Workers started so far (a restart after a time-out or crash counts). */
  workersStarted = 0;

  list(data: Buffer, maxMembers: number, timeoutMs: number): Promise<SevenZipListing> {
    if (this.waiting.length >= this.maxWaiting) {
      return Promise.reject(new ArchiveListerBusyError(`${this.waiting.length} archives already wait to be listed`));
    }
    return new Promise((resolve, reject) => {
      // A copy of our own, in an ArrayBuffer of its own, to hand over to the worker (moved, not cloned): the caller
      // keeps `data` (a gzip is decompressed after its listing), and `data` may be a slice of a pooled buffer.
      const job: Job = { request: { id: this.nextId++, data: new Uint8Array(data), maxMembers }, timeoutMs, resolve, reject };
      job.waitTimer = setTimeout(() => {
        const at = this.waiting.indexOf(job);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(new ArchiveListerBusyError(`no archive lister free within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.push(job);
      this.dispatch();
    });
  }

  /** Stops the worker; archives waiting or being listed are refused as busy. */
  async close(): Promise<void> {
    for (const job of this.waiting.splice(0)) {
      clearTimeout(job.waitTimer);
      job.reject(new ArchiveListerBusyError('the archive lister is closing'));
    }
    this.fail(new ArchiveListerBusyError('the archive lister is closing'));
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private dispatch(): void {
    if (this.running) return;
    const job = this.waiting.shift();
    if (job === undefined) {
      this.idleTimer ??= setTimeout(() => this.stopIdleWorker(), this.idleMs).unref();
      return;
    }
    clearTimeout(job.waitTimer);
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const worker = this.ensureWorker();
    const timer = setTimeout(() => {
      this.stopWorker();
      this.finish({ names: [], encrypted: false, expandedBytes: 0, complete: false, error: `listing took longer than ${job.timeoutMs} ms` });
    }, job.timeoutMs);
    this.running = { job, timer };
    worker.postMessage(job.request, [job.request.data.buffer]);
  }

  /** The running listing is over: with its listing, or with an error when it cannot be had (the worker failed). */
  private settle(outcome: { listing: SevenZipListing } | { error: Error }): void {
    const running = this.running;
    if (!running) return;
    this.running = undefined;
    clearTimeout(running.timer);
    if ('listing' in outcome) running.job.resolve(outcome.listing);
    else running.job.reject(outcome.error);
    this.dispatch();
  }

  private finish(listing: SevenZipListing): void {
    this.settle({ listing });
  }

  /** Our failure, not the archive's: its message is tempfailed, and the next listing gets a new worker. */
  private fail(error: Error): void {
    this.settle({ error });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    // What bounds memory. This heap limit: the worker's JavaScript objects (the listing's lines). Outside it: the
    // archive the worker lists, one at a time, up to archives.maxBytes (moved to it, and 7-Zip's file is those
    // bytes), and 7-Zip's heap, WebAssembly memory capped by the worker (seven-zip-worker.ts). Here: a copy per
    // waiting archive, and a message hands over one archive at a time (ArchiveContext.listingTurns), so at most
    // maxWaiting copies, one per message. Time: listTimeout bounds each listing.
    const worker = new Worker(this.workerUrl, { resourceLimits: { maxOldGenerationSizeMb: 256 } });
    this.workersStarted++;
    worker.on('message', (reply: { id: number; listing: SevenZipListing }) => {
      if (this.worker === worker && this.running?.job.request.id === reply.id) this.finish(reply.listing);
    });
    const lost = (why: string): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.fail(new Error(`the 7-Zip worker stopped: ${why}`));
    };
    worker.on('error', (e) => lost(e.message));
    worker.on('exit', (code) => lost(`exit code ${code}`));
    // After the listeners (adding a 'message' listener refs the worker again): the worker never keeps the
    // process alive, so `scan` exits when its work is done.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private stopWorker(): void {
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
  }

  private stopIdleWorker(): void {
    this.idleTimer = undefined;
    if (this.running || this.waiting.length > 0) return;
    this.stopWorker();
  }
}

/** The process's lister: every inspection shares one worker. */
export const sharedArchiveLister: ArchiveLister = new SevenZipLister();
