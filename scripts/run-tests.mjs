#!/usr/bin/env node
// Runs every compiled test file with node's test runner. Files are listed explicitly because `node --test DIR`
// walks a directory on Node 20 but reads the argument as a glob on Node 21+.
//   node scripts/run-tests.mjs           all tests (unit, then end-to-end against real servers)
//   node scripts/run-tests.mjs --unit    unit tests only (no real servers)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'dist-test');
const unitOnly = process.argv.includes('--unit');

function walk(dir) {
  let files = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files = files.concat(walk(p));
    else if (name.endsWith('.test.js')) files.push(p);
  }
  return files;
}

const all = walk(out).sort();
const isE2e = (f) => relative(out, f).split('/').includes('e2e');
const files = unitOnly ? all.filter((f) => !isE2e(f)) : [...all.filter((f) => !isE2e(f)), ...all.filter(isE2e)];
if (files.length === 0) {
  console.error('no compiled tests found under dist-test/: run `tsc -b` first');
  process.exit(1);
}
// End-to-end tests share one private Postfix/Sendmail per file; run files one after another so they do not
// fight over CPU on a 2-core machine and timings stay meaningful.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=300000', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
