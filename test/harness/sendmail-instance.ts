// A private, throw-away Sendmail 8.17 for end-to-end tests, never installed: Debian's sendmail-bin conflicts with
// Postfix, so its .debs are fetched with `apt-get download` into a cache under the repository (.tmp/, reused by
// later runs), unpacked with `dpkg -x`, and the daemon runs from there with a generated config naming our milter.
//
// What it took (Debian 12, Sendmail 8.17.1.9, as root; see also ../shared/running-real-servers.md):
// - Sendmail looks up the machine's own hostname before it reads its config. The short hostname has no dotted
//   name in /etc/hosts, so it would sleep 60 s and send a DNS query off the machine. Every sendmail run (-bi,
//   -bD, -bp) therefore goes through `unshare --mount --propagation private` and a wrapper that bind-mounts our
//   own hosts (dotted name on 127.0.0.1 and ::1), resolv.conf (nameserver 127.0.0.1) and nsswitch.conf
//   (`hosts: files`). Start then takes ~20 ms and nothing leaves loopback.
// - The packaged binary is setgid `mail`, so ld.so ignores LD_LIBRARY_PATH and cannot find the unpacked
//   libwrap.so.0: the cached copy has its setgid bit cleared. sendmail-base is not needed; m4 is the system one.
// - There is no syslog here (no /dev/log), so Sendmail's own log is lost. What we have instead: `-X` (SMTP
//   traffic of every session) and `-D file -d64.5` (milter debug output: options, negotiation, errors).
// - With the default connect macros over loopback Sendmail sends neither `v` nor `{if_addr}` (it leaves
//   `{if_addr}` undefined for loopback interfaces), so a milter cannot tell it is Sendmail; we ask for `v`.
// - Debian's build has IPV6_FULL: an IPv6 client reaches the milter as `IPv6:0:0:0:0:0:0:0:1`, not `IPv6:::1`.
// - The local mailer is a small shell script writing one file per recipient (Sendmail runs it as DefaultUser
//   `daemon`, hence the world-writable mail directory); the `w` flag is removed so any local part of the test
//   domain is deliverable. Other domains go to SMART_HOST, Postfix's smtp-sink on loopback, which dumps them.
// - FEATURE(accept_unresolvable_domains): without it every sender domain is looked up and refused
//   (`553 5.1.8 Domain of sender address … does not exist`, even for the local test domain).
// - No host-status directory and a 1 s Timeout.hoststatus: a stopped sink otherwise poisons relaying for 30 min.
//   Timeout.ident=0: no RFC 1413 query back to the client.
// - The daemon (`-bD`, foreground) writes its pid file only after binding every listener: that is readiness.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { hostname as osHostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseListenAddress } from '@postfix-milter-ts/protocol';
import { ExitCleanup } from './exit-cleanup.js';
import { freeDualStackPort } from './free-port.js';
import { run } from './run-command.js';
import { waitForDelivery } from './wait-for.js';

/** The `T=` equates of INPUT_MAIL_FILTER, in Sendmail's units (`5s`, `2m`). */
export interface SendmailMilterTimeouts {
  /** C: connecting to the milter. */
  readonly connect: string;
  /** S: each write to the milter. */
  readonly send: string;
  /** R: each read of a reply (progress packets restart it, but Sendmail accepts them only after EOM). */
  readonly read: string;
  /** E: from sending EOM to the final reply. */
  readonly eom: string;
}

export type SendmailMacroStage = 'connect' | 'helo' | 'envfrom' | 'envrcpt' | 'data' | 'eoh' | 'eom';

export interface SendmailInstanceOptions {
  /** Where our milter listens: what MilterServer.listen() returned (`inet:127.0.0.1:PORT`, `unix:/path`). */
  readonly milter: string;
  /** Domain delivered locally to per-recipient directories. Default `example.test`. */
  readonly domain?: string;
  /** `F=` of INPUT_MAIL_FILTER. Default `T` (tempfail when the milter is unavailable). */
  readonly milterFlags?: string;
  /** Short by default so a hung milter fails a test quickly. */
  readonly milterTimeouts?: SendmailMilterTimeouts;
  /** Replaces the macro list of a stage (confMILTER_MACROS_*). */
  readonly milterMacros?: Partial<Record<SendmailMacroStage, readonly string[]>>;
  /** Also listen on [::1] (same port). Default true. */
  readonly ipv6?: boolean;
  /** Debug categories for the debug log (`-d`). Default `64.5` (milter). */
  readonly debug?: string;
  /** Extra sendmail.mc lines, inserted before the MAILER lines. */
  readonly extraMc?: string;
  /** How long start() may take, the first download included. Default 60 s. */
  readonly startTimeoutMs?: number;
}

