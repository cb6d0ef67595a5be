// Cyrus SASL for a private PostfixInstance: a sasldb with test users and an `smtpd.conf` in a temp dir, plus
// the main.cf parameters that make Postfix's smtpd offer AUTH PLAIN/LOGIN against it. Nothing under /etc is
// touched. Needs Debian's sasl2-bin (saslpasswd2) and libsasl2-modules (PLAIN/LOGIN; the sasldb auxprop
// plugin is in libsasl2-modules-db).
//
// Found on Debian 12 (Postfix 3.7.11, Cyrus SASL 2.1.28): smtpd ignores `cyrus_sasl_config_path` and reads
// `$config_directory/sasl/smtpd.conf`, then `/usr/lib/sasl/smtpd.conf` (strace). So the conf file must also
// be installed into the instance's config dir: installInto() after postfix.start() and before the first SMTP
// connection (each smtpd process reads it when it starts).
//
//   const sasl = await SaslDatabase.create({ realm: 'example.test', users: [{ user: 'alice', password: 'pw' }] });
//   const postfix = new PostfixInstance({ milter, mainCf: { ...relaxed, ...sasl.mainCf } });
//   await postfix.start();
//   await sasl.installInto(postfix);
//   …  AUTH PLAIN with SaslDatabase.plainResponse('alice@example.test', 'pw')
//   await sasl.destroy();
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCleanup } from './exit-cleanup.js';
import { run } from './run-command.js';

const SASLPASSWD2 = '/usr/sbin/saslpasswd2';
const PLUGIN_DIRS = ['/usr/lib/x86_64-linux-gnu/sasl2', '/usr/lib/aarch64-linux-gnu/sasl2', '/usr/lib/sasl2'];

export interface SaslUser {
  /** Login name without the realm; clients log in as `user@realm`. */
  readonly user: string;
  readonly password: string;
}

export interface SaslDatabaseOptions {
  /** The realm the users are stored under (`saslpasswd2 -u`), e.g. the mail domain. */
  readonly realm: string;
  readonly users: readonly SaslUser[];
  /** Mechanisms offered. Default PLAIN and LOGIN (plain-text ones: no TLS on a loopback test instance). */
  readonly mechanisms?: readonly string[];
  /** The group that must read the database (smtpd runs as mail_owner after start). Default `postfix`. */
  readonly readerGroup?: string;
}

// Removed on exit even if a test forgets destroy().
const live = new ExitCleanup<string>((dir) => rmSync(dir, { recursive: true, force: true }));

export class SaslDatabase {
  /** The temp dir holding `smtpd.conf` and `sasldb2`. */
  readonly dir: string;
  readonly realm: string;
  readonly mechanisms: readonly string[];

  private constructor(dir: string, realm: string, mechanisms: readonly string[]) {
    this.dir = dir;
    this.realm = realm;
    this.mechanisms = mechanisms;
  }

  get dbPath(): string {
    return join(this.dir, 'sasldb2');
  }

  /** The Cyrus application config (`smtpd.conf`): auxprop against our sasldb, only our mechanisms. */
  get smtpdConf(): string {
    return [
      'pwcheck_method: auxprop',
      'auxprop_plugin: sasldb',
      `sasldb_path: ${this.dbPath}`,
      `mech_list: ${this.mechanisms.join(' ')}`,
      '',
    ].join('\n');
  }

  /**
   * Writes `smtpd.conf` where Debian's Postfix looks for it: `<configDir>/sasl/smtpd.conf`. Call after the
   * instance started (its config dir exists) and before the first SMTP connection.
   */
  async installInto(postfix: { readonly configDir: string }): Promise<void> {
    const dir = join(postfix.configDir, 'sasl');
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await writeFile(join(dir, 'smtpd.conf'), this.smtpdConf, { mode: 0o644 });
  }

  /** main.cf parameters to merge into PostfixInstance's `mainCf`. */
  get mainCf(): Readonly<Record<string, string>> {
    return {
      smtpd_sasl_auth_enable: 'yes',
      smtpd_sasl_type: 'cyrus',
      // The Cyrus application name: the library reads `smtpd.conf`.
      smtpd_sasl_path: 'smtpd',
      cyrus_sasl_config_path: this.dir,
      // Plain-text mechanisms without TLS (loopback test instance only); never anonymous.
      smtpd_sasl_security_options: 'noanonymous',
      smtpd_tls_auth_only: 'no',
      // Clients log in as user@realm; a bare `user` is completed with this realm.
      smtpd_sasl_local_domain: this.realm,
    };
  }

  static async create(options: SaslDatabaseOptions): Promise<SaslDatabase> {
    if (!existsSync(SASLPASSWD2)) throw new Error(`${SASLPASSWD2} not found: install Debian's sasl2-bin`);
    if (!PLUGIN_DIRS.some((d) => existsSync(join(d, 'libplain.so')))) throw new Error('the SASL PLAIN mechanism is missing: install Debian\'s libsasl2-modules');
    for (const u of options.users) {
      if (!/^[A-Za-z0-9._+-]+$/.test(u.user)) throw new Error(`SASL user name '${u.user}' is not a plain name`);
      if (/[\r\n\0]/.test(u.password)) throw new Error('a SASL password may not hold line breaks or NUL');
    }
    const dir = await mkdtemp(join(tmpdir(), 'pmt-sasl-'));
    live.add(dir);
    const db = new SaslDatabase(dir, options.realm, options.mechanisms ?? ['PLAIN', 'LOGIN']);
    try {
      const reader = await groupId(options.readerGroup ?? 'postfix');
      // smtpd (running as postfix) must traverse the dir and read the database.
      await chmod(dir, 0o755);
      // For Postfix builds that honour cyrus_sasl_config_path (see installInto for Debian's).
      await writeFile(join(dir, 'smtpd.conf'), db.smtpdConf, { mode: 0o644 });
      for (const u of options.users) {
        // -c create, -p read the password from stdin (no prompt), -u realm, -f database file.
        const r = await run(SASLPASSWD2, ['-c', '-p', '-f', db.dbPath, '-u', options.realm, u.user], { input: u.password, timeoutMs: 10_000 });
        if (r.code !== 0) throw new Error(`saslpasswd2 for ${u.user} failed (${r.code}): ${r.stderr}`);
      }
      await chown(db.dbPath, 0, reader);
      await chmod(db.dbPath, 0o640);
    } catch (e) {
      await db.destroy();
      throw e;
    }
    return db;
  }

  /** The base64 initial response of AUTH PLAIN: `\0authcid\0password`. */
  static plainResponse(login: string, password: string): string {
    return Buffer.from(`\0${login}\0${password}`, 'utf8').toString('base64');
  }

  async destroy(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    live.delete(this.dir);
  }
}

function groupId(group: string): Promise<number> {
  return new Promise((resolve, reject) =>
    execFile('getent', ['group', group], (err, stdout) => {
      const gid = Number(stdout.split(':')[2]);
      if (err || !Number.isInteger(gid)) reject(new Error(`no group '${group}': ${err?.message ?? stdout}`));
      else resolve(gid);
    }),
  );
}
