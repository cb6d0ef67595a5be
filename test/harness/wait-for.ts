// Polling for something a server does in the background (a milter session closing, a message arriving in a
// mailbox): tests wait for the state instead of sleeping a guessed time, with a limit that turns a hang into a
// failure naming what was awaited.

/** Polls `probe` every 20 ms until it returns something other than undefined or false; returns that. */
export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Polls a mailbox every 50 ms until it holds at least `count` messages; returns all of them. On timeout the
 * error names `address` and carries `diagnostics()` (the MTA's queue and log), since an undelivered message
 * is usually explained there.
 */
export async function waitForDelivery(
  address: string,
  read: () => Promise<string[]>,
  count: number,
  timeoutMs: number,
  diagnostics: () => Promise<string>,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const messages = await read();
    if (messages.length >= count) return messages;
    if (Date.now() >= deadline) throw new Error(`${address}: ${messages.length} of ${count} messages after ${timeoutMs} ms\n${await diagnostics()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
