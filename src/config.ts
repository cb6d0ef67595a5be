// The gateway's configuration: embedded defaults, overridden by a YAML file, then by flags/environment.
// Issue #6 grows this into the full schema; for now it holds what `serve` needs.
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';

export interface MilterConfig {
  /** Where the milter listens (Postfix syntax). */
  readonly listen: string;
  readonly maxSessions: number;
  readonly idleTimeoutSeconds: number;
  readonly progressIntervalSeconds: number;
  readonly maxFrameBytes: number;
  readonly shutdownGraceSeconds: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
}

/** Loopback only, so a fresh install is safe. Port 10031: used by no common milter or exporter. */
export const DEFAULT_CONFIG: MilterConfig = {
  listen: 'inet:127.0.0.1:10031',
  maxSessions: 500,
  idleTimeoutSeconds: 600,
  progressIntervalSeconds: 5,
  maxFrameBytes: 1024 * 1024,
  shutdownGraceSeconds: 30,
  logLevel: 'info',
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Check = (value: unknown) => string | undefined;

const positiveInt: Check = (v) => (Number.isInteger(v) && (v as number) > 0 ? undefined : 'a positive integer');
const nonEmptyString: Check = (v) => (typeof v === 'string' && v !== '' ? undefined : 'a non-empty string');
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

const SCHEMA: Record<keyof MilterConfig, Check> = {
  listen: nonEmptyString,
  maxSessions: positiveInt,
  idleTimeoutSeconds: positiveInt,
  progressIntervalSeconds: positiveInt,
  maxFrameBytes: (v) => (Number.isInteger(v) && (v as number) >= 65536 ? undefined : 'an integer of at least 65536'),
  shutdownGraceSeconds: positiveInt,
  logLevel: (v) => (typeof v === 'string' && LOG_LEVELS.includes(v) ? undefined : `one of ${LOG_LEVELS.join(', ')}`),
};

function lineOf(counter: LineCounter, node: unknown): number {
  const range = (node as { range?: [number, number, number] } | undefined)?.range;
  return range ? counter.linePos(range[0]).line : 0;
}

/** Parses and checks a YAML config text; every error names the file, line and key. */
export function parseConfig(text: string, source: string): MilterConfig {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(`${source}:${e.linePos?.[0].line ?? 0}: YAML syntax error: ${e.message.split('\n')[0]}`);
  }
  if (doc.contents === null) return DEFAULT_CONFIG;
  if (!isMap(doc.contents)) throw new ConfigError(`${source}:1: the config must be a mapping of keys to values`);
  const out: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const pair of doc.contents.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const line = lineOf(counter, pair.key);
    const check = (SCHEMA as Record<string, Check | undefined>)[key];
    if (!check) throw new ConfigError(`${source}:${line}: unknown key '${key}' (known: ${Object.keys(SCHEMA).join(', ')})`);
    const value = isScalar(pair.value) ? pair.value.value : pair.value;
    const problem = check(value);
    if (problem) throw new ConfigError(`${source}:${line}: '${key}' must be ${problem}, got ${JSON.stringify(value)}`);
    out[key] = value;
  }
  return out as unknown as MilterConfig;
}

export async function loadConfig(file: string): Promise<MilterConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseConfig(text, file);
}
