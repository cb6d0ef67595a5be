// A private, throw-away redis-server for tests: its own temp dir, a free loopback port, no persistence (no
// RDB, no AOF), never the system instance. Fault tests can kill it, pause it (SIGSTOP: connected but silent)
// and restart it on the same port.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCleanup } from './exit-cleanup.js';
import { freeLoopbackPort } from './free-port.js';

const REDIS_SERVER = '/usr/bin/redis-server';

const live = new ExitCleanup<RedisInstance>((instance) => instance.killSync());

/** One PING over a raw socket: true on +PONG. */
function ping(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

export class RedisInstance {
  private dir = '';
  private child: ChildProcess | undefined;
  private port = 0;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get listenPort(): number {
    return this.port;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts on a free port (first time) or the same port again (after stop/kill). */
  async start(timeoutMs = 10_000): Promise<void> {
    if (this.running) return;
    if (this.dir === '') this.dir = await mkdtemp(join(tmpdir(), 'pmt-redis-'));
    if (this.port === 0) this.port = await freeLoopbackPort();
    live.add(this);
    const child = spawn(
      REDIS_SERVER,
      [
        '--port', String(this.port),
        '--bind', '127.0.0.1',
        '--protected-mode', 'yes',
        '--save', '',
        '--appendonly', 'no',
        '--dir', this.dir,
        '--logfile', join(this.dir, 'redis.log'),
        '--daemonize', 'no',
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`redis-server exited at start; log:\n${await this.log()}`);
      if (await ping(this.port, 500)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    this.killSync();
    throw new Error(`redis-server did not answer PING on port ${this.port} within ${timeoutMs} ms; log:\n${await this.log()}`);
  }

  async log(): Promise<string> {
    try {
      return await readFile(join(this.dir, 'redis.log'), 'utf8');
    } catch {
      return '(no log)';
    }
  }

  /** Graceful stop (SIGTERM), waiting for the exit. */
  async stop(): Promise<void> {
    await this.signalAndWait('SIGTERM');
  }

  /** Abrupt death (SIGKILL), as a crash. */
  async kill(): Promise<void> {
    await this.signalAndWait('SIGKILL');
  }

  /** Connected clients stay connected but get no answers (SIGSTOP), until resume(). */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops it and removes its directory. */
  async dispose(): Promise<void> {
    this.resume();
    await this.stop();
    live.delete(this);
    if (this.dir !== '') rmSync(this.dir, { recursive: true, force: true });
    this.dir = '';
  }

  killSync(): void {
    if (this.running) {
      this.child?.kill('SIGCONT');
      this.child?.kill('SIGKILL');
    }
  }

  private async signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT');
    child.kill(signal);
    await exited;
  }
}
