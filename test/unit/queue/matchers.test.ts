// Header and envelope matchers: syntax, unfolding, RFC 2047, case rules; the walk order used by checkpoints.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MatcherSyntaxError, applyMatchers, decodeEncodedWords, parseEnvelopeMatcher, parseHeaderFields, parseHeaderMatcher } from 'postfix-milter-ts/queue/matchers.js';
import { isQueueId, makeKeyComparator } from 'postfix-milter-ts/queue/queue-walker.js';

test('header matcher syntax: /regex/flags is as written, a bare regex is case-insensitive', () => {
  const a = parseHeaderMatcher('Subject:/Invoice [0-9]+/');
  assert.equal(a.field, 'subject');
  assert.equal(a.regex.flags, '');
  const b = parseHeaderMatcher('X-Mailer: evil mailer');
  assert.equal(b.field, 'x-mailer');
  assert.equal(b.regex.flags, 'i');
  assert.equal(b.regex.source, 'evil mailer');
  assert.equal(parseHeaderMatcher('Subject:/x/gi').regex.flags, 'i', 'g would make test() stateful');
  assert.throws(() => parseHeaderMatcher('Subject'), MatcherSyntaxError);
  assert.throws(() => parseHeaderMatcher('Subject:'), MatcherSyntaxError);
  assert.throws(() => parseHeaderMatcher('Subject:/(/'), /invalid regular expression/);
  assert.throws(() => parseEnvelopeMatcher('sender', '['), /--match-sender: invalid regular expression/);
});

test('header fields are unfolded; CRLF and LF both work', () => {
  const block = Buffer.from('Subject: first part\r\n  second part\r\nFrom: a@b\r\nX-Empty:\r\n');
  assert.deepEqual(parseHeaderFields(block), [
    { name: 'Subject', value: 'first part  second part' },
    { name: 'From', value: 'a@b' },
    { name: 'X-Empty', value: '' },
  ]);
});

test('RFC 2047 encoded words are decoded for matching', () => {
  assert.equal(decodeEncodedWords('=?UTF-8?B?UmVjaG51bmcgMTIz?='), 'Rechnung 123');
  assert.equal(decodeEncodedWords('=?ISO-8859-1?Q?Gr=FC=DFe_aus?= =?utf-8?q?_K=C3=B6ln?='), 'Grüße aus Köln');
  assert.equal(decodeEncodedWords('plain =?bogus-charset?B?eA==?= text'), 'plain =?bogus-charset?B?eA==?= text');
});

test('applyMatchers: matchers of one kind are alternatives; different kinds must all match', () => {
  const headers = parseHeaderFields(Buffer.from('Subject: =?UTF-8?B?SW52b2ljZSAyMDI2?=\nFrom: x@y\n'));
  const subject = parseHeaderMatcher('subject:/^Invoice \\d+$/');
  // One kind, repeated: either one is enough.
  const senders = [parseEnvelopeMatcher('sender', '^$'), parseEnvelopeMatcher('sender', '@evil\\.example$')];
  assert.equal(applyMatchers(senders, { sender: '', recipients: [], headers: [] }).length, 1, 'the null sender matches ^$');
  assert.deepEqual(applyMatchers(senders, { sender: 'x@EVIL.example', recipients: [], headers: [] }), ['sender "x@EVIL.example" matches @evil\\.example$']);
  assert.deepEqual(applyMatchers(senders, { sender: 'a@b', recipients: [], headers: [] }), []);
  // Sender AND recipient: a message from the sender to someone else does not match, nor one to the recipient from someone else.
  const both = [parseEnvelopeMatcher('sender', '^nobody@x$'), parseEnvelopeMatcher('recipient', 'remote\\.example$')];
  assert.deepEqual(applyMatchers(both, { sender: 'a@b', recipients: ['c@remote.example'], headers: [] }), []);
  assert.deepEqual(applyMatchers(both, { sender: 'nobody@x', recipients: ['c@elsewhere'], headers: [] }), []);
  assert.deepEqual(applyMatchers(both, { sender: 'nobody@x', recipients: ['c@elsewhere', 'BOSS@REMOTE.EXAMPLE'], headers: [] }), [
    'sender "nobody@x" matches ^nobody@x$',
    'recipient "BOSS@REMOTE.EXAMPLE" matches remote\\.example$',
  ]);
  // Header AND sender (either of two); RFC 2047 subjects are decoded.
  const m = [subject, ...senders];
  assert.deepEqual(applyMatchers(m, { sender: 'a@b', recipients: ['c@d'], headers }), [], 'subject matches, sender does not');
  assert.deepEqual(applyMatchers(m, { sender: '', recipients: ['c@d'], headers }), ['header Subject: "Invoice 2026" matches subject:/^Invoice \\d+$/', 'sender "" matches ^$']);
  assert.deepEqual(applyMatchers(m, { sender: '', recipients: [], headers: parseHeaderFields(Buffer.from('Subject: hello\n')) }), [], 'sender matches, subject does not');
  // Two header matchers on different fields are alternatives too (one kind).
  const hdrs = [subject, parseHeaderMatcher('X-Mailer:/bulk/')];
  assert.equal(applyMatchers(hdrs, { sender: 'a@b', recipients: [], headers: parseHeaderFields(Buffer.from('Subject: hi\nX-Mailer: BulkMail 2\n')) }).length, 0, '/bulk/ is case-sensitive');
  assert.equal(applyMatchers(hdrs, { sender: 'a@b', recipients: [], headers: parseHeaderFields(Buffer.from('Subject: hi\nX-Mailer: bulkmail 2\n')) }).length, 1);
});

test('walk order: queues as given, then path components by code unit', () => {
  const cmp = makeKeyComparator(['deferred', 'hold', 'active']);
  const keys = ['hold/0A1', 'deferred/B/B1', 'active/01', 'deferred/A/Z9', 'deferred/A/B/ABC', 'deferred/A/AAA'];
  assert.deepEqual([...keys].sort(cmp), ['deferred/A/AAA', 'deferred/A/B/ABC', 'deferred/A/Z9', 'deferred/B/B1', 'hold/0A1', 'active/01']);
  assert.ok(isQueueId('23A102103AF'));
  assert.ok(isQueueId('4dQxVN0F5Qz2wt6'), 'long queue IDs');
  assert.ok(!isQueueId('23A1.tmp'));
});
