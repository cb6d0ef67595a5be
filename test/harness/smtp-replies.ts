// Assertions on the MTA's SMTP replies, shared by the end-to-end tests that talk SMTP to Postfix and Sendmail:
// a wrong reply fails with the stage and the MTA's own text, and a queue ID is read the way each MTA words it.
import assert from 'node:assert/strict';
import type { SmtpReply } from './smtp-client.js';

/** The reply exists and has `code`; `what` names the stage in the failure message. */
export function assertReply(reply: SmtpReply | undefined, code: number, what: string): void {
  assert.ok(reply, `${what}: no reply`);
  assert.equal(reply.code, code, `${what}: ${reply.raw}`);
}

/** Postfix's answer to the final dot: `250 2.0.0 Ok: queued as QUEUEID`. */
export function queuedId(reply: SmtpReply | undefined): string {
  const m = /queued as ([0-9A-F]+)/.exec(reply?.raw ?? '');
  assert.ok(m?.[1], `no queue ID in ${reply?.raw}`);
  return m[1];
}

/** Sendmail's answer to the final dot: `250 2.0.0 QUEUEID Message accepted for delivery`. */
export function acceptedId(reply: SmtpReply | undefined): string {
  const m = /^250 2\.0\.0 (\w+) Message accepted for delivery$/.exec(reply?.raw ?? '');
  assert.ok(m?.[1], `not accepted: ${reply?.raw}`);
  return m[1];
}
