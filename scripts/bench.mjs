#!/usr/bin/env node
// `npm run bench`: every benchmark, one after another (they measure against peers in the same run, so they
// must not compete for the 2 cores). `npm run bench -- protocol overload` runs only those whose name matches.
// Each prints its table and writes bench/results/<name>.json.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const BENCHES = [
  ['protocol', 'dist-test/bench/protocol-throughput.js', []],
  ['envelope', 'dist-test/bench/envelope-policy.js', ['--expose-gc']],
  ['attachments', 'dist-test/bench/attachment-inspection.js', []],
  ['mta-latency', 'dist-test/bench/mta-latency.js', []],
  ['sendmail-latency', 'dist-test/bench/sendmail-latency.js', []],
  ['clamd', 'dist-test/bench/clamd-end-to-end.js', []],
  ['overload', 'dist-test/bench/overload.js', []],
];

const only = process.argv.slice(2);
let failed = 0;
for (const [name, file, nodeArgs] of BENCHES) {
  if (only.length > 0 && !only.some((o) => name.includes(o))) continue;
  if (!existsSync(file)) {
    console.error(`\n== ${name}: ${file} is missing (run \`npm run build\`)`);
    failed++;
    continue;
  }
  console.log(`\n== ${name} (${file})`);
  const r = spawnSync(process.execPath, [...nodeArgs, file], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`== ${name} failed with status ${r.status ?? r.signal}`);
    failed++;
  }
}
process.exit(failed === 0 ? 0 : 1);
