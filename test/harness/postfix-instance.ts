// A private, throw-away Postfix for end-to-end tests: its own config, queue, data and mail directories under
// one temp dir, SMTP on free loopback ports (IPv4 and IPv6), no DNS, mail for the test domain delivered to
// Maildirs the test reads back, everything else refused. Never touches /etc/postfix or the system queue.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCleanup } from './exit-cleanup.js';
import { freeDualStackPort } from './free-port.js';
import { run, type CommandResult } from './run-command.js';
import { waitForDelivery } from './wait-for.js';

export interface MilterTimeouts {
  /** milter_connect_timeout */
  readonly connect: string;
  /** milter_command_timeout (CONNECT … DATA, UNKNOWN) */
  readonly command: string;
  /** milter_content_timeout (HEADER … EOM) */
  readonly content: string;
}

export interface PostfixInstanceOptions {
  /** Postfix milter address, e.g. `inet:127.0.0.1:PORT`; used for smtpd_milters and non_smtpd_milters. */
  readonly milter: string;
  /** Domain delivered to Maildirs. Default `example.test`. */
  readonly domain?: string;
  /** Local parts of `domain` that have a Maildir (named after them); others are unknown users. */
  readonly mailboxes?: readonly string[];
  /** Short by default so a hung milter fails a test quickly instead of at Postfix's 30 s / 300 s. */
  readonly milterTimeouts?: MilterTimeouts;
  /** Extra or overriding main.cf parameters. */
  readonly mainCf?: Readonly<Record<string, string>>;
  /** How long start() waits for Postfix to come up. Default 20 s. */
  readonly startTimeoutMs?: number;
}

const POSTFIX = '/usr/sbin/postfix';
const SENDMAIL = '/usr/sbin/sendmail';
const POSTQUEUE = '/usr/sbin/postqueue';
const POSTSUPER = '/usr/sbin/postsuper';
const POSTCONF = '/usr/sbin/postconf';

const DEFAULT_MAILBOXES = ['alice', 'bob', 'carol', 'dave', 'erin', 'blocked', 'postmaster'];

const DEFAULT_TIMEOUTS: MilterTimeouts = { connect: '2s', command: '5s', content: '10s' };

// Instances still running when the process exits (a crashed test, a missing `after`, Ctrl-C) are torn down
// synchronously, so no master process or temp dir outlives the test run.
const live = new ExitCleanup<PostfixInstance>((instance) => instance.stopSync(), { signals: true });

export class PostfixInstance {
  readonly domain: string;
  private readonly options: PostfixInstanceOptions;
  private rootDir: string | undefined;
  private port = 0;
  private started = false;

  constructor(options: PostfixInstanceOptions) {
    this.options = options;
    this.domain = options.domain ?? 'example.test';
  }

  /** Everything of this instance lives under here (a fresh temp dir made by start()). */
  get root(): string {
    if (this.rootDir === undefined) throw new Error('PostfixInstance: not started');
    return this.rootDir;
  }
  get configDir(): string {
    return join(this.root, 'etc');
  }
  get queueDir(): string {
    return join(this.root, 'spool');
  }
  get dataDir(): string {
    return join(this.root, 'data');
  }
  get mailBase(): string {
    return join(this.root, 'mail');
  }
  get logFile(): string {
    return join(this.root, 'log', 'maillog');
  }

  /** The SMTP port, the same on 127.0.0.1 and [::1]. */
  get smtpPort(): number {
    return this.port;
  }

  get running(): boolean {
    return this.started;
  }

