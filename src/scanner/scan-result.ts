// What a virus scan can come to. A scan outcome is always one of these values, never an exception, so the
// milter can map each case to a verdict (a failure of any kind tempfails: mail is never accepted unscanned).

export type ScanFailureReason =
  /** No endpoint could be connected to (all down, refused, connect timeout). */
  | 'unreachable'
  /** clamd did not answer within the scan deadline, or stopped reading our data. */
  | 'timeout'
  /** clamd answered `... ERROR`, or dropped the connection mid-scan, or the scan was aborted. */
  | 'error'
  /** No scan slot became free within the admission wait. */
  | 'overloaded'
  /** The message is larger than our `maxScanBytes`, or clamd refused it (`INSTREAM size limit exceeded`). */
  | 'size-limit'
  /** clamd answered something that is not a scan reply. */
  | 'protocol';

export type ScanResult =
  | { readonly type: 'clean' }
  | { readonly type: 'infected'; readonly signature: string }
  | { readonly type: 'failed'; readonly reason: ScanFailureReason; readonly detail: string };

export type ScanFailure = Extract<ScanResult, { type: 'failed' }>;

export function scanFailure(reason: ScanFailureReason, detail: string): ScanFailure {
  return { type: 'failed', reason, detail };
}
