// `postfix-milter-ts scan FILE.eml…`: the end-of-message verdict, offline, one JSON object per file.
// Exit status: 0 all accepted, 1 any refused, 2 on error (unreadable file, scanner failure).
import { readFile } from 'node:fs/promises';
import { inspectMessage } from '../content/attachment-inspector.js';
import type { GatewayConfig } from '../config/schema.js';
import { ClamdScanner } from '../scanner/clamd-scanner.js';
import type { ScanResult } from '../scanner/scan-result.js';
import { decideContentVerdict, type ContentChecks, type ContentVerdict } from '../verdict/content-verdict.js';

export interface ScanReport {
  readonly file: string;
  readonly verdict: string;
  readonly reply?: string | undefined;
  readonly findings: readonly { readonly kind: string; readonly rule: string; readonly name: string; readonly path?: string }[];
  readonly failures?: readonly string[];
  readonly error?: string;
}

export type ScanFinding = ScanReport['findings'][number];
type CheckFailure = ContentChecks['failures'][number];

/** The end-of-message checks on one whole message, as the milter runs them; shared by `scan` and `sweep-queue`. */
export interface MessageCheck {
  /** The verdict with everything considered: findings, failures (tempfail) and the scan limit. */
  readonly verdict: ContentVerdict;
  /** The verdict on the findings alone: would the message be refused for what it contains? */
  readonly findingsVerdict: ContentVerdict;
  readonly findings: readonly ScanFinding[];
  readonly failures: readonly CheckFailure[];
  /** Larger than clamav.maxScanBytes, so clamd was not asked. */
  readonly oversize: boolean;
  /** The SMTP reply as the milter would give it, e.g. `554 5.7.0 Message refused: …`. */
  readonly reply: string | undefined;
}

/**
 * Runs the attachment inspection and (with a scanner) the clamd scan on `raw` (headers, blank line, body),
 * then the verdict. Never throws for a check's outcome: failures come back in `failures`.
 */
export async function checkMessage(raw: Buffer, config: GatewayConfig, scanner: ClamdScanner | undefined): Promise<MessageCheck> {
  const oversize = scanner !== undefined && raw.length > config.clamav.maxScanBytes;
  const [inspection, scan] = await Promise.all([
    config.attachments.enabled ? inspectMessage(raw, config.attachments) : Promise.resolve(undefined),
    scanner && !oversize ? scanner.scan(raw) : Promise.resolve<ScanResult | undefined>(undefined),
  ]);
  const failures: CheckFailure[] = [];
  if (inspection?.error !== undefined) failures.push({ check: 'attachments', reason: 'error', detail: inspection.error });
  if (scan?.type === 'failed' && scan.reason !== 'size-limit') failures.push({ check: 'virus', reason: scan.reason, detail: scan.detail });
  const tooLarge = oversize || (scan?.type === 'failed' && scan.reason === 'size-limit');
  const verdict = decideContentVerdict(
    {
      virus: scan?.type === 'infected' ? scan.signature : undefined,
      attachments: inspection?.findings ?? [],
      failures,
      oversize: tooLarge,
    },
    config.actions,
  );
  const findings = [
    ...(scan?.type === 'infected' ? [{ kind: 'virus', rule: 'clamav', name: scan.signature }] : []),
    ...(inspection?.findings ?? []).map((f) => ({ kind: f.kind, rule: f.rule, name: f.name, path: f.path })),
  ];
  const reply = verdict.reply ? `${verdict.reply.code} ${verdict.reply.xcode ?? ''} ${String(verdict.reply.text)}` : undefined;
  const findingsVerdict = decideContentVerdict(
    { virus: scan?.type === 'infected' ? scan.signature : undefined, attachments: inspection?.findings ?? [], failures: [], oversize: false },
    config.actions,
  );
  return { verdict, findingsVerdict, findings, failures, oversize: tooLarge, reply };
}

export async function scanFiles(
  files: readonly string[],
  config: GatewayConfig,
  options: { readonly virusScan: boolean },
  print: (report: ScanReport) => void,
): Promise<number> {
  const scanner = options.virusScan ? new ClamdScanner(config.clamav) : undefined;
  let status = 0;
  try {
    for (const file of files) {
      let raw: Buffer;
      try {
        raw = await readFile(file);
      } catch (e) {
        print({ file, verdict: 'error', findings: [], error: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
        status = 2;
        continue;
      }
      const { verdict, findings, failures, reply } = await checkMessage(raw, config, scanner);
      print({ file, verdict: verdict.label, reply, findings, ...(failures.length ? { failures: failures.map((f) => `${f.check}: ${f.reason}: ${f.detail}`) } : {}) });
      if (failures.length > 0) status = 2;
      else if (verdict.label !== 'accepted' && verdict.label !== 'tagged' && status === 0) status = 1;
    }
  } finally {
    scanner?.close();
  }
  return status;
}
