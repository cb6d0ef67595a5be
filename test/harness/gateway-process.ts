// Runs the product the way an administrator does: `node dist/cli.js serve --config FILE` as a child process,
// reading its JSON log lines. Start waits for "milter listening" (and the metrics listener when enabled).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = new URL('../../../dist/cli.js', import.meta.url).pathname;

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

export interface GatewayProcessOptions {
  /** The YAML config file's text. Use port 0 for the milter (`inet:127.0.0.1:0`) and metrics (`port: 0`). */
  readonly config: string;
  /** Extra CLI arguments after `serve --config FILE`. */
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly startTimeoutMs?: number;
  /** Group id to run the process with (as `Group=` in a systemd unit): files it creates get this group. */
  readonly gid?: number;
  /**
   * Start it in a session of its own (setsid), as systemd starts a service. With the kernel's autogroup
   * scheduling each session shares the CPU as one group, so this keeps the process out of the caller's group.
   */
  readonly ownSession?: boolean;
}

const live = new Set<GatewayProcess>();
process.once('exit', () => {
  for (const g of live) g.child?.kill('SIGKILL');
});

export class GatewayProcess {
  child: ChildProcess | undefined;
  /** Every JSON log line so far. */
  readonly logs: LogLine[] = [];
  /** Lines on stdout/stderr that were not JSON (start-up errors). */
  readonly otherOutput: string[] = [];
  /** `inet:127.0.0.1:PORT` or `unix:/…` as bound. */
  milterAddress = '';
  metricsPort = 0;
  exitCode: number | null | undefined;
  private dir = '';
  private readonly waiters = new Set<() => void>();
  private exited: Promise<void> = Promise.resolve();

  get configFile(): string {
    return join(this.dir, 'gateway.yaml');
  }

  static async start(options: GatewayProcessOptions): Promise<GatewayProcess> {
    const g = new GatewayProcess();
    await g.launch(options);
    return g;
  }

  private async launch(options: GatewayProcessOptions): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'pmt-gateway-'));
    await writeFile(this.configFile, options.config);
    const child = spawn(process.execPath, [CLI, 'serve', '--config', this.configFile, ...(options.args ?? [])], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
      ...(options.ownSession === true ? { detached: true } : {}),
    });
    this.child = child;
    live.add(this);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        this.exitCode = code;
        live.delete(this);
        this.notify();
        resolve();
      }),
    );
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.otherOutput.push(line);
        }
      }
      this.notify();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => {
      this.otherOutput.push(...c.toString('utf8').split('\n').filter((l) => l !== ''));
      this.notify();
    });
    const timeout = options.startTimeoutMs ?? 15_000;
    const listening = await this.waitForLog((l) => l.msg === 'milter listening', timeout).catch((e: Error) => {
      throw new Error(`${e.message}\noutput:\n${this.otherOutput.join('\n')}\nlogs:\n${this.logs.map((l) => JSON.stringify(l)).join('\n')}`);
    });
    this.milterAddress = String(listening['listen']);
    const metrics = this.logs.find((l) => l.msg.startsWith('metrics listening'));
    if (metrics) this.metricsPort = Number(metrics['port']);
    else if (!/metrics:\s*\n\s+enabled:\s*false/.test(options.config)) {
      const l = await this.waitForLog((x) => x.msg.startsWith('metrics listening'), timeout);
      this.metricsPort = Number(l['port']);
    }
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with the first log line (already seen or future) matching; rejects after the timeout or on exit. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = this.logs.slice(from).find(match);
        if (hit) {
          cleanup();
          resolve(hit);
          return true;
        }
        if (this.exitCode !== undefined) {
          cleanup();
          reject(new Error(`the gateway exited (${String(this.exitCode)}) before the expected log line`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching log line within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter = (): void => void check();
      this.waiters.add(waiter);
      check();
    });
  }

  /** Log lines of one message verdict (`msg: 'message'`). */
  messageLines(): LogLine[] {
    return this.logs.filter((l) => l.msg === 'message');
  }

  /** Writes a new config file and sends SIGHUP; resolves with the reload's log line (reloaded or refused). */
  async reload(config: string, timeoutMs = 10_000): Promise<LogLine> {
    const from = this.logs.length;
    await writeFile(this.configFile, config);
    this.child?.kill('SIGHUP');
    return this.waitForLog((l) => l.msg.startsWith('config reload'), timeoutMs, from);
  }

  /** SIGTERM, then waits for the exit; returns the exit code. */
  async stop(timeoutMs = 40_000): Promise<number | null> {
    if (this.child && this.exitCode === undefined) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
    return this.exitCode ?? null;
  }

  /** Resolves when the process has exited. */
  waitForExit(): Promise<void> {
    return this.exited;
  }
}
