// Rebuilds the message as the MTA has it (headers as received, blank line, body) from milter events and hands
// the bytes to the content checks while the message streams in, so little is left to do at end of message.
import type { AttachmentInspector } from '../content/attachment-inspector.js';
import type { VirusScan } from '../scanner/clamd-scanner.js';

/** Header bytes gathered before they go to the checks in one piece (at the blank line, or when this full). */
const HEADER_BATCH_BYTES = 64 * 1024;

export class MessageStream {
  /** Message bytes seen (headers and body), whether or not they were scanned. */
  bytes = 0;
  /** More bytes than the scanner accepts: the scan was dropped, the message counts as not scanned. */
  oversize = false;
  readonly scan: VirusScan | undefined;
  readonly inspector: AttachmentInspector | undefined;
  private readonly maxScanBytes: number;
  private headerLines: string[] = [];
  private headerBytes = 0;

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
    // Gathered, not handed on one by one: a header then costs no promise and no call into the checks.
    const line = `${name}:${value.includes('\n') ? value.replace(/\r?\n/g, '\r\n') : value}\r\n`;
    this.headerLines.push(line);
    this.headerBytes += line.length;
    return this.headerBytes >= HEADER_BATCH_BYTES ? this.flushHeaders() : undefined;
  }

  endOfHeaders(): Promise<void> | undefined {
    this.headerLines.push('\r\n');
    return this.flushHeaders();
  }

  body(chunk: Buffer): Promise<void> | undefined {
    if (this.headerLines.length > 0) void this.flushHeaders(); // no EOH came (not negotiated): headers first
    return this.add(chunk);
  }

  /** End of message: anything still gathered goes to the checks before they are asked for a verdict. */
  end(): Promise<void> | undefined {
    return this.headerLines.length > 0 ? this.flushHeaders() : undefined;
  }

  private flushHeaders(): Promise<void> | undefined {
    const bytes = Buffer.from(this.headerLines.join(''), 'latin1');
    this.headerLines = [];
    this.headerBytes = 0;
    return this.add(bytes);
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