/** Macro lists asked for by default: Sendmail's own defaults plus what our filter uses. */
export const SENDMAIL_TEST_MACROS: Readonly<Record<SendmailMacroStage, readonly string[]>> = {
  connect: ['j', '_', 'v', '{daemon_name}', '{if_name}', '{if_addr}', '{client_addr}', '{client_port}', '{client_name}'],
  helo: ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}'],
  envfrom: ['i', '{auth_type}', '{auth_authen}', '{auth_ssf}', '{auth_author}', '{mail_mailer}', '{mail_host}', '{mail_addr}'],
  envrcpt: ['{rcpt_mailer}', '{rcpt_host}', '{rcpt_addr}'],
  data: [],
  eoh: [],
  eom: ['{msg_id}', 'i'],
};

const DEFAULT_TIMEOUTS: SendmailMilterTimeouts = { connect: '5s', send: '10s', read: '10s', eom: '30s' };
const MILTER_NAME = 'pmts';
const SMTP_SINK = '/usr/sbin/smtp-sink';
const UNSHARE = '/usr/bin/unshare';
const M4 = '/usr/bin/m4';

// Only what the daemon needs; sendmail-base (init scripts, sendmailconfig) and m4 (system-wide) are not.
const PACKAGES = ['sendmail-bin', 'sendmail-cf', 'libwrap0'] as const;

/** The repository root (this file runs from dist-test/test/harness/). */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** .debs and their unpacked tree, kept across runs (.tmp/ is gitignored). */
export const SENDMAIL_CACHE_DIR = join(REPO_ROOT, '.tmp', 'sendmail-debs');

interface SendmailDist {
  readonly sendmail: string;
  readonly cfDir: string;
  readonly libDir: string;
}

let distPromise: Promise<SendmailDist> | undefined;

/** Downloads (once, cached on disk) and unpacks Sendmail; concurrent test processes each finish with one tree. */
export function prepareSendmail(): Promise<SendmailDist> {
  distPromise ??= prepare().catch((e: unknown) => {
    distPromise = undefined;
    throw e;
  });
  return distPromise;
}