  /**
   * Creates the directory tree and configuration, then starts Postfix and waits until it listens. If that
   * fails, everything is cleaned up and the error carries the maillog.
   */
  async start(): Promise<void> {
    if (this.rootDir !== undefined) throw new Error('PostfixInstance: start() called twice');
    this.rootDir = await mkdtemp(join(tmpdir(), 'pf-e2e-'));
    live.add(this);
    try {
      await this.setUpAndStart();
    } catch (e) {
      const log = await this.maillog();
      await this.stop();
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- maillog ---\n${log}`, { cause: e });
    }
  }

  private async setUpAndStart(): Promise<void> {
    const owner = await userIds('postfix');
    this.port = await freeDualStackPort();

    // Daemons running as `postfix` (and virtual as the mailbox owner) must traverse the tree.
    await chmod(this.root, 0o755);
    for (const d of [this.configDir, this.queueDir, join(this.root, 'log')]) await mkdir(d, { mode: 0o755 });
    await mkdir(this.dataDir, { mode: 0o700 });
    await chown(this.dataDir, owner.uid, owner.gid);
    await mkdir(this.mailBase, { mode: 0o755 });
    await chown(this.mailBase, owner.uid, owner.gid);

    await writeFile(join(this.configDir, 'main.cf'), this.mainCf(owner));
    await writeFile(join(this.configDir, 'master.cf'), this.masterCf());
    // virtual(8) refuses regexp substitutions for mailbox paths, hence an explicit list (texthash: no postmap).
    const mailboxes = this.options.mailboxes ?? DEFAULT_MAILBOXES;
    for (const m of mailboxes) if (!/^[a-z0-9][-a-z0-9._+]*$/i.test(m)) throw new Error(`mailbox name '${m}' is not a plain local part`);
    await writeFile(join(this.configDir, 'virtual_mailboxes'), mailboxes.map((m) => `${m}@${this.domain}\t${m}/\n`).join(''));

    const timeout = this.options.startTimeoutMs ?? 20_000;
    // `postfix start` creates the missing queue subdirectories and waits (master -w) until the listeners are bound.
    const r = await run(POSTFIX, ['-c', this.configDir, 'start'], { timeoutMs: timeout });
    this.started = true;
    if (r.code !== 0) throw new Error(`postfix start failed (${r.code}): ${r.stderr || r.stdout}`);
    await this.waitForLog(/daemon started/, timeout);
  }

  private mainCf(owner: { uid: number; gid: number }): string {
    const t = this.options.milterTimeouts ?? DEFAULT_TIMEOUTS;
    const refuse = 'error:5.7.1 outbound mail is disabled in this test instance';
    const params: Record<string, string> = {
      compatibility_level: '3.6',
      queue_directory: this.queueDir,
      data_directory: this.dataDir,
      mail_owner: 'postfix',
      setgid_group: 'postdrop',
      // postlogd instead of syslog (there is none); the file must be under an allowed prefix.
      maillog_file: this.logFile,
      maillog_file_prefixes: this.root,
      // Explicit names: the machine's own hostname is not qualified and must never be resolved.
      myhostname: `mta.${this.domain}`,
      mydomain: this.domain,
      myorigin: '$mydomain',
      mydestination: '',
      inet_protocols: 'all',
      inet_interfaces: '127.0.0.1, [::1]',
      mynetworks: '127.0.0.0/8 [::1]/128',
      // No DNS anywhere: no client name lookups, no MX lookups (and no outbound SMTP at all, below).
      smtpd_peername_lookup: 'no',
      smtp_dns_support_level: 'disabled',
      lmtp_dns_support_level: 'disabled',
      smtpd_client_restrictions: '',
      smtpd_helo_restrictions: '',
      smtpd_sender_restrictions: '',
      smtpd_recipient_restrictions: '',
      smtpd_relay_restrictions: 'reject_unauth_destination',
      smtpd_authorized_xclient_hosts: '127.0.0.0/8 [::1]/128',
      // Mail for the test domain goes to Maildirs; everything else is refused without leaving the machine.
      virtual_mailbox_domains: this.domain,
      virtual_mailbox_base: this.mailBase,
      virtual_mailbox_maps: `texthash:${join(this.configDir, 'virtual_mailboxes')}`,
      virtual_uid_maps: `static:${owner.uid}`,
      virtual_gid_maps: `static:${owner.gid}`,
      virtual_minimum_uid: '1',
      default_transport: refuse,
      relay_transport: refuse,
      local_transport: refuse,
      // Debian's defaults point at /etc/aliases and NIS; this instance uses neither.
      alias_maps: '',
      alias_database: '',
      biff: 'no',
      append_dot_mydomain: 'no',
      // Test speed: no tarpitting of clients that get rejections, no inflow throttling of local submissions.
      smtpd_error_sleep_time: '0s',
      smtpd_soft_error_limit: '100',
      smtpd_hard_error_limit: '200',
      in_flow_delay: '0s',
      smtpd_milters: this.options.milter,
      non_smtpd_milters: this.options.milter,
      milter_default_action: 'tempfail',
      milter_protocol: '6',
      milter_connect_timeout: t.connect,
      milter_command_timeout: t.command,
      milter_content_timeout: t.content,
      ...this.options.mainCf,
    };
    return `${Object.entries(params)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`;
  }

  // Only the services this setup uses; no chroot (the chroot would need copies of system files).
  private masterCf(): string {
    const p = this.port;
    return `${[
      `127.0.0.1:${p} inet n - n - - smtpd`,
      `[::1]:${p} inet n - n - - smtpd`,
      'pickup unix n - n 60 1 pickup',
      'cleanup unix n - n - 0 cleanup',
      'qmgr unix n - n 300 1 qmgr',
      'rewrite unix - - n - - trivial-rewrite',
      'bounce unix - - n - 0 bounce',
      'defer unix - - n - 0 bounce',
      'trace unix - - n - 0 bounce',
      'verify unix - - n - 1 verify',
      'flush unix n - n 1000? 0 flush',
      'proxymap unix - - n - - proxymap',
      'proxywrite unix - - n - 1 proxymap',
      'showq unix n - n - - showq',
      'error unix - - n - - error',
      'retry unix - - n - - error',
      'discard unix - - n - - discard',
      'virtual unix - n n - - virtual',
      'anvil unix - - n - 1 anvil',
      'scache unix - - n - 1 scache',
      'postlog unix-dgram n - n - 1 postlogd',
    ].join('\n')}\n`;
  }

  /** Stops Postfix (if running) and deletes the temp dir. Safe to call more than once and after a failed start. */
  async stop(): Promise<void> {
    if (this.started) {
      const r = await run(POSTFIX, ['-c', this.configDir, 'stop'], { timeoutMs: 15_000 });
      if (r.code !== 0) await run(POSTFIX, ['-c', this.configDir, 'abort'], { timeoutMs: 15_000 });
      await this.waitForMasterExit(10_000);
      this.started = false;
    }
    if (this.rootDir === undefined) return;
    // Children of the master may still be finishing a write; retry instead of failing on ENOTEMPTY.
    await rm(this.rootDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    live.delete(this);
  }

  /** Last-resort cleanup from the process exit hook (no event loop there). */
  stopSync(): void {
    if (this.started) {
      try {
        execFileSync(POSTFIX, ['-c', this.configDir, 'abort'], { stdio: 'ignore', timeout: 10_000 });
      } catch {
        // Not running any more: nothing to stop.
      }
      this.started = false;
    }
    if (this.rootDir !== undefined) rmSync(this.rootDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    live.delete(this);
  }

  /** The master process's id while the instance runs (its children are smtpd, cleanup, qmgr and the rest). */
  async masterPid(): Promise<number | undefined> {
    const pid = Number((await readFile(join(this.queueDir, 'pid', 'master.pid'), 'utf8').catch(() => '')).trim());
    return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : undefined;
  }

  private async waitForMasterExit(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await this.masterPid()) === undefined) return;
      await sleep(50);
    }
  }

  /** Maildir of one local part of the test domain. */
  mailbox(localPart: string): string {
    return join(this.mailBase, localPart);
  }

  /** Raw text of every message delivered to `localPart` so far, oldest first. */
  async readMessages(localPart: string): Promise<string[]> {
    const dir = join(this.mailbox(localPart), 'new');
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    // Maildir names start with the delivery time in seconds; mtime orders within a second.
    const files = await Promise.all(
      names.map(async (name) => {
        const path = join(dir, name);
        return { name, path, mtime: (await stat(path)).mtimeMs };
      }),
    );
    files.sort((a, b) => a.mtime - b.mtime || a.name.localeCompare(b.name));
    return Promise.all(files.map((f) => readFile(f.path, 'latin1')));
  }

  /** Waits until `localPart` holds at least `count` messages; returns all of them. */
  waitForMessages(localPart: string, count: number, timeoutMs = 10_000): Promise<string[]> {
    return waitForDelivery(`${localPart}@${this.domain}`, () => this.readMessages(localPart), count, timeoutMs, async () =>
      `--- queue ---\n${await this.postqueue()}\n--- maillog tail ---\n${tail(await this.maillog(), 30)}`);
  }

  async maillog(): Promise<string> {
    if (this.rootDir === undefined) return '';
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  /** Waits until the maillog has a line matching `pattern`; returns that line. */
  async waitForLog(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = (await this.maillog()).split('\n').find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (Date.now() >= deadline) throw new Error(`no maillog line matching ${pattern} after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /**
   * Submits a message with this instance's `sendmail` command (so it goes through pickup, cleanup and
   * non_smtpd_milters). `args` are sendmail arguments such as `['-f', 'from@x', '--', 'to@y']`.
   */
  sendmail(args: readonly string[], message: string): Promise<CommandResult> {
    return run(SENDMAIL, ['-C', this.configDir, ...args], { input: message, timeoutMs: 15_000 });
  }

  /** `postqueue -p` output (the queue listing). */
  async postqueue(): Promise<string> {
    const r = await run(POSTQUEUE, ['-c', this.configDir, '-p'], { timeoutMs: 10_000 });
    return r.stdout + r.stderr;
  }

  /** Deletes every queued message (`postsuper -d ALL`). */
  async deleteQueue(): Promise<void> {
    const r = await run(POSTSUPER, ['-c', this.configDir, '-d', 'ALL'], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`postsuper -d ALL failed: ${r.stderr}`);
  }

  /** One effective main.cf parameter (`postconf -h`). */
  async postconf(name: string): Promise<string> {
    const r = await run(POSTCONF, ['-c', this.configDir, '-h', name], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`postconf ${name} failed: ${r.stderr}`);
    return r.stdout.trim();
  }
}

async function userIds(user: string): Promise<{ uid: number; gid: number }> {
  const out = await new Promise<string>((resolve, reject) =>
    execFile('id', [user], (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const m = /uid=(\d+).*?gid=(\d+)/.exec(out);
  if (!m?.[1] || !m[2]) throw new Error(`cannot parse 'id ${user}': ${out}`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines - 1).join('\n');
}

/** True when the Postfix binaries these tests need are installed. */
export function postfixAvailable(): boolean {
  return [POSTFIX, SENDMAIL, POSTQUEUE, POSTSUPER].every((f) => existsSync(f));
}
