// `postfix-milter-ts offenders` output: columns line up under their headers; an empty list says so.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatOffenders } from 'postfix-milter-ts/commands/offenders.js';

test('columns line up under the header, whatever the address length', () => {
  const text = formatOffenders({
    windowSeconds: 3600,
    offenders: [
      { address: '192.0.2.77', refusals: 4, errorBound: 0, lastRule: 'relay-denied', lastSeen: '2026-11-23T04:00:00.000Z' },
      { address: '2001:db8:1234:5678::/64', refusals: 12, errorBound: 0, lastSeen: '2026-11-23T04:01:00.000Z' },
    ],
  });
  assert.equal(
    text,
    [
      'refusals  address (last 60 min)    last rule     last seen',
      '       4  192.0.2.77               relay-denied  2026-11-23T04:00:00.000Z',
      '      12  2001:db8:1234:5678::/64                2026-11-23T04:01:00.000Z',
    ].join('\n'),
  );
});

test('an empty list says that no client was refused', () => {
  assert.equal(formatOffenders({ windowSeconds: 3600, offenders: [] }), 'no client was refused in the last 60 min');
});
