// Free TCP ports for the private servers the tests start (Postfix, Sendmail, Prometheus, Redis, clamd, …) and
// for "nothing listens here" addresses. One copy, because every harness needs one and they used to drift apart.
// A port is bound, read and released, so another process could take it before the caller binds it: fine for
// tests on one machine, where nothing else hands out loopback ports at that rate.
import net from 'node:net';

/** A port free on 127.0.0.1 right now (bound then released). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A port free on both 127.0.0.1 and ::1 right now (for servers that listen on both, such as Postfix). */
export async function freeDualStackPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const v4 = await listenOnce('127.0.0.1', 0);
    const port = (v4.address() as net.AddressInfo).port;
    try {
      const v6 = await listenOnce('::1', port);
      await closeServer(v6);
      await closeServer(v4);
      return port;
    } catch {
      await closeServer(v4);
    }
  }
  throw new Error('no port free on both 127.0.0.1 and ::1');
}

function listenOnce(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: host.includes(':'), exclusive: true }, () => resolve(server));
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
