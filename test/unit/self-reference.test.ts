// Tests reach the application's compiled modules through the package's own name (package.json "exports").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_CONFIG } from 'postfix-milter-ts/config/schema.js';

test('the application package is importable by its own name', () => {
  assert.match(DEFAULT_CONFIG.milter.listen, /^inet:127\.0\.0\.1:\d+$/);
});
