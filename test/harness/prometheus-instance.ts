// A private, throw-away Prometheus for end-to-end tests: the Debian binary with its own config and TSDB under a
// temp dir, web/API on a free loopback port, a short scrape and rule-evaluation interval, the given targets in
// one job, optionally the project's alert rules. Plus helpers that pull every PromQL expression out of the
// Grafana dashboard and the alert rules, with Grafana's variables replaced, so a test can evaluate them all.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ExitCleanup } from './exit-cleanup.js';
import { freeLoopbackPort } from './free-port.js';

const PROMETHEUS = '/usr/bin/prometheus';

export interface PrometheusInstanceOptions {
  /** Scrape targets as `host:port`, all in one job. */
  readonly targets: readonly string[];
  /** Job name; the shipped alert rules match `postfix-milter-ts`. */
  readonly jobName?: string;
  /** Default 1 s. */
  readonly scrapeIntervalSeconds?: number;
  /** Default 1 s. */
  readonly evaluationIntervalSeconds?: number;
  /** Absolute paths of rule files to load (e.g. postfix-examples/prometheus/alerts.yml). */
  readonly ruleFiles?: readonly string[];
  /** How long start() waits for /-/ready. Default 30 s. */
  readonly startTimeoutMs?: number;
}

/** One series of an instant-query result. */
export interface PromSample {
  readonly metric: Readonly<Record<string, string>>;
  /** The value as Prometheus printed it (`NaN`, `+Inf` and numbers). */
  readonly value: string;
}

export interface PromTarget {
  readonly scrapeUrl: string;
  readonly health: 'up' | 'down' | 'unknown';
  readonly lastError: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface PromRule {
  readonly name: string;
  readonly type: 'alerting' | 'recording';
  readonly query: string;
  readonly health: string;
  readonly lastError?: string;
  /** Alerting rules only: inactive, pending or firing. */
  readonly state?: string;
}

const live = new ExitCleanup<PrometheusInstance>((p) => p.stopSync());

export class PrometheusInstance {
  private readonly options: PrometheusInstanceOptions;
  private rootDir: string | undefined;
  private process: ChildProcess | undefined;
  private webPort = 0;

  constructor(options: PrometheusInstanceOptions) {
    this.options = options;
  }

  get root(): string {
    if (this.rootDir === undefined) throw new Error('PrometheusInstance: not started');
    return this.rootDir;
  }

  /** Base URL of the web UI and HTTP API, e.g. http://127.0.0.1:41234 */
  get url(): string {
    return `http://127.0.0.1:${this.webPort}`;
  }

  get logFile(): string {
    return join(this.root, 'prometheus.log');
  }

  get jobName(): string {
    return this.options.jobName ?? 'postfix-milter-ts';
  }

  async start(): Promise<void> {
    if (this.rootDir !== undefined) throw new Error('PrometheusInstance: start() called twice');
    this.rootDir = await mkdtemp(join(tmpdir(), 'prom-e2e-'));
    live.add(this);
    try {
      this.webPort = await freeLoopbackPort();
      const configFile = join(this.root, 'prometheus.yml');
      await writeFile(configFile, this.config());
      const log = createWriteStream(this.logFile);
      const child = spawn(PROMETHEUS, [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(this.root, 'data')}`,
        `--web.listen-address=127.0.0.1:${this.webPort}`,
        '--storage.tsdb.retention.time=1h',
        // The UI's console templates are not installed in the temp dir; the API does not need them.
        `--web.console.templates=${join(this.root, 'consoles')}`,
        `--web.console.libraries=${join(this.root, 'console_libraries')}`,
      ], { cwd: this.root, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      this.process = child;
      await this.waitForReady(this.options.startTimeoutMs ?? 30_000);
    } catch (e) {
      const log = await this.log();
      await this.stop();
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- prometheus log ---\n${log}`, { cause: e });
    }
  }

