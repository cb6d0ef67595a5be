import { ActionFlag, ProtocolFlag } from './constants.js';
import { MilterProtocolError } from './errors.js';
import type { MessageModifier } from './filter.js';
import type { Modification } from './messages.js';
import type { NegotiatedOptions } from './negotiate.js';
import { encodeResponse } from './response-encoder.js';

const ACTION_NAME: Record<number, string> = {
  [ActionFlag.ADDHDRS]: 'ADDHDRS',
  [ActionFlag.CHGHDRS]: 'CHGHDRS',
  [ActionFlag.CHGBODY]: 'CHGBODY',
  [ActionFlag.ADDRCPT]: 'ADDRCPT',
  [ActionFlag.ADDRCPT_PAR]: 'ADDRCPT_PAR',
  [ActionFlag.DELRCPT]: 'DELRCPT',
  [ActionFlag.CHGFROM]: 'CHGFROM',
  [ActionFlag.QUARANTINE]: 'QUARANTINE',
};

/**
 * Collects end-of-message changes as encoded packets, checked as they are asked for: a change whose action
 * was not negotiated throws (libmilter refuses them too; Sendmail would tempfail a body replacement).
 * Body parts are kept apart and written last, together: Postfix calls a REPLBODY after another change that
 * followed an earlier REPLBODY a configuration error.
 */
export class MessageModifierImpl implements MessageModifier {
  private readonly changes: Buffer[] = [];
  private readonly bodyParts: Buffer[] = [];
  private readonly leadingSpace: boolean;
  private readonly negotiated: NegotiatedOptions;
  private readonly sendProgress: () => void;

  constructor(negotiated: NegotiatedOptions, sendProgress: () => void) {
    this.negotiated = negotiated;
    this.sendProgress = sendProgress;
    this.leadingSpace = (negotiated.protocol & ProtocolFlag.HDR_LEADSPC) !== 0;
  }

  addHeader(name: string, value: string): void {
    this.add(ActionFlag.ADDHDRS, { type: 'add-header', name, value: this.headerValue(value) });
  }

  insertHeader(index: number, name: string, value: string): void {
    this.add(ActionFlag.ADDHDRS, { type: 'insert-header', index, name, value: this.headerValue(value) });
  }

  changeHeader(name: string, index: number, value: string): void {
    this.add(ActionFlag.CHGHDRS, { type: 'change-header', index, name, value: value === '' ? '' : this.headerValue(value) });
  }

  deleteHeader(name: string, index: number): void {
    this.add(ActionFlag.CHGHDRS, { type: 'change-header', index, name, value: '' });
  }

  changeFrom(sender: string, esmtpArgs?: string): void {
    this.add(ActionFlag.CHGFROM, esmtpArgs === undefined ? { type: 'change-from', sender } : { type: 'change-from', sender, esmtpArgs });
  }

  addRecipient(recipient: string, esmtpArgs?: string): void {
    if (esmtpArgs === undefined || esmtpArgs === '') this.add(ActionFlag.ADDRCPT, { type: 'add-rcpt', recipient });
    else this.add(ActionFlag.ADDRCPT_PAR, { type: 'add-rcpt-par', recipient, esmtpArgs });
  }

  deleteRecipient(recipient: string): void {
    this.add(ActionFlag.DELRCPT, { type: 'delete-rcpt', recipient });
  }

  replaceBody(chunk: Buffer): void {
    this.require(ActionFlag.CHGBODY);
    this.bodyParts.push(chunk);
  }

  quarantine(reason: string): void {
    this.add(ActionFlag.QUARANTINE, { type: 'quarantine', reason });
  }

  progress(): void {
    this.sendProgress();
  }

  /** The encoded packets, changes first then the body replacement. */
  packets(): Buffer[] {
    if (this.bodyParts.length === 0) return this.changes;
    const body = this.bodyParts.length === 1 ? (this.bodyParts[0] as Buffer) : Buffer.concat(this.bodyParts);
    return [...this.changes, encodeResponse({ type: 'replace-body', chunk: body })];
  }

  // Without HDR_LEADSPC the MTA adds the space after the colon itself; with it, the value is used verbatim.
  private headerValue(value: string): string {
    return this.leadingSpace && !/^[ \t]/.test(value) ? ` ${value}` : value;
  }

  private add(action: number, change: Modification): void {
    this.require(action);
    this.changes.push(encodeResponse(change));
  }

  private require(action: number): void {
    if ((this.negotiated.actions & action) === 0) {
      throw new MilterProtocolError('invalid-reply', `the ${ACTION_NAME[action] ?? action} action was not negotiated with the MTA`);
    }
  }
}
