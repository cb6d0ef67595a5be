// A private, real clamd (Debian's clamav-daemon binary) for end-to-end tests: its own config, database, socket,
// temp and log files under one temp dir; a UNIX socket and TCP on a free 127.0.0.1 port. There is no official
// signature database here (no network), so the harness writes its own:
//   - `Eicar-Test-Signature`: an .ndb body signature on the EICAR test string (found anywhere: plain text,
//     decoded MIME parts, zip members);
//   - `Win.Worm.TestMydoom`: an .ndb body signature on a marker that tests embed in a fake .exe;
//   - optionally a `daily.cud` (an unsigned container in the CVD format) so that VERSION reports a database
//     version and date, as it does with the official daily database: `ClamAV 1.4.6/27500/<date>`.
// clamd appends `.UNOFFICIAL` to the names of signatures outside official databases.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ExitCleanup } from './exit-cleanup.js';
import { freeLoopbackPort } from './free-port.js';

const CLAMD = '/usr/sbin/clamd';

/** The EICAR anti-virus test string (68 bytes). */
export const EICAR = Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*', 'latin1');
/** Bytes that make clamd report the test worm. */
export const WORM_MARKER = Buffer.from('PMTS-TEST-WORM:I-am-not-really-mydoom:sync-1.01', 'latin1');
/** The names clamd reports for our signatures (it adds `.UNOFFICIAL`). */
export const SIGNATURES = {
  eicar: 'Eicar-Test-Signature.UNOFFICIAL',
  worm: 'Win.Worm.TestMydoom.UNOFFICIAL',
} as const;
/** The database version and build time our daily.cud announces. */
export const DAILY_VERSION = 27500;
export const DAILY_BUILD_TIME = new Date('2026-11-18T09:00:00Z');

/** A file that starts like a Windows executable and carries the worm marker. */
export function fakeWormExe(): Buffer {
  const exe = Buffer.alloc(1024, 0);
  exe.write('MZ', 0, 'latin1');
  exe.writeUInt32LE(0x80, 0x3c);
  exe.write('PE\0\0', 0x80, 'latin1');
  WORM_MARKER.copy(exe, 0x200);
  return exe;
}

export interface ClamdInstanceOptions {
  /** clamd's StreamMaxLength (INSTREAM refuses more). Default 1M so tests can reach it cheaply. */
  readonly streamMaxLength?: string;
  /** Write daily.cud so VERSION reports a database version. Default true. */
  readonly dailyDatabase?: boolean;
  /** How long start() waits for PONG. Default 60 s. */
  readonly startTimeoutMs?: number;
  /**
   * Where the instance's directory (socket, database, TemporaryDirectory) is made. Default os.tmpdir(). clamd
   * writes every stream it scans to a temporary file, so a tmpfs here keeps its cost free of the file system's
   * state (see bench/clamd-end-to-end.ts).
   */
  readonly parentDirectory?: string;
  /** Start clamd in a session of its own (setsid), as systemd starts a service (see GatewayProcessOptions). */
  readonly ownSession?: boolean;
}

const live = new ExitCleanup<ClamdInstance>((instance) => instance.killSync());

export class ClamdInstance {
  readonly dir: string;
  readonly socketPath: string;
  readonly tcpPort: number;
  readonly #startTimeoutMs: number;
  #ownSession = false;
  #process: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  /** Milliseconds from spawn to the first PONG, for the last start. */
  lastStartMs = 0;

  private constructor(dir: string, tcpPort: number, startTimeoutMs: number) {
    this.dir = dir;
    this.socketPath = join(dir, 'clamd.sock');
    this.tcpPort = tcpPort;
    this.#startTimeoutMs = startTimeoutMs;
  }

  static async start(options: ClamdInstanceOptions = {}): Promise<ClamdInstance> {
    const dir = mkdtempSync(join(options.parentDirectory ?? tmpdir(), 'clamd-test-'));
    const instance = new ClamdInstance(dir, await freeLoopbackPort(), options.startTimeoutMs ?? 60_000);
    instance.#writeFiles(options);
    instance.#ownSession = options.ownSession === true;
    live.add(instance);
    try {
      await instance.restart();
    } catch (e) {
      await instance.destroy();
      throw e;
    }
    return instance;
  }

  get unixEndpoint(): string {
    return `unix:${this.socketPath}`;
  }

  get tcpEndpoint(): string {
    return `inet:127.0.0.1:${this.tcpPort}`;
  }

