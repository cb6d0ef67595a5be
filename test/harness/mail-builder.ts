// Test messages as an SMTP client sends them: header lines, a blank line, the body, CRLF line ends.
export interface Attachment {
  readonly name: string;
  readonly content: Buffer;
  /** Declared Content-Type. Default application/octet-stream. */
  readonly type?: string;
}

export interface MessageOptions {
  readonly subject: string;
  readonly from?: string;
  readonly to?: string;
  readonly messageId?: string;
  /** Body text (the text part when there is an attachment). */
  readonly text?: string;
  readonly attachment?: Attachment;
}

/** A plain message, or multipart/mixed with one base64 attachment (lines of 76 characters). */
export function buildMessage(o: MessageOptions): string {
  const head = [
    `From: ${o.from ?? 'sender@example.org'}`,
    `To: ${o.to ?? 'alice@example.test'}`,
    `Subject: ${o.subject}`,
    ...(o.messageId !== undefined ? [`Message-ID: <${o.messageId}>`] : []),
  ];
  const a = o.attachment;
  if (!a) return [...head, '', o.text ?? 'Hello.', ''].join('\r\n');
  return [
    ...head,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    o.text ?? 'see attached',
    '--b1',
    `Content-Type: ${a.type ?? 'application/octet-stream'}; name="${a.name}"`,
    `Content-Disposition: attachment; filename="${a.name}"`,
    'Content-Transfer-Encoding: base64',
    '',
    (a.content.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n'),
    '--b1--',
    '',
  ].join('\r\n');
}

/**
 * Exactly the given header fields, in the given order and nothing else, a blank line, then `body` as is: for
 * tests that check what the MTA adds and what the milter sees, where buildMessage()'s defaults would get in the way.
 */
export function rawMessage(headers: Readonly<Record<string, string>>, body: string): string {
  const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `${head}\r\n${body}`;
}