  private config(): string {
    const scrape = this.options.scrapeIntervalSeconds ?? 1;
    const evaluation = this.options.evaluationIntervalSeconds ?? 1;
    const rules = (this.options.ruleFiles ?? []).map((f) => `  - ${JSON.stringify(f)}\n`).join('');
    return [
      'global:',
      `  scrape_interval: ${scrape}s`,
      `  scrape_timeout: ${scrape}s`,
      `  evaluation_interval: ${evaluation}s`,
      rules === '' ? '' : `rule_files:\n${rules}`,
      'scrape_configs:',
      `  - job_name: ${JSON.stringify(this.jobName)}`,
      '    static_configs:',
      `      - targets: [${this.options.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
      '',
    ].join('\n');
  }

  private async waitForReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.process?.exitCode !== null && this.process?.exitCode !== undefined) throw new Error(`prometheus exited with code ${this.process.exitCode}`);
      try {
        const r = await fetch(`${this.url}/-/ready`);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`prometheus did not become ready within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** Evaluates an instant query; throws with Prometheus' own message when the expression is bad. */
  async query(promql: string): Promise<PromSample[]> {
    const r = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
    const body = (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
    if (body.status !== 'success' || body.data === undefined) throw new Error(`query failed (${r.status}): ${body.error ?? 'no data'}\n  ${promql}`);
    const { resultType, result } = body.data;
    if (resultType === 'vector') {
      return (result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((s) => ({ metric: s.metric, value: s.value[1] }));
    }
    if (resultType === 'scalar' || resultType === 'string') return [{ metric: {}, value: (result as [number, string])[1] }];
    throw new Error(`unexpected result type ${resultType} for ${promql}`);
  }

  async targets(): Promise<PromTarget[]> {
    const r = await fetch(`${this.url}/api/v1/targets?state=active`);
    const body = (await r.json()) as { data: { activeTargets: PromTarget[] } };
    return body.data.activeTargets;
  }

  /** Waits until the target `host:port` (default: the first configured one) was scraped successfully. */
  async waitForTargetUp(target = this.options.targets[0], timeoutMs = 20_000): Promise<void> {
    if (target === undefined) throw new Error('PrometheusInstance: no target configured');
    const deadline = Date.now() + timeoutMs;
    let last: PromTarget | undefined;
    for (;;) {
      last = (await this.targets()).find((t) => t.labels['instance'] === target);
      if (last?.health === 'up') return;
      if (Date.now() > deadline) throw new Error(`target ${target} not up within ${timeoutMs} ms: ${last ? `${last.health} ${last.lastError}` : 'not known to Prometheus'}`);
      await sleep(200);
    }
  }

  /** Polls an expression until it returns at least one series (e.g. enough samples for a rate()). */
  async waitForData(promql: string, timeoutMs = 20_000): Promise<PromSample[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.query(promql);
      if (r.length > 0) return r;
      if (Date.now() > deadline) throw new Error(`no data within ${timeoutMs} ms for ${promql}`);
      await sleep(250);
    }
  }

  /** Loaded rules with their evaluation health and, for alerts, their state. */
  async rules(): Promise<PromRule[]> {
    const r = await fetch(`${this.url}/api/v1/rules`);
    const body = (await r.json()) as { data: { groups: Array<{ rules: PromRule[] }> } };
    return body.data.groups.flatMap((g) => g.rules);
  }

  async log(): Promise<string> {
    if (this.rootDir === undefined) return '';
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  async stop(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (this.rootDir !== undefined) await rm(this.rootDir, { recursive: true, force: true });
    live.delete(this);
  }

  /** For the exit hook only. */
  stopSync(): void {
    if (this.process !== undefined && this.process.exitCode === null) this.process.kill('SIGKILL');
    if (this.rootDir !== undefined) rmSync(this.rootDir, { recursive: true, force: true });
    live.delete(this);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------------------
// PromQL expressions of the dashboard and the alert rules

export interface PromqlExpression {
  readonly source: 'panel' | 'variable' | 'alert' | 'record';
  /** Panel title + refId, variable name, or alert/record name. */
  readonly name: string;
  /** As written in the file. */
  readonly raw: string;
  /** With Grafana variables substituted; what Prometheus evaluates. */
  readonly expr: string;
}

/** Values for Grafana's built-in and dashboard variables. */
export interface GrafanaVariableValues {
  /** `$__range` (the selected time range). Default `10m`. */
  readonly range?: string;
  /** `$__rate_interval`; at least four scrape intervals. Default `1m`. */
  readonly rateInterval?: string;
  /** `$__interval`. Default `15s`. */
  readonly interval?: string;
  /** Dashboard variables by name; `instance` defaults to `.*` (the dashboard's "All" value). */
  readonly variables?: Readonly<Record<string, string>>;
}

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(duration);
  if (m === null) throw new Error(`not a simple duration: ${duration}`);
  const factor: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  return Number(m[1]) * (factor[m[2] as string] as number);
}

/** Replaces `$name`, `${name}`, `${name:format}` and `[[name]]`; an unknown variable is an error (a typo in the dashboard). */
export function substituteGrafanaVariables(expr: string, values: GrafanaVariableValues = {}): string {
  const range = values.range ?? '10m';
  const rateInterval = values.rateInterval ?? '1m';
  const interval = values.interval ?? '15s';
  const known: Record<string, string> = {
    __range: range,
    __range_s: String(seconds(range)),
    __range_ms: String(seconds(range) * 1000),
    __rate_interval: rateInterval,
    __interval: interval,
    __interval_ms: String(seconds(interval) * 1000),
    instance: '.*',
    ...values.variables,
  };
  return expr.replace(/\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a: string | undefined, b: string | undefined, c: string | undefined) => {
    const name = (a ?? b ?? c) as string;
    const value = known[name];
    if (value === undefined) throw new Error(`unknown Grafana variable ${whole} in: ${expr}`);
    return value;
  });
}

interface DashboardPanel {
  title?: string;
  type?: string;
  targets?: Array<{ expr?: string; refId?: string }>;
  panels?: DashboardPanel[];
}

/** Every panel's and every query variable's PromQL (`label_values(m, l)` becomes `group by (l) (m)`). */
export function dashboardExpressions(dashboard: unknown, values: GrafanaVariableValues = {}): PromqlExpression[] {
  const d = dashboard as { panels?: DashboardPanel[]; templating?: { list?: Array<{ name?: string; type?: string; query?: unknown; definition?: string }> } };
  const out: PromqlExpression[] = [];
  const visit = (panels: DashboardPanel[] | undefined): void => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) {
        if (typeof t.expr === 'string' && t.expr.trim() !== '') {
          out.push({ source: 'panel', name: `${p.title ?? '(untitled)'} [${t.refId ?? '?'}]`, raw: t.expr, expr: substituteGrafanaVariables(t.expr, values) });
        }
      }
      visit(p.panels);
    }
  };
  visit(d.panels);
  for (const v of d.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : ((v.query as { query?: string } | undefined)?.query ?? v.definition ?? '');
    const m = /^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$/.exec(q);
    const expr = m ? `group by (${m[2]}) (${m[1]})` : q;
    out.push({ source: 'variable', name: v.name ?? '(unnamed)', raw: q, expr: substituteGrafanaVariables(expr, values) });
  }
  return out;
}

/** Every `expr` of a Prometheus rule file (YAML text). */
export function ruleExpressions(rulesYaml: string): PromqlExpression[] {
  const doc = parseYaml(rulesYaml) as { groups?: Array<{ rules?: Array<{ alert?: string; record?: string; expr?: unknown }> }> };
  const out: PromqlExpression[] = [];
  for (const g of doc.groups ?? []) {
    for (const r of g.rules ?? []) {
      if (typeof r.expr !== 'string') throw new Error(`rule ${r.alert ?? r.record ?? '?'} has no expr string`);
      const expr = r.expr.trim();
      out.push({ source: r.alert !== undefined ? 'alert' : 'record', name: r.alert ?? r.record ?? '?', raw: expr, expr });
    }
  }
  return out;
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2']);

/**
 * Metric names an expression selects (a small scan, not a parser): strings, label matchers, ranges and
 * grouping clauses are removed, then every identifier that is not a function call or keyword is a metric.
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const before = stripped[m.index - 1] ?? ' ';
    if (/[0-9.]/.test(before)) continue; // exponent of a number like 1e3
    if (/^\s*\(/.test(stripped.slice(m.index + word.length))) continue; // function call
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}