async function prepare(): Promise<SendmailDist> {
  await mkdir(SENDMAIL_CACHE_DIR, { recursive: true });
  let debs = await cachedDebs();
  if (debs.length < PACKAGES.length) {
    await download();
    debs = await cachedDebs();
    if (debs.length < PACKAGES.length) throw new Error(`apt-get download left only ${debs.join(', ')} in ${SENDMAIL_CACHE_DIR}`);
  }
  // One tree per set of .deb versions, so a newer download never mixes with an older tree.
  const tag = debs.map((d) => d.replace(/\.deb$/, '')).join('+').replace(/[^A-Za-z0-9.+_-]/g, '_');
  const tree = join(SENDMAIL_CACHE_DIR, `root-${tag}`);
  const dist = async (): Promise<SendmailDist> => ({
    sendmail: join(tree, 'usr/libexec/sendmail/sendmail'),
    cfDir: join(tree, 'usr/share/sendmail/cf'),
    libDir: await libwrapDir(tree),
  });
  if (existsSync(join(tree, '.complete'))) return dist();

  // Unpack beside the final place and rename: a crash or a concurrent run never leaves half a tree in use.
  const staging = await mkdtemp(join(SENDMAIL_CACHE_DIR, 'unpack-'));
  try {
    for (const deb of debs) {
      const r = await run('dpkg', ['-x', join(SENDMAIL_CACHE_DIR, deb), staging], { timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`dpkg -x ${deb} failed: ${r.stderr}`);
    }
    // setgid makes ld.so ignore LD_LIBRARY_PATH (libwrap.so.0 lives only in this tree).
    await chmod(join(staging, 'usr/libexec/sendmail/sendmail'), 0o755);
    await libwrapDir(staging);
    await writeFile(join(staging, '.complete'), `${debs.join('\n')}\n`);
    await rename(staging, tree).catch(async (e: unknown) => {
      // Another test process unpacked the same set first: use theirs.
      if (!existsSync(join(tree, '.complete'))) throw e;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return dist();
}

/** The multiarch library directory (usr/lib/x86_64-linux-gnu on amd64) holding the unpacked libwrap.so.0. */
async function libwrapDir(tree: string): Promise<string> {
  const lib = join(tree, 'usr/lib');
  for (const name of await readdir(lib)) {
    if (existsSync(join(lib, name, 'libwrap.so.0'))) return join(lib, name);
  }
  throw new Error(`libwrap.so.0 not found under ${lib}/*`);
}

/** The newest cached .deb per package, as file names in the cache directory. */
async function cachedDebs(): Promise<string[]> {
  const names = (await readdir(SENDMAIL_CACHE_DIR)).filter((n) => n.endsWith('.deb')).sort();
  const found: string[] = [];
  for (const pkg of PACKAGES) {
    const match = names.filter((n) => n.startsWith(`${pkg}_`)).at(-1);
    if (match) found.push(match);
  }
  return found;
}

async function download(): Promise<void> {
  const staging = await mkdtemp(join(SENDMAIL_CACHE_DIR, 'download-'));
  try {
    // `_apt` may not be able to write under the repository; download as root instead of warning and retrying.
    const args = ['-q', '-o', 'APT::Sandbox::User=root', 'download', ...PACKAGES];
    // In the staging dir: apt-get download writes to the current directory.
    const limit = { cwd: staging, timeoutMs: 120_000 };
    let r = await run('apt-get', args, limit);
    if (r.code !== 0 && /Unable to locate|has no installation candidate/i.test(r.stderr)) {
      // A fresh container has no package lists yet.
      const u = await run('apt-get', ['-qq', 'update'], { timeoutMs: 180_000 });
      if (u.code !== 0) throw new Error(`apt-get update failed: ${u.stderr}`);
      r = await run('apt-get', args, limit);
    }
    if (r.code !== 0) throw new Error(`apt-get download ${PACKAGES.join(' ')} failed (${r.code}): ${r.stderr}`);
    for (const name of await readdir(staging)) {
      if (name.endsWith('.deb')) await rename(join(staging, name), join(SENDMAIL_CACHE_DIR, name));
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------

// Instances still running when the process exits are torn down synchronously (see PostfixInstance).
const live = new ExitCleanup<SendmailInstance>((instance) => instance.stopSync(), { signals: true });

/** A message the smtp-sink received (mail for other domains, relayed through SMART_HOST). */
export interface RelayedMessage {
  /** Envelope recipients (`X-Rcpt-Args` of the dump), without brackets. */
  readonly recipients: readonly string[];
  /** The message as Sendmail sent it (CRLF lines). */
  readonly message: string;
}

export class SendmailInstance {
  readonly domain: string;
  /** `{daemon_name}` of the IPv4 and IPv6 listeners (DAEMON_OPTIONS Name=). */
  readonly daemonNames = { v4: 'MTA-v4', v6: 'MTA-v6' } as const;
  private readonly options: SendmailInstanceOptions;
  private rootDir: string | undefined;
  private port = 0;
  private sinkPort = 0;
  private daemon: ChildProcess | undefined;
  private sink: ChildProcess | undefined;
  private daemonExit: Promise<void> | undefined;
  private dist: SendmailDist | undefined;

  constructor(options: SendmailInstanceOptions) {
    this.options = options;
    this.domain = options.domain ?? 'example.test';
  }

  get root(): string {
    if (this.rootDir === undefined) throw new Error('SendmailInstance: not started');
    return this.rootDir;
  }
  get configFile(): string {
    return join(this.root, 'etc', 'sendmail.cf');
  }
  get mailBase(): string {
    return join(this.root, 'mail');
  }
  get trafficLogFile(): string {
    return join(this.root, 'log', 'traffic');
  }
  get debugLogFile(): string {
    return join(this.root, 'log', 'debug');
  }

  /** The SMTP port, the same on 127.0.0.1 and [::1]. */
  get smtpPort(): number {
    return this.port;
  }

  /** `$j`, the name Sendmail greets with. */
  get mtaName(): string {
    return `mta.${this.domain}`;
  }

  /** The name our private hosts file gives 127.0.0.1 and ::1: Sendmail's CONNECT hostname for local clients. */
  get loopbackName(): string {
    const short = osHostname();
    return short.includes('.') ? short : `${short}.${this.domain}`;
  }

  get running(): boolean {
    return this.daemon !== undefined && this.daemon.exitCode === null && this.daemon.signalCode === null;
  }

  /**
   * Fetches Sendmail if not cached, writes the private tree and config, starts smtp-sink and the daemon, and
   * waits until every listener is bound. On failure everything is cleaned up and the error carries the logs.
   */
  async start(): Promise<void> {
    if (this.rootDir !== undefined) throw new Error('SendmailInstance: start() called twice');
    const timeoutMs = this.options.startTimeoutMs ?? 60_000;
    this.rootDir = await mkdtemp(join(tmpdir(), 'sm-e2e-'));
    live.add(this);
    try {
      await withTimeout(this.setUpAndStart(), timeoutMs, 'Sendmail start');
    } catch (e) {
      const logs = await this.logs();
      await this.stop();
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n${logs}`, { cause: e });
    }
  }

  private async setUpAndStart(): Promise<void> {
    for (const f of [UNSHARE, M4, SMTP_SINK]) if (!existsSync(f)) throw new Error(`${f} is missing (see test/setup/install-system-deps.sh)`);
    if (process.getuid?.() !== 0) throw new Error('SendmailInstance needs root (private mount namespace, bind mounts)');
    this.dist = await prepareSendmail();
    this.port = await freeDualStackPort();
    this.sinkPort = await freeDualStackPort();

    // The local mailer runs as `daemon` and must traverse the tree and write the mail directory.
    await chmod(this.root, 0o755);
    for (const d of ['etc', 'bin', 'queue', 'log']) await mkdir(join(this.root, d), { mode: 0o755 });
    await mkdir(this.mailBase);
    await chmod(this.mailBase, 0o777);
    await mkdir(join(this.root, 'sink'));
    await chmod(join(this.root, 'sink'), 0o777);
    await this.writeFiles();

    const m4 = await run(M4, [`-D_CF_DIR_=${this.dist.cfDir}/`, join(this.dist.cfDir, 'm4', 'cf.m4'), join(this.root, 'etc', 'sendmail.mc')], { timeoutMs: 30_000 });
    if (m4.code !== 0 || m4.stderr.trim() !== '') throw new Error(`m4 failed (${m4.code}): ${m4.stderr}`);
    await writeFile(this.configFile, m4.stdout);

    await this.startSink();
    const aliases = await this.sendmailCommand(['-bi']);
    if (aliases.code !== 0) throw new Error(`sendmail -bi failed (${aliases.code}): ${aliases.stderr}${aliases.stdout}`);
    await this.startDaemon();
  }

  private async writeFiles(): Promise<void> {
    const etc = join(this.root, 'etc');
    const names = `${this.loopbackName} ${osHostname()} localhost`;
    await writeFile(join(etc, 'hosts'), `127.0.0.1 ${names}\n::1 ${names}\n`);
    await writeFile(join(etc, 'resolv.conf'), 'nameserver 127.0.0.1\n');
    await writeFile(join(etc, 'nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files\nservices: files\n');
    // Used where there is no nsswitch.conf; kept so no lookup ever falls back to DNS.
    await writeFile(join(etc, 'service.switch'), 'hosts files\naliases files\n');
    await writeFile(join(etc, 'aliases'), 'postmaster: root\nMAILER-DAEMON: postmaster\n');
    for (const f of ['helpfile', 'statistics', 'local-host-names', 'relay-domains']) await writeFile(join(etc, f), '');
    await writeFile(join(etc, 'sendmail.mc'), this.mc());

    const deliver = join(this.root, 'bin', 'deliver');
    // One file per recipient: <mail>/<local part>/<nanoseconds>.<pid>.eml, written then renamed into place.
    await writeFile(
      deliver,
      [
        '#!/bin/sh',
        '# deliver MAILDIR USER: the local mailer of a test Sendmail (message on stdin)',
        'dir="$1"; user="$2"',
        'case "$user" in ""|.*|*/*) echo "bad user name" >&2; exit 67;; esac',
        'mkdir -p "$dir/$user" || exit 75',
        'name="$dir/$user/$(date +%s%N).$$"',
        'cat > "$name.tmp" && mv "$name.tmp" "$name.eml" || { rm -f "$name.tmp"; exit 75; }',
        'exit 0',
        '',
      ].join('\n'),
    );
    await chmod(deliver, 0o755);

    const dist = this.dist;
    if (!dist) throw new Error('unreachable: no Sendmail tree');
    // The namespace wrapper: private name-service files, then the private sendmail binary.
    await writeFile(
      join(this.root, 'bin', 'ns-sendmail'),
      [
        '#!/bin/sh',
        '# Runs the private sendmail in the private mount namespace unshare(1) made for it.',
        'set -e',
        `mount --bind ${sh(join(etc, 'hosts'))} /etc/hosts`,
        `mount --bind ${sh(join(etc, 'resolv.conf'))} /etc/resolv.conf`,
        `mount --bind ${sh(join(etc, 'nsswitch.conf'))} /etc/nsswitch.conf`,
        `LD_LIBRARY_PATH=${sh(dist.libDir)}`,
        'export LD_LIBRARY_PATH',
        `exec ${sh(dist.sendmail)} -C ${sh(this.configFile)} "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(join(this.root, 'bin', 'ns-sendmail'), 0o755);
  }

  private mc(): string {
    const r = this.root;
    const t = this.options.milterTimeouts ?? DEFAULT_TIMEOUTS;
    const flags = this.options.milterFlags ?? 'T';
    const macros = { ...SENDMAIL_TEST_MACROS, ...this.options.milterMacros };
    const define = (name: string, value: string): string => `define(${q(name)}, ${q(value)})dnl`;
    const macroLines = (Object.keys(macros) as SendmailMacroStage[]).map((stage) =>
      define(`confMILTER_MACROS_${stage.toUpperCase()}`, (macros[stage] ?? []).join(', ')),
    );
    return [
      'divert(-1)',
      `# Generated by test/harness/sendmail-instance.ts for a throw-away test instance.`,
      'divert(0)dnl',
      // linux brings FEATURE(local_procmail); the LOCAL_MAILER_* defines below override it.
      `OSTYPE(${q('linux')})dnl`,
      define('confDOMAIN_NAME', this.mtaName),
      // Every path private.
      define('QUEUE_DIR', join(r, 'queue')),
      define('confPID_FILE', join(r, 'sendmail.pid')),
      define('ALIAS_FILE', join(r, 'etc', 'aliases')),
      define('STATUS_FILE', join(r, 'etc', 'statistics')),
      define('HELP_FILE', join(r, 'etc', 'helpfile')),
      define('confHOSTS_FILE', join(r, 'etc', 'hosts')),
      define('confSERVICE_SWITCH_FILE', join(r, 'etc', 'service.switch')),
      define('confCW_FILE', `-o ${join(r, 'etc', 'local-host-names')}`),
      define('confCR_FILE', `-o ${join(r, 'etc', 'relay-domains')}`),
      define('confHOST_STATUS_DIRECTORY', ''),
      // The tree lives under /tmp (world-writable, sticky).
      define('confDONT_BLAME_SENDMAIL', 'TrustStickyBit'),
      define('confDONT_PROBE_INTERFACES', 'True'),
      // A busy 2-core test machine must not make Sendmail queue or refuse mail.
      define('confQUEUE_LA', '100'),
      define('confREFUSE_LA', '200'),
      define('confTO_HOSTSTATUS', '1s'),
      define('confTO_IDENT', '0'),
      ...macroLines,
      define('LOCAL_MAILER_PATH', join(r, 'bin', 'deliver')),
      define('LOCAL_MAILER_ARGS', `deliver ${this.mailBase} $u`),
      // P: Return-Path; n: no UNIX From line; no m: one run per recipient; no f/r: no -f argument.
      define('LOCAL_MAILER_FLAGS', 'Pn9'),
      `MODIFY_MAILER_FLAGS(${q('LOCAL')}, ${q('-w')})dnl`,
      define('SMART_HOST', 'esmtp:[127.0.0.1]'),
      define('ESMTP_MAILER_ARGS', `TCP $h ${this.sinkPort}`),
      `FEATURE(${q('nocanonify')})dnl`,
      `FEATURE(${q('accept_unresolvable_domains')})dnl`,
      `FEATURE(${q('no_default_msa')})dnl`,
      `DAEMON_OPTIONS(${q(`Port=${this.port}, Addr=127.0.0.1, Name=${this.daemonNames.v4}`)})dnl`,
      ...((this.options.ipv6 ?? true) ? [`DAEMON_OPTIONS(${q(`Port=${this.port}, Addr=::1, Family=inet6, Name=${this.daemonNames.v6}`)})dnl`] : []),
      `LOCAL_DOMAIN(${q(this.domain)})dnl`,
      `INPUT_MAIL_FILTER(${q(MILTER_NAME)}, ${q(`S=${sendmailSocket(this.options.milter)}, F=${flags}, T=C:${t.connect};S:${t.send};R:${t.read};E:${t.eom}`)})dnl`,
      this.options.extraMc ?? '',
      `MAILER(${q('local')})dnl`,
      `MAILER(${q('smtp')})dnl`,
      '',
    ].join('\n');
  }

  private async startSink(): Promise<void> {
    const child = spawn(SMTP_SINK, ['-u', 'postfix', '-h', 'sink.invalid', '-d', join(this.root, 'sink', '%Y%m%d%H%M%S.'), `127.0.0.1:${this.sinkPort}`, '10'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.sink = child;
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    await waitUntil(async () => {
      if (child.exitCode !== null) throw new Error(`smtp-sink exited (${child.exitCode}): ${stderr}`);
      return canConnect('127.0.0.1', this.sinkPort);
    }, 10_000, 'smtp-sink to listen');
  }

  private async startDaemon(): Promise<void> {
    const debug = this.options.debug ?? '64.5';
    // Own process group (detached): stop() can also reach the SMTP and delivery children by the group id.
    const child = spawn(UNSHARE, ['--mount', '--propagation', 'private', join(this.root, 'bin', 'ns-sendmail'), '-bD', '-X', this.trafficLogFile, '-D', this.debugLogFile, `-d${debug}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.daemon = child;
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (output += d));
    this.daemonExit = new Promise((resolve) => child.once('exit', () => resolve()));
    const pidFile = join(this.root, 'sendmail.pid');
    await waitUntil(async () => {
      if (!this.running) throw new Error(`sendmail -bD exited (${child.exitCode ?? child.signalCode}): ${output}`);
      // The first line of the pid file is the daemon's pid (unshare and the wrapper exec into it).
      const first = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n')[0];
      return first === String(child.pid);
    }, 15_000, 'Sendmail to write its pid file');
  }

  /** Runs the private sendmail with `args` in its own namespace (e.g. `-bp`, `-bi`). */
  sendmailCommand(args: readonly string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return run(UNSHARE, ['--mount', '--propagation', 'private', join(this.root, 'bin', 'ns-sendmail'), ...args], {
      timeoutMs: 30_000,
      ...(input === undefined ? {} : { input }),
    });
  }

  /** `sendmail -bp`: the queue listing (`… Mail queue is empty` when empty). */
  async mailq(): Promise<string> {
    const r = await this.sendmailCommand(['-bp']);
    return r.stdout + r.stderr;
  }

  /** Stops smtp-sink and Sendmail (with every process of its group) and deletes the tree. Safe to repeat. */
  async stop(): Promise<void> {
    const daemon = this.daemon;
    if (daemon?.pid !== undefined) {
      if (this.running) daemon.kill('SIGTERM');
      const exited = await Promise.race([this.daemonExit?.then(() => true), sleep(5000).then(() => false)]);
      if (!exited) daemon.kill('SIGKILL');
      // SMTP session and delivery children share the daemon's process group.
      killGroup(daemon.pid);
      this.daemon = undefined;
    }
    if (this.sink && this.sink.exitCode === null && this.sink.signalCode === null) {
      const sink = this.sink;
      const gone = new Promise<void>((resolve) => sink.once('exit', () => resolve()));
      sink.kill('SIGTERM');
      await Promise.race([gone, sleep(3000)]);
    }
    this.sink = undefined;
    if (this.rootDir !== undefined) await rm(this.rootDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    live.delete(this);
  }

  /** Last-resort cleanup from the process exit hook (no event loop there). */
  stopSync(): void {
    if (this.daemon?.pid !== undefined) {
      killGroup(this.daemon.pid);
      this.daemon = undefined;
    }
    if (this.sink?.pid !== undefined && this.sink.exitCode === null) this.sink.kill('SIGKILL');
    this.sink = undefined;
    if (this.rootDir !== undefined) rmSync(this.rootDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    live.delete(this);
  }

  /** Directory of one local part of the test domain. */
  mailbox(localPart: string): string {
    return join(this.mailBase, localPart);
  }

  /** Raw text (LF lines) of every message delivered to `localPart` so far, oldest first. */
  async readMessages(localPart: string): Promise<string[]> {
    let names: string[];
    try {
      names = (await readdir(this.mailbox(localPart))).filter((n) => n.endsWith('.eml'));
    } catch {
      return [];
    }
    // Names start with the delivery time in nanoseconds (fixed width): name order is delivery order.
    names.sort();
    return Promise.all(names.map((n) => readFile(join(this.mailbox(localPart), n), 'latin1')));
  }

  /** Waits until `localPart` holds at least `count` messages; returns all of them. */
  waitForMessages(localPart: string, count: number, timeoutMs = 10_000): Promise<string[]> {
    return waitForDelivery(`${localPart}@${this.domain}`, () => this.readMessages(localPart), count, timeoutMs, async () =>
      `--- queue ---\n${await this.mailq()}\n${await this.logs()}`);
  }

  /** Messages relayed to the sink (mail for domains other than the test domain), oldest first. */
  async readRelayed(): Promise<RelayedMessage[]> {
    const dir = join(this.root, 'sink');
    const names = (await readdir(dir)).filter((n) => !n.startsWith('.'));
    const files = await Promise.all(names.map(async (n) => ({ n, mtime: (await stat(join(dir, n))).mtimeMs })));
    files.sort((a, b) => a.mtime - b.mtime || a.n.localeCompare(b.n));
    const out: RelayedMessage[] = [];
    for (const { n } of files) {
      // smtp-sink dump: X-Client-Addr/-Proto, X-Helo-Args, X-Mail-Args, X-Rcpt-Args lines, then the message.
      const raw = await readFile(join(dir, n), 'latin1');
      const lines = raw.split('\n');
      const recipients: string[] = [];
      let i = 0;
      for (; i < lines.length && /^X-(Client|Helo|Mail|Rcpt)-/.test(lines[i] ?? ''); i++) {
        const m = /^X-Rcpt-Args: <([^>]*)>/.exec(lines[i] ?? '');
        if (m?.[1] !== undefined) recipients.push(m[1]);
      }
      out.push({ recipients, message: lines.slice(i).join('\n') });
    }
    return out;
  }

  /** The SMTP traffic log (`-X`): every line each session sent and received, prefixed with its pid. */
  async trafficLog(): Promise<string> {
    if (this.rootDir === undefined) return '';
    return readFile(this.trafficLogFile, 'latin1').catch(() => '');
  }

  /** The debug log (`-D … -d64.5`): milter options, negotiation and milter errors (there is no syslog). */
  async debugLog(): Promise<string> {
    if (this.rootDir === undefined) return '';
    return readFile(this.debugLogFile, 'latin1').catch(() => '');
  }

  /** Both logs' tails, for failure messages. */
  async logs(): Promise<string> {
    return `--- sendmail debug log (tail) ---\n${tail(await this.debugLog(), 40)}\n--- sendmail traffic log (tail) ---\n${tail(await this.trafficLog(), 40)}`;
  }
}

/** Our listen address (Postfix or Sendmail syntax) as an INPUT_MAIL_FILTER `S=` socket. */
export function sendmailSocket(spec: string): string {
  const a = parseListenAddress(spec);
  if (a.kind === 'unix') return `local:${a.path}`;
  return `${net.isIP(a.host) === 6 ? 'inet6' : 'inet'}:${a.port}@${a.host}`;
}

/** An m4 quoted string; the values here never contain m4 quote characters. */
function q(value: string): string {
  if (/[`']/.test(value)) throw new Error(`m4 value must not contain quote characters: ${value}`);
  return `\`${value}'`;
}

/** A single-quoted shell word. */
function sh(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is already gone.
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitUntil(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines - 1).join('\n');
}
