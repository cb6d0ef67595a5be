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
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === 'ECONNREFUSED' ? `nothing listens on ${host}:${port}: is the milter running with metrics enabled?` : e.message)),
    );
    req.end();
  });
}

export function formatOffenders(reply: OffendersReply): string {
  const rows = reply.offenders.map((o) => `${String(o.refusals).padStart(8)}  ${o.address.padEnd(40)} ${o.lastRule ?? ''}  ${o.lastSeen}`);
  return [`refusals  address (last ${Math.round(reply.windowSeconds / 60)} min)${' '.repeat(12)}last rule  last seen`, ...rows].join('\n');
}
