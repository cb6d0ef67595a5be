// End-to-end: OpenDKIM's `miltertest` (an independent, libmilter-based MTA simulator driven by Lua) talks to our
// MilterServer over TCP. The Lua script checks every reply and the end-of-message changes from the MTA side;
// this file checks from the filter side that each hook saw exactly what the script sent, in order.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { MilterServer, Verdict, type MilterFilter } from '@postfix-milter-ts/protocol';

// The .lua fixtures are not compiled: reach them from dist-test/test/e2e/ through the repository root.
const FIXTURES = new URL('../../../test/fixtures/miltertest/', import.meta.url);
const MILTERTEST = process.env['MILTERTEST'] ?? 'miltertest';
const RUN_TIMEOUT_MS = 30_000;

type Event = readonly [hook: string, ...values: (string | number | undefined)[]];

/** What the filter saw, plus a way to wait for sessions to close (QUIT may be handled after miltertest exits). */
class Recorder {
  readonly events: Event[] = [];
  private closed = 0;
  private waiters: { n: number; resolve: () => void }[] = [];

  get closedSessions(): number {
    return this.closed;
  }

  markClosed(): void {
    this.closed++;
    const ready = this.waiters.filter((w) => this.closed >= w.n);
    this.waiters = this.waiters.filter((w) => this.closed < w.n);
    for (const w of ready) w.resolve();
  }

