// Reads the YAML config and checks it against the schema. Every error names the file, the line, the key
// and what was expected, because an administrator fixes config by line number.
import { readFile } from 'node:fs/promises';
import { isMap, isNode, isPair, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';

export class ConfigError extends Error {
  /** One line per problem, each `FILE:LINE: key: what is wrong`. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type PathKey = string | number;

function lineAt(counter: LineCounter, node: unknown): number | undefined {
  if (!isNode(node) && !isPair(node)) return undefined;
  const range = isPair(node) ? (node.key as { range?: [number, number, number] } | null)?.range : node.range;
  return range ? counter.linePos(range[0]).line : undefined;
}

/** The YAML node of a key path: the key itself when the path ends on a mapping entry (better line). */
function nodeFor(doc: Document, path: readonly PathKey[]): unknown {
  let node: unknown = doc.contents;
  // The entry holding `node`: a missing key is reported on its parent's key line, not its first sibling's.
  let holder: unknown;
  for (const key of path) {
    if (!isMap(node) && !(isNode(node) && 'items' in node)) return node;
    const items = (node as { items: unknown[] }).items;
    if (isMap(node)) {
      const pair = items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(key));
      if (!pair || !isPair(pair)) return holder ?? node;
      if (key === path.at(-1)) return pair;
      holder = pair;
      node = pair.value;
    } else {
      node = typeof key === 'number' ? items[key] : node;
    }
  }
  return node;
}

function describe(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    case 'invalid_type':
      return 'input' in issue && issue.input !== undefined ? `expected ${issue.expected}, got ${JSON.stringify(issue.input)}` : `missing: expected ${issue.expected}`;
    case 'invalid_union': {
      // A union of types (durations, sizes: a number or a string) where no branch matched the type at all:
      // zod only says "Invalid input", so name what each branch expected and what was written.
      const expected = issue.errors.flatMap((branch) => (branch.length === 1 && branch[0]?.code === 'invalid_type' && branch[0].path.length === 0 ? [branch[0].expected] : []));
      if (expected.length === 0 || expected.length !== issue.errors.length) return issue.message;
      const input = 'input' in issue ? issue.input : undefined;
      return input === undefined ? `missing: expected ${expected.join(' or ')}` : `expected ${expected.join(' or ')}, got ${JSON.stringify(input)}`;
    }
    case 'invalid_key': {
      // A record key that fails its own schema (e.g. actions.byRule): the key's schema says what is expected.
      const why = issue.issues.map((i) => i.message).join('; ');
      return `invalid key${'input' in issue && issue.input !== undefined ? ` ${JSON.stringify(issue.input)}` : ''}${why ? `: ${why}` : ''}`;
    }
    default:
      return issue.message;
  }
}

/** A value that replaces one key of the file: from a command-line flag or an environment variable. */
export interface ConfigOverride {
  readonly path: readonly string[];
  readonly value: unknown;
  /** Where it came from, for error messages: `--listen`, `environment MILTER_LISTEN`. */
  readonly origin: string;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1) as string] = value;
}

/**
 * A key with nothing after it (`metrics:` whose keys are all commented out) is left out, so its defaults apply, as
 * they do for a key not written at all. Inside lists nothing is dropped.
 */
function withoutEmptyKeys(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(withoutEmptyKeys);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = withoutEmptyKeys(v);
  return out;
}

/** Parses YAML text and validates it; `source` names the file in messages. */
export function parseConfigText<T extends z.ZodType>(schema: T, text: string, source: string, overrides: readonly ConfigOverride[] = []): z.output<T> {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `${source}:${e.linePos?.[0].line ?? 1}: YAML syntax: ${e.message.split('\n')[0] ?? ''}`));
  }
  let value: unknown;
  try {
    value = doc.contents === null ? {} : withoutEmptyKeys(doc.toJS());
  } catch (e) {
    // Resolving aliases can fail after a clean parse (the yaml library's guard against alias bombs).
    throw new ConfigError([`${source}:1: YAML: ${(e as Error).message.split('\n')[0] ?? ''}`]);
  }
  if (overrides.length > 0 && typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const o of overrides) setPath(value as Record<string, unknown>, o.path, o.value);
  }
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue): [line: number, text: string] => {
    const override = overrides.find((o) => o.path.length <= issue.path.length && o.path.every((k, i) => String(issue.path[i]) === k));
    if (override) return [0, `${override.origin}: ${issue.path.map(String).join('.')}: ${describe(issue)}`];
    // For unknown keys, point at the first unknown key itself.
    const path = issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined ? [...issue.path, issue.keys[0]] : issue.path;
    const keyPath = (issue.code === 'unrecognized_keys' ? issue.path : path).map(String).join('.') || '(top level)';
    const line = lineAt(counter, nodeFor(doc, path as PathKey[])) ?? 1;
    return [line, `${source}:${line}: ${keyPath}: ${describe(issue)}`];
  });
  // In file order, as an administrator works through them.
  throw new ConfigError(problems.sort((a, b) => a[0] - b[0]).map(([, text]) => text));
}

export async function loadConfigFile<T extends z.ZodType>(schema: T, file: string, overrides: readonly ConfigOverride[] = []): Promise<z.output<T>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError([`${file}: cannot read the config file (${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory' : String(e)})`]);
  }
  return parseConfigText(schema, utf8Text(bytes, file), file, overrides);
}

/** The file's text; a file that is not UTF-8 is refused with the line at fault (YAML is UTF-8 here). */
function utf8Text(bytes: Buffer, file: string): string {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff) || bytes.includes(0)) {
    throw new ConfigError([`${file}:1: not UTF-8 text (UTF-16? save the file as UTF-8)`]);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Find the first line that does not decode.
    let start = 0;
    for (let line = 1; start <= bytes.length; line++) {
      const end = bytes.indexOf(0x0a, start);
      const slice = bytes.subarray(start, end === -1 ? bytes.length : end);
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(slice);
      } catch {
        throw new ConfigError([`${file}:${line}: bytes that are not UTF-8 (Latin-1? save the file as UTF-8)`]);
      }
      if (end === -1) break;
      start = end + 1;
    }
    throw new ConfigError([`${file}: not UTF-8 text`]);
  }
}
