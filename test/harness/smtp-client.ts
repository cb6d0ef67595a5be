// A minimal promise-based SMTP client for tests: one command at a time, every reply returned (code, lines),
// several transactions per connection, XCLIENT. No pipelining, no TLS, no AUTH.
import net from 'node:net';

export interface SmtpReply {
  readonly code: number;
  /** The reply lines without the `DDD-` / `DDD ` prefix. */
  readonly lines: readonly string[];
  /** All lines as sent, joined with `\n` (e.g. `550 5.7.1 No`). */
  readonly raw: string;
}

export interface SmtpClientOptions {
  readonly host: string;
  readonly port: number;
  /** Per reply. Default 15 s (above Postfix's milter timeouts in the test instance). */
  readonly timeoutMs?: number;
}

/** What happened to one message sent with sendMessage(). */
export interface TransactionResult {
  readonly mail: SmtpReply;
  readonly rcpts: readonly SmtpReply[];
  /** The reply to DATA (354, or a refusal); absent when MAIL failed or no recipient was accepted. */
  readonly data?: SmtpReply;
  /** The reply after the final `.`; absent when DATA was not answered with 354. */
  readonly final?: SmtpReply;
}

interface Pending {
  readonly resolve: (r: SmtpReply) => void;
  readonly reject: (e: Error) => void;
}

export class SmtpClient {
  /** The 220 greeting (or whatever the server said first). */
  greeting: SmtpReply | undefined;

  /** Our side of the connection (kept after close): the milter's CONNECT carries this port and address. */
  readonly localPort: number;
  readonly localAddress: string;

  private readonly socket: net.Socket;
  private readonly timeoutMs: number;
  private buffer = '';
  private lines: string[] = [];
  private readonly replies: SmtpReply[] = [];
  private waiter: Pending | undefined;
  private failure: Error | undefined;
  private closed = false;

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.socket = socket;
    this.localPort = socket.localPort ?? 0;
    this.localAddress = socket.localAddress ?? '';
    this.timeoutMs = timeoutMs;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => {
      this.closed = true;
      this.fail(new Error('connection closed by the server'));
    });
  }

  /** Connects and reads the greeting. */
  static async connect(options: SmtpClientOptions): Promise<SmtpClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: options.host, port: options.port });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
    });
    const client = new SmtpClient(socket, options.timeoutMs ?? 15_000);
    client.greeting = await client.read('greeting');
    return client;
  }

  /** Sends one command line and returns the reply. */
  command(line: string): Promise<SmtpReply> {
    if (/[\r\n]/.test(line)) throw new Error('an SMTP command is one line');
    this.socket.write(`${line}\r\n`, 'latin1');
    return this.read(line);
  }

  ehlo(name: string): Promise<SmtpReply> {
    return this.command(`EHLO ${name}`);
  }

  /** `sender` without brackets; `''` for the null sender. */
  mailFrom(sender: string, params = ''): Promise<SmtpReply> {
    return this.command(`MAIL FROM:<${sender}>${params ? ` ${params}` : ''}`);
  }

  rcptTo(recipient: string, params = ''): Promise<SmtpReply> {
    return this.command(`RCPT TO:<${recipient}>${params ? ` ${params}` : ''}`);
  }

  rset(): Promise<SmtpReply> {
    return this.command('RSET');
  }

  /** `XCLIENT ADDR=… NAME=…`; Postfix answers with a new 220 greeting (a new session: EHLO again). */
  xclient(attributes: Readonly<Record<string, string>>): Promise<SmtpReply> {
    return this.command(`XCLIENT ${Object.entries(attributes).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }

  /** DATA then the message; returns both replies (the second only if the first was 354). `onData` sees the first. */
  async data(message: string, onData?: (reply: SmtpReply) => void): Promise<{ data: SmtpReply; final?: SmtpReply }> {
    const data = await this.command('DATA');
    onData?.(data);
    if (data.code !== 354) return { data };
    this.socket.write(dotStuff(message), 'latin1');
    return { data, final: await this.read('end of data') };
  }

  /** One whole transaction: MAIL, every RCPT, and DATA if any recipient was accepted. */
  async sendMessage(from: string, to: readonly string[], message: string): Promise<TransactionResult> {
    const mail = await this.mailFrom(from);
    const rcpts: SmtpReply[] = [];
    if (mail.code !== 250) return { mail, rcpts };
    for (const r of to) rcpts.push(await this.rcptTo(r));
    if (!rcpts.some((r) => r.code === 250 || r.code === 251)) return { mail, rcpts };
    const { data, final } = await this.data(message);
    return final ? { mail, rcpts, data, final } : { mail, rcpts, data };
  }

  /** QUIT, then waits for the server to close the connection. */
  async quit(): Promise<SmtpReply> {
    const reply = await this.command('QUIT');
    await this.waitForClose();
    return reply;
  }

  waitForClose(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  /** Drops the connection without QUIT (for cleanup in `finally`). */
  destroy(): void {
    this.socket.destroy();
  }

  private read(what: string): Promise<SmtpReply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(new Error(`${what}: ${this.failure.message}`));
    return new Promise<SmtpReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`${what}: no SMTP reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(new Error(`${what}: ${e.message}`));
        },
      };
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      // `DDD-` continues a reply, `DDD ` (or a bare `DDD`) ends it.
      if (line.length >= 4 && line[3] === '-') continue;
      const reply: SmtpReply = {
        code: Number(this.lines[0]?.slice(0, 3)),
        lines: this.lines.map((l) => l.slice(4)),
        raw: this.lines.join('\n'),
      };
      this.lines = [];
      const waiter = this.waiter;
      if (waiter) {
        this.waiter = undefined;
        waiter.resolve(reply);
      } else {
        this.replies.push(reply);
      }
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(e);
  }
}

/** CRLF line ends, leading dots doubled, terminated by `.`; a message without a final line break gets one. */
export function dotStuff(message: string): string {
  let text = message.replace(/\r?\n/g, '\r\n');
  if (!text.endsWith('\r\n')) text += '\r\n';
  return `${text.replace(/^\./gm, '..')}.\r\n`;
}
