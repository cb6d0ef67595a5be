// Our side of the protocol-throughput benchmark: the same filter as bench/reference-milter.c, on
// @postfix-milter-ts/protocol. A hook for every stage (connect, helo, envfrom, envrcpt, data, header, eoh,
// body, eom, abort, close) that continues; at end of message one header, "X-Bench: ts", is added.
//
// Run as its own process:  node dist-test/bench/ts-reference-milter.js inet:127.0.0.1:PORT
// Prints "ready <bound address>" on stdout once listening; SIGTERM/SIGINT close it (exit code 0, so that
// `node --cpu-prof` writes its profile).
import { MilterServer, Verdict, type MilterFilter } from '@postfix-milter-ts/protocol';

const filter: MilterFilter<undefined> = {
  connect: () => Verdict.continue,
  helo: () => Verdict.continue,
  envfrom: () => Verdict.continue,
  envrcpt: () => Verdict.continue,
  data: () => Verdict.continue,
  header: () => Verdict.continue,
  eoh: () => Verdict.continue,
  body: () => Verdict.continue,
  eom: (_session, modifier) => {
    modifier.addHeader('X-Bench', 'ts');
    return Verdict.continue;
  },
  abort: () => undefined,
  close: () => undefined,
};

async function main(): Promise<void> {
  const spec = process.argv[2];
  if (spec === undefined) {
    process.stderr.write('usage: node ts-reference-milter.js inet:127.0.0.1:PORT\n');
    process.exit(64);
  }
  const server = new MilterServer(filter);
  const bound = await server.listen(spec);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    // Connections still open are cut after a short grace period; the bench only stops us when idle.
    void server.close(1000).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`ready ${bound}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`ts-reference-milter: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
