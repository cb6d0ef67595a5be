// What the scanner unit tests share: a ClamdScanner with short test timeouts, closed by the test file's `after`.
import { clamavSchema, type ClamavConfig } from 'postfix-milter-ts/scanner/clamd-config.js';
import { ClamdScanner, type ClamdEndpointHealth } from 'postfix-milter-ts/scanner/clamd-scanner.js';
import type { ScanResult } from 'postfix-milter-ts/scanner/scan-result.js';

/** A scanner on `endpoints` (deadlines of 1–2 s, no re-probe during a test), added to `registry` for cleanup. */
export function testScanner(
  registry: ClamdScanner[],
  endpoints: string[],
  overrides: Partial<Record<keyof ClamavConfig, unknown>> = {},
  onChange?: (h: ClamdEndpointHealth) => void,
): ClamdScanner {
  const config = clamavSchema.parse({ endpoints, connectTimeout: '1s', scanDeadline: '2s', sendTimeout: '1s', reprobeInterval: '60s', ...overrides });
  const s = new ClamdScanner(config, onChange === undefined ? {} : { onEndpointChange: onChange });
  registry.push(s);
  return s;
}

export function failedReason(result: ScanResult): string | undefined {
  return result.type === 'failed' ? result.reason : undefined;
}
