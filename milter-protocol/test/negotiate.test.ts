import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ActionFlag, MilterProtocolError, negotiate, optionRequestFor, ProtocolFlag, type MilterFilter } from '@postfix-milter-ts/protocol';

const POSTFIX = { version: 6, actions: 0x1ff, protocol: 0x1fffff };

test('answers min(offered, 6) and never more than offered', () => {
  assert.equal(negotiate({ ...POSTFIX, version: 6 }, { actions: 0, protocol: 0 }).version, 6);
  assert.equal(negotiate({ ...POSTFIX, version: 4 }, { actions: 0, protocol: 0 }).version, 4);
  assert.equal(negotiate({ ...POSTFIX, version: 7 }, { actions: 0, protocol: 0 }).version, 6);
});

test('refuses version 1', () => {
  assert.throws(() => negotiate({ ...POSTFIX, version: 1 }, { actions: 0, protocol: 0 }), (e: unknown) => e instanceof MilterProtocolError && e.kind === 'negotiation');
});

test('actions and protocol are the intersection with the offer; what is missing is reported', () => {
  const offer = { version: 6, actions: ActionFlag.ADDHDRS | ActionFlag.CHGHDRS, protocol: ProtocolFlag.NOUNKNOWN | ProtocolFlag.NR_HDR };
  const r = negotiate(offer, { actions: ActionFlag.ADDHDRS | ActionFlag.CHGBODY, protocol: ProtocolFlag.NR_HDR | ProtocolFlag.SKIP });
  assert.equal(r.actions, ActionFlag.ADDHDRS);
  assert.equal(r.protocol, ProtocolFlag.NR_HDR);
  assert.equal(r.missingActions, ActionFlag.CHGBODY);
  assert.equal(r.missingProtocol, ProtocolFlag.SKIP);
});

test('zero words mean the version-1 sets (libmilter)', () => {
  const r = negotiate({ version: 2, actions: 0, protocol: 0 }, { actions: 0x1ff, protocol: 0x1fffff });
  assert.equal(r.actions, 0x0f);
  assert.equal(r.protocol, 0x3f);
});

test('reserved MDS bits offered by the MTA are never echoed', () => {
  const r = negotiate({ version: 6, actions: 0x1ff, protocol: 0x1fffff | 0x30000000 }, { actions: 0, protocol: 0xffffffff });
  assert.equal(r.protocol, 0x1fffff);
});

test('macro lists ride in the reply only when SETSYMLIST is offered, and set its bit', () => {
  const macroRequests = new Map([[0, ['{client_addr}']]]);
  const yes = negotiate(POSTFIX, { actions: ActionFlag.ADDHDRS, protocol: 0, macroRequests });
  assert.equal(yes.actions, ActionFlag.ADDHDRS | ActionFlag.SETSYMLIST);
  assert.deepEqual(yes.macroRequests, macroRequests);
  const no = negotiate({ ...POSTFIX, actions: 0xff }, { actions: ActionFlag.ADDHDRS, protocol: 0, macroRequests });
  assert.equal(no.actions, ActionFlag.ADDHDRS);
  assert.equal(no.macroRequests, undefined);
});

test('a filter asks the MTA to skip the stages it has no hook for, and for SKIP when it reads content', () => {
  const filter: MilterFilter<undefined> = { envrcpt: () => undefined, body: () => undefined, eom: () => undefined };
  const { protocol } = optionRequestFor(filter);
  for (const bit of [ProtocolFlag.NOCONNECT, ProtocolFlag.NOHELO, ProtocolFlag.NOMAIL, ProtocolFlag.NODATA, ProtocolFlag.NOHDRS, ProtocolFlag.NOEOH, ProtocolFlag.NOUNKNOWN]) {
    assert.ok(protocol & bit, `bit 0x${bit.toString(16)} set`);
  }
  assert.equal(protocol & ProtocolFlag.NORCPT, 0);
  assert.equal(protocol & ProtocolFlag.NOBODY, 0);
  assert.ok(protocol & ProtocolFlag.SKIP);
  assert.equal(protocol & ProtocolFlag.NR_HDR, 0, 'no reply waived unless asked');
});

test('features and waived replies follow the filter options; a connect macro list keeps `v`', () => {
  const r = optionRequestFor({
    headerLeadingSpace: true,
    rejectedRecipients: true,
    noReply: ['header', 'body'],
    macros: { connect: ['{client_addr}'], envfrom: ['{auth_authen}'] },
    actions: ActionFlag.ADDHDRS,
  });
  assert.ok(r.protocol & ProtocolFlag.HDR_LEADSPC);
  assert.ok(r.protocol & ProtocolFlag.RCPT_REJ);
  assert.ok(r.protocol & ProtocolFlag.NR_HDR);
  assert.ok(r.protocol & ProtocolFlag.NR_BODY);
  assert.equal(r.actions, ActionFlag.ADDHDRS);
  assert.deepEqual(r.macroRequests, new Map([[0, ['{client_addr}', 'v']], [2, ['{auth_authen}']]]));
});
