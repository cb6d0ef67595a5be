// Rebuilds the message as the MTA has it (headers as received, blank line, body) from milter events and hands
// the bytes to the content checks while the message streams in, so little is left to do at end of message.
import type { AttachmentInspector } from '../content/attachment-inspector.js';
import type { VirusScan } from '../scanner/clamd-scanner.js';

const CRLF = Buffer.from('\r\n');

export class MessageStream {
  /** Message bytes seen (headers and body), whether or not they were scanned. */
  bytes = 0;
  /** More bytes than the scanner accepts: the scan was dropped, the message counts as not scanned. */
  oversize = false;
  readonly scan: VirusScan | undefined;
  readonly inspector: AttachmentInspector | undefined;
  private readonly maxScanBytes: number;

  constructor(scan: VirusScan | undefined, inspector: AttachmentInspector | undefined, maxScanBytes: number) {
    this.scan = scan;
    this.inspector = inspector;
    this.maxScanBytes = maxScanBytes;
  }

  /**
   * One header. With SMFIP_HDR_LEADSPC the value keeps its leading whitespace, so `name:value` is the header
   * as received; folded lines arrive joined with a bare LF and go back to CRLF.
   */
  header(name: string, value: string): Promise<void> | undefined {
    return this.add(Buffer.from(`${name}:${value.replace(/\r?\n/g, '\r\n')}\r\n`, 'latin1'));
  }

  endOfHeaders(): Promise<void> | undefined {
    return this.add(CRLF);
  }

  body(chunk: Buffer): Promise<void> | undefined {
    return this.add(chunk);
  }

  /**
   * Resolves when both the scanner and the attachment parser can take more. The pending hook holds the
   * session; with body replies waived the server then stops reading, so back-pressure reaches the MTA.
   */
  private add(data: Buffer): Promise<void> | undefined {
    this.bytes += data.length;
    this.inspector?.push(data);
    const parsing = this.inspector?.ready();
    if (!this.scan || this.oversize) return parsing;
    if (this.bytes > this.maxScanBytes) {
      // clamd would refuse it anyway (StreamMaxLength); stop sending now instead of at the end.
      this.oversize = true;
      this.scan.abort();
      return parsing;
    }
    const scanning = this.scan.write(data);
    return parsing ? Promise.all([parsing, scanning]).then(() => undefined) : scanning;
  }
}