  get running(): boolean {
    return this.#process !== undefined && this.#process.exitCode === null && this.#process.signalCode === null;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /**
   * Connections open now on clamd's UNIX socket, counted from the kernel's table (accepted sockets carry the
   * listener's path; state 03 is connected), so whoever holds them and whatever else they hold does not matter.
   */
  unixConnections(): number {
    return readFileSync('/proc/net/unix', 'utf8')
      .split('\n')
      .filter((line) => {
        const f = line.trim().split(/\s+/);
        return f[5] === '03' && f[7] === this.socketPath;
      }).length;
  }

  /** Resident memory of the clamd process in KiB (from /proc). */
  rssKiB(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return m === null ? NaN : Number(m[1]);
  }

  /** Starts clamd (again, same sockets and database) and waits for PONG on both sockets. */
  async restart(): Promise<void> {
    if (this.running) throw new Error('clamd is already running');
    const started = Date.now();
    const child = spawn(CLAMD, ['--foreground', '-c', join(this.dir, 'clamd.conf')], { stdio: ['ignore', 'ignore', 'pipe'], detached: this.#ownSession });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    this.#process = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = started + this.#startTimeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`clamd exited during start-up: ${stderr.trim() || this.log().slice(-2000)}`);
      if ((await ping({ path: this.socketPath })) && (await ping({ host: '127.0.0.1', port: this.tcpPort }))) break;
      if (Date.now() > deadline) throw new Error(`clamd did not answer PING within ${this.#startTimeoutMs} ms; log:\n${this.log().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    this.lastStartMs = Date.now() - started;
  }

  /** SIGTERM and wait for the exit. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.#process?.kill('SIGTERM');
    await this.#exited;
  }

  /** SIGKILL (a crash) and wait for the exit. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#process?.kill('SIGKILL');
    await this.#exited;
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'clamd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops clamd and removes every file. */
  async destroy(): Promise<void> {
    await this.kill();
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  killSync(): void {
    if (this.running) this.#process?.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  #writeFiles(options: ClamdInstanceOptions): void {
    const db = join(this.dir, 'db');
    const tmp = join(this.dir, 'tmp');
    mkdirSync(db);
    mkdirSync(tmp);
    const ndb = [`Eicar-Test-Signature:0:*:${EICAR.toString('hex')}`, `Win.Worm.TestMydoom:0:*:${WORM_MARKER.toString('hex')}`];
    writeFileSync(join(db, 'pmts-test.ndb'), `${ndb.join('\n')}\n`);
    if (options.dailyDatabase !== false) writeFileSync(join(db, 'daily.cud'), dailyCud());
    const conf = [
      'Foreground yes',
      `LocalSocket ${this.socketPath}`,
      'LocalSocketMode 660',
      'FixStaleSocket yes',
      `TCPSocket ${this.tcpPort}`,
      'TCPAddr 127.0.0.1',
      `DatabaseDirectory ${db}`,
      `TemporaryDirectory ${tmp}`,
      `PidFile ${join(this.dir, 'clamd.pid')}`,
      `LogFile ${join(this.dir, 'clamd.log')}`,
      'LogTime yes',
      `StreamMaxLength ${options.streamMaxLength ?? '1M'}`,
      'MaxThreads 4',
      'ReadTimeout 30',
      'CommandReadTimeout 10',
      'SelfCheck 3600',
      'ConcurrentDatabaseReload no',
      'ScanMail yes',
      'ScanArchive yes',
    ];
    writeFileSync(join(this.dir, 'clamd.conf'), `${conf.join('\n')}\n`);
  }
}

/**
 * An unsigned CVD-format container (`.cud`): a 512-byte `ClamAV-VDB:` header, then a gzipped tar holding
 * `daily.info` (the same header fields and a SHA-256 per file) and one harmless signature file. clamd takes the
 * database version and build time it reports in VERSION from this header.
 */
function dailyCud(): Buffer {
  const stime = Math.floor(DAILY_BUILD_TIME.getTime() / 1000);
  const fields = (md5: string): string => `ClamAV-VDB:18 Nov 2026 09-00 +0000:${DAILY_VERSION}:1:90:${md5}:X:pmts-test:${stime}`;
  const ndb = Buffer.from(`Pmts.Test.DailyMarker:0:*:${Buffer.from('PMTS-DAILY-DATABASE-MARKER').toString('hex')}\n`);
  const info = Buffer.from(`${fields('X')}\ndaily.ndb:${ndb.length}:${createHash('sha256').update(ndb).digest('hex')}\n`);
  const body = gzipSync(tar([
    ['daily.info', info],
    ['daily.ndb', ndb],
  ]));
  const header = Buffer.alloc(512, ' ');
  header.write(fields(createHash('md5').update(body).digest('hex')), 0, 'latin1');
  return Buffer.concat([header, body]);
}

/** A minimal ustar archive of regular files. */
function tar(files: readonly (readonly [string, Buffer])[]): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, data] of files) {
    const h = Buffer.alloc(512, 0);
    h.write(name, 0, 'latin1');
    h.write('0000644\0', 100, 'latin1');
    h.write('0000000\0', 108, 'latin1');
    h.write('0000000\0', 116, 'latin1');
    h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
    h.write(`${Math.floor(DAILY_BUILD_TIME.getTime() / 1000).toString(8).padStart(11, '0')}\0`, 136, 'latin1');
    h.write('        ', 148, 'latin1');
    h.write('0', 156, 'latin1');
    h.write('ustar\0', 257, 'latin1');
    h.write('00', 263, 'latin1');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512, 0));
  }
  blocks.push(Buffer.alloc(1024, 0));
  return Buffer.concat(blocks);
}

/** True when the socket answers `zPING` with PONG within a second. Independent of the scanner under test. */
function ping(target: { path: string } | { host: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(target);
    let reply = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    socket.on('connect', () => socket.write('zPING\0'));
    socket.on('data', (d: Buffer) => {
      reply += d.toString('latin1');
      if (reply.includes('\0')) done(reply === 'PONG\0');
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}
