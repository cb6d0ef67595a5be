// `postfix-milter-ts offenders`: the worst client addresses by refusals, from a running milter's metrics
// listener (addresses never become metric labels, so this is where an administrator finds them).
import { request } from 'node:http';

export interface OffendersReply {
  readonly windowSeconds: number;
  readonly offenders: readonly { readonly address: string; readonly refusals: number; readonly errorBound: number; readonly lastRule?: string; readonly lastSeen: string }[];
}

export function fetchOffenders(host: string, port: number, timeoutMs = 5000): Promise<OffendersReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/offenders', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`http://${host}:${port}/offenders answered ${res.statusCode ?? '?'}`));
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OffendersReply);
        } catch (e) {
          reject(new Error(`http://${host}:${port}/offenders did not answer JSON: ${(e as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from http://${host}:${port}/offenders within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED') return reject(new Error(`nothing listens on ${host}:${port}: is the milter running with metrics enabled?`));
      // Something listens but speaks no HTTP: the milter port itself, most likely.
      if (e.code === 'ECONNRESET' || e.code === 'HPE_INVALID_CONSTANT') {
        return reject(new Error(`${host}:${port} closed the connection without an HTTP answer: give the milter's metrics address (metrics.address:metrics.port, 127.0.0.1:10032 by default), not its milter address`));
      }
      reject(new Error(`http://${host}:${port}/offenders: ${e.message}`));
    });
    req.end();
  });
}

export function formatOffenders(reply: OffendersReply): string {
  const minutes = Math.round(reply.windowSeconds / 60);
  if (reply.offenders.length === 0) return `no client was refused in the last ${minutes} min`;
  const header = ['refusals', `address (last ${minutes} min)`, 'last rule', 'last seen'];
  const rows = reply.offenders.map((o) => [String(o.refusals), o.address, o.lastRule ?? '', o.lastSeen]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padStart(widths[0] ?? 0) : i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}