  /** Resolves once `n` sessions in all have closed. */
  closedCount(n: number): Promise<void> {
    if (this.closed >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
}

interface MessageState {
  subject: string | undefined;
  rejectAtEom: boolean;
}

/**
 * The filter all-stages.lua is written against: records every hook call, refuses recipients containing
 * "blocked", adds X-Milter-Test and rewrites the Subject at EOM, and rejects at EOM when asked by a header.
 */
function testFilter(rec: Recorder): MilterFilter<MessageState> {
  const push = (e: Event): void => {
    rec.events.push(e);
  };
  const fresh = (s: MessageState): void => {
    s.subject = undefined;
    s.rejectAtEom = false;
  };
  return {
    createState: () => ({ subject: undefined, rejectAtEom: false }),
    connect(s, info) {
      push(['connect', info.hostname, info.family, info.address, info.port, s.macro('j'), s.macro('{daemon_name}'), s.mta]);
    },
    helo(s, name) {
      push(['helo', name, s.helo, s.macro('tls_version')]);
    },
    unknown(_s, line) {
      push(['unknown', line]);
    },
    envfrom(s, sender, args) {
      fresh(s.state);
      push(['envfrom', sender, args.join(' '), s.macro('i'), s.macro('mail_addr'), s.messageCount]);
    },
    envrcpt(s, recipient, args) {
      push(['envrcpt', recipient, args.join(' '), s.macro('rcpt_addr')]);
      if (recipient.includes('blocked')) return Verdict.reject({ code: 550, xcode: '5.7.1', text: 'Recipient blocked by test filter' });
      return Verdict.continue;
    },
    data() {
      push(['data']);
    },
    header(s, name, value) {
      push(['header', name, value]);
      if (name.toLowerCase() === 'subject' && s.state.subject === undefined) s.state.subject = value;
      if (name === 'X-Test-Action' && value === 'reject-at-eom') s.state.rejectAtEom = true;
    },
    eoh() {
      push(['eoh']);
    },
    body(_s, chunk) {
      push(['body', chunk.toString('latin1')]);
    },
    eom(s, modifier) {
      push(['eom', s.messageCount]);
      modifier.addHeader('X-Milter-Test', `passed; msg=${s.messageCount}`);
      if (s.state.subject !== undefined) modifier.changeHeader('Subject', 1, `[checked] ${s.state.subject}`);
      // Asked for anyway: the server must not send changes with a rejecting verdict.
      if (s.state.rejectAtEom) return Verdict.reject({ code: 550, xcode: '5.7.1', text: 'Rejected by test filter' });
      return Verdict.continue;
    },
    abort(s) {
      push(['abort', s.messageCount]);
    },
    close() {
      push(['close']);
      rec.markClosed();
    },
  };
}

interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `inet:127.0.0.1:PORT` (our spelling) → `inet:PORT@127.0.0.1` (libmilter's, which miltertest reads). */
function miltertestSocket(bound: string): string {
  const m = /^inet:(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(bound);
  assert.ok(m, `unexpected bound address ${bound}`);
  return `inet:${m[2]}@${m[1]}`;
}

function runMiltertest(script: string, socket: string): Promise<RunResult> {
  const path = fileURLToPath(new URL(script, FIXTURES));
  return new Promise((resolve, reject) => {
    execFile(
      MILTERTEST,
      ['-s', path, '-D', `socket=${socket}`],
      { timeout: RUN_TIMEOUT_MS, killSignal: 'SIGKILL', encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error && typeof error.code === 'string') {
          reject(new Error(`cannot run ${MILTERTEST} (${error.code}); install Debian's miltertest package`, { cause: error }));
          return;
        }
        if (error?.killed) {
          reject(new Error(`${MILTERTEST} did not finish within ${RUN_TIMEOUT_MS} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
          return;
        }
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, signal: (error?.signal as NodeJS.Signals | undefined) ?? null, stdout, stderr });
      },
    );
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** What the filter must see for one message built by all-stages.lua's message_body_part(n, ...). */
function messageEvents(n: number, subject: string, extraHeader?: readonly [string, string]): Event[] {
  const events: Event[] = [
    ['envfrom', '<sender@example.org>', 'SIZE=1234 BODY=8BITMIME', `QUEUEID${n}`, 'sender@example.org', n],
    ['envrcpt', '<alice@example.com>', 'NOTIFY=NEVER', 'alice@example.com'],
    ['envrcpt', '<blocked@example.com>', '', 'blocked@example.com'],
    ['data'],
    ['header', 'From', 'Sender <sender@example.org>'],
    ['header', 'To', 'Alice <alice@example.com>'],
    ['header', 'Subject', subject],
    // miltertest sends the value as given; the LF + TAB fold arrives as it is (Postfix sends folds the same way).
    ['header', 'X-Folded', 'first line\n\tsecond line'],
  ];
  if (extraHeader) events.push(['header', ...extraHeader]);
  events.push(['eoh'], ['body', 'Hello from miltertest.\r\n'], ['body', `Message ${n}, second chunk.\r\n`], ['eom', n]);
  return events;
}

describe('miltertest (OpenDKIM libmilter test client) against MilterServer', () => {
  let server: MilterServer<MessageState>;
  let socket: string;
  let rec: Recorder;

  before(async () => {
    rec = new Recorder();
    server = new MilterServer(testFilter(rec), { idleTimeoutMs: 60_000 });
    socket = miltertestSocket(await server.listen('inet:127.0.0.1:0'));
  });

  after(async () => {
    await server.close(2000);
  });

  it('runs every stage of three messages and an added header through all-stages.lua', async () => {
    rec.events.length = 0;
    const closedBefore = rec.closedSessions;
    const r = await runMiltertest('all-stages.lua', socket);
    assert.equal(r.code, 0, `miltertest failed (exit ${r.code}, signal ${r.signal})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.match(r.stdout, /all-stages: ok/);
    // QUIT reaches the server before miltertest exits, the close hook may run just after.
    await withTimeout(rec.closedCount(closedBefore + 1), 5000, 'the session to close');

    const expected: Event[] = [
      // miltertest always sends port 12345 in CONNECT.
      ['connect', 'client.example.org', '4', '192.0.2.10', 12345, 'mx.example.net', 'miltertest-mta', 'postfix'],
      ['helo', 'client.example.org', 'client.example.org', 'TLSv1.3'],
      ['unknown', 'XYZZY frobnicate'],
      ...messageEvents(1, 'Test message one'),
      // The ABORT after a finished message is not a message abort: no hook call.
      // Message 2 is abandoned after one recipient; its RCPT has no macros (the MAIL macros reset them).
      ['envfrom', '<sender@example.org>', '', 'QUEUEID2', undefined, 2],
      ['envrcpt', '<alice@example.com>', '', undefined],
      ['abort', 2],
      ...messageEvents(3, 'Test message three'),
      ...messageEvents(4, 'Test message four', ['X-Test-Action', 'reject-at-eom']),
      ['close'],
    ];
    assert.deepEqual(rec.events, expected);
  });

  it('fails when the script expects a header the filter never adds', async () => {
    rec.events.length = 0;
    const closedBefore = rec.closedSessions;
    const r = await runMiltertest('expects-missing-header.lua', socket);
    assert.notEqual(r.code, 0, `miltertest should have failed\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.equal(r.signal, null);
    // Failed for the intended reason, after a message the filter handled normally.
    assert.match(r.stdout, /FAIL: expected header X-Never-Added was not added/);
    await withTimeout(rec.closedCount(closedBefore + 1), 5000, 'the session to close');
    assert.deepEqual(
      rec.events.map((e) => e[0]),
      // The script exits without QUIT after a finished message: the session closes on EOF, no abort.
      ['connect', 'helo', 'envfrom', 'envrcpt', 'data', 'header', 'eoh', 'body', 'eom', 'close'],
    );
  });
});
