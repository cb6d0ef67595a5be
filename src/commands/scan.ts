// `postfix-milter-ts scan FILE.eml…`: the end-of-message verdict, offline, one JSON object per file.
// Exit status: 0 all accepted, 1 any refused, 2 on error (unreadable file, scanner failure).
import { readFile } from 'node:fs/promises';
import { inspectMessage } from '../content/attachment-inspector.js';
import type { GatewayConfig } from '../config/schema.js';
import { ClamdScanner } from '../scanner/clamd-scanner.js';
import type { ScanResult } from '../scanner/scan-result.js';
import { decideContentVerdict, type ContentChecks } from '../verdict/content-verdict.js';

export interface ScanReport {
  readonly file: string;
  readonly verdict: string;
  readonly reply?: string | undefined;
  readonly findings: readonly { readonly kind: string; readonly rule: string; readonly name: string; readonly path?: string }[];
  readonly failures?: readonly string[];
  readonly error?: string;
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
      const oversize = scanner !== undefined && raw.length > config.clamav.maxScanBytes;
      const [inspection, scan] = await Promise.all([
        config.attachments.enabled ? inspectMessage(raw, config.attachments) : Promise.resolve(undefined),
        scanner && !oversize ? scanner.scan(raw) : Promise.resolve<ScanResult | undefined>(undefined),
      ]);
      const failures: ContentChecks['failures'][number][] = [];
      if (inspection?.error !== undefined) failures.push({ check: 'attachments', reason: 'error', detail: inspection.error });
      if (scan?.type === 'failed' && scan.reason !== 'size-limit') failures.push({ check: 'virus', reason: scan.reason, detail: scan.detail });
      const verdict = decideContentVerdict(
        {
          virus: scan?.type === 'infected' ? scan.signature : undefined,
          attachments: inspection?.findings ?? [],
          failures,
          oversize: oversize || (scan?.type === 'failed' && scan.reason === 'size-limit'),
        },
        config.actions,
      );
      const findings = [
        ...(scan?.type === 'infected' ? [{ kind: 'virus', rule: 'clamav', name: scan.signature }] : []),
        ...(inspection?.findings ?? []).map((f) => ({ kind: f.kind, rule: f.rule, name: f.name, path: f.path })),
      ];
      const reply = verdict.reply ? `${verdict.reply.code} ${verdict.reply.xcode ?? ''} ${String(verdict.reply.text)}` : undefined;
      print({ file, verdict: verdict.label, reply, findings, ...(failures.length ? { failures: failures.map((f) => `${f.check}: ${f.reason}: ${f.detail}`) } : {}) });
      if (failures.length > 0) status = 2;
      else if (verdict.label !== 'accepted' && verdict.label !== 'tagged' && status === 0) status = 1;
    }
  } finally {
    scanner?.close();
  }
  return status;
}
