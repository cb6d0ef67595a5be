// The "several messages on one SMTP connection" scenario of the MTA protocol tests, shared so Postfix and Sendmail
// are put through the very same transactions and checked against the same expectations of what the recording
// filter saw and what was delivered. What differs between the MTAs (reply texts, queue IDs, the command
// sequence, how delivery is awaited) stays in each test.
//
// Six transactions on one SMTP session, all to `multi@`: `multi 1`, `tempfail me`, `multi 3`, one whose only
// recipient (`blocked@`) the filter refuses (no DATA; the client resets), `reject me`, `multi 6`.
import assert from 'node:assert/strict';
import { rawMessage as message } from './mail-builder.js';
import { subjectOf, type SessionRecord } from './recording-filter.js';
import type { SmtpClient, SmtpReply } from './smtp-client.js';
import { assertReply } from './smtp-replies.js';
import { headerValues } from './delivered-message.js';

/**
 * Runs the six transactions, from EHLO to QUIT. `checkRefused` gets the reply to the refused recipient (the MTAs
 * word it differently). Returns the replies to the final dot of the five transactions that got to DATA.
 */
export async function sendMultiMessageSession(c: SmtpClient, checkRefused: (rcpt: SmtpReply | undefined) => void): Promise<Array<string | undefined>> {
  const finals: Array<string | undefined> = [];
  assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
  const send = async (subject: string): Promise<void> => {
    const r = await c.sendMessage('a@example.test', ['multi@example.test'], message({ Subject: subject }, `${subject}\r\n`));
    finals.push(r.final?.raw);
  };
  await send('multi 1');
  await send('tempfail me');
  await send('multi 3');
  // A transaction whose only recipient the milter refuses: no DATA, the client resets.
  const r4 = await c.sendMessage('a@example.test', ['blocked@example.test'], message({ Subject: 'multi 4' }, 'x\r\n'));
  checkRefused(r4.rcpts[0]);
  assert.equal(r4.data, undefined);
  assertReply(await c.rset(), 250, 'RSET');
  await send('reject me');
  await send('multi 6');
  assertReply(await c.quit(), 221, 'QUIT');
  return finals;
}

/** What the filter must have seen: one milter connection for it all, each message handled on its own. */
export function assertMultiMessageRecords(s: SessionRecord): void {
  assert.equal(s.commands.filter((x) => x === 'optneg').length, 1, 'one milter connection for the whole SMTP session');
  assert.equal(s.commands.filter((x) => x === 'connect').length, 1);
  assert.deepEqual(
    s.messages.map((m) => [subjectOf(m) ?? null, m.outcome]),
    [
      ['multi 1', 'accepted'],
      ['tempfail me', 'tempfailed'],
      ['multi 3', 'accepted'],
      [null, 'aborted'],
      ['reject me', 'rejected'],
      ['multi 6', 'accepted'],
    ],
  );
  // Every message starts clean: the tempfailed one's headers did not leak into the next.
  assert.deepEqual(s.messages[2]?.headers.filter(([n]) => n === 'Subject'), [['Subject', 'multi 3']]);
}

/** The three accepted messages were delivered, each marked with its message number on milter session `sessionId`. */
export function assertMultiMessagesDelivered(delivered: readonly string[], sessionId: string): void {
  const got = delivered.map((d) => [headerValues(d, 'Subject')[0], headerValues(d, 'X-Test-Session')[0]]);
  assert.deepEqual(
    got.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    [
      ['multi 1', `${sessionId} msg=1`],
      ['multi 3', `${sessionId} msg=3`],
      ['multi 6', `${sessionId} msg=6`],
    ],
  );
}
