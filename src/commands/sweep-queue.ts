// `postfix-milter-ts sweep-queue`: after an outbreak, find the bad messages already in Postfix's queue and
// print their queue IDs, one per line, for `postfix-milter-ts sweep-queue | postsuper -d -`. Read-only.
//
// Selected: messages the milter's attachment or virus policy would refuse (the same checks as `scan`), OR
// that match the matchers. Every --match-* flag repeats; matchers of one kind are alternatives, different
// kinds must all match (--match-sender A --match-recipient B: from A and to B). With matchers given, clamd is
// not asked unless --virus-scan says so (the admin knows what to look for, and clamd is the slow part); the
// attachment policy still applies unless --matchers-only. A message that could not be checked (too large,
// clamd failure) is never selected: deleting mail nobody looked at is not the sweep's call.
//
// Exit statuses are listed in EXIT_CODES (shown by --help); they describe the whole sweep, earlier runs of
// the same checkpoint included, as the output does.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { ConfigError, loadConfigFile, parseConfigText } from '../config/load-config.js';
import { configOverrides } from '../config/overrides.js';
import { configSchema, type GatewayConfig } from '../config/schema.js';
import { type Checkpoint, CheckpointError, loadCheckpoint } from '../queue/checkpoint.js';
import { type Matcher, MatcherSyntaxError, parseEnvelopeMatcher, parseHeaderMatcher } from '../queue/matchers.js';
import { QUEUE_NAMES, type QueueName } from '../queue/queue-walker.js';
import { type Selection, type SweepProgress, SweepSetupError, sweepQueue } from '../queue/sweep.js';

const EX_USAGE = 64;
const EX_CONFIG = 78;
/** Something could not be checked or read, or the sweep could not run; takes precedence over 1. */
const EX_UNCHECKED = 2;

const EXIT_CODES = `
Matchers: every --match-* flag may be repeated. Matchers of the same kind are alternatives (any one of them),
matchers of different kinds must all match: --match-sender A --match-sender B --match-recipient C selects
mail from A or B that is also to C. The attachment/virus policy (unless --matchers-only) selects on its own.

Exit status (for the whole sweep, earlier runs of the same --checkpoint included):
  0    nothing selected, every file checked
  1    messages selected (their queue IDs are on stdout), every file checked
  2    some files could not be checked (too large to scan, clamd failure, corrupt or unreadable; named on
       stderr, never selected), or the sweep could not run (no queue directory, clamd down, checkpoint not
       writable); wins over 1
  64   bad command line, or a checkpoint of a different sweep
  78   invalid configuration file
  130  interrupted by SIGINT (143: SIGTERM); the checkpoint is saved first
`;

export interface SweepQueueFlags {
  readonly config?: string | undefined;
  readonly clamd?: readonly string[] | undefined;
  readonly queueDir?: string | undefined;
  readonly queues?: string | undefined;
  readonly checkpoint?: string | undefined;
  readonly checkpointEvery?: string | undefined;
  readonly matchHeader?: readonly string[] | undefined;
  readonly matchSender?: readonly string[] | undefined;
  readonly matchRecipient?: readonly string[] | undefined;
  /** true: --virus-scan, false: --no-virus-scan, undefined: neither (decided by whether matchers are given). */
  readonly virusScan?: boolean | undefined;
  readonly matchersOnly?: boolean | undefined;
  readonly concurrency?: string | undefined;
  readonly limit?: string | undefined;
  readonly json?: boolean | undefined;
  readonly quiet?: boolean | undefined;
}

export interface SweepIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Aborted on SIGINT/SIGTERM by the caller; the sweep saves its checkpoint and stops. */
  readonly signal?: AbortSignal;
}

class UsageError extends Error {}

function positiveInt(value: string | undefined, flag: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) throw new UsageError(`${flag} ${JSON.stringify(value)}: expected a whole number from 1 to ${max}`);
  return Number(value);
}

function parseQueues(value: string | undefined): QueueName[] {
  if (value === undefined) return [...QUEUE_NAMES];
  const out: QueueName[] = [];
  for (const q of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (!(QUEUE_NAMES as readonly string[]).includes(q)) throw new UsageError(`--queues: unknown queue ${JSON.stringify(q)} (one of ${QUEUE_NAMES.join(', ')})`);
    if (!out.includes(q as QueueName)) out.push(q as QueueName);
  }
  if (out.length === 0) throw new UsageError('--queues: no queue named');
  return out;
}

/** Postfix's queue_directory (`postconf -h`, which honours MAIL_CONFIG). */
function postconfQueueDirectory(env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile('postconf', ['-h', 'queue_directory'], { env, timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new SweepSetupError(`cannot ask postconf for queue_directory (${stderr.trim() || err.message}); give --queue-dir`));
      else resolvePromise(stdout.trim());
    });
  });
}

function fingerprint(parts: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

function rate(files: number, ms: number): string {
  return ms > 0 ? (files / (ms / 1000)).toFixed(0) : '0';
}

function progressLine(p: SweepProgress): string {
  return `sweep-queue: ${p.counts.files} files (${rate(p.filesThisRun, p.elapsedMs)}/s), ${p.counts.selected} selected, ${p.counts.errors} errors${p.at ? `, at ${p.at}` : ''}`;
}

/** Runs the sweep with parsed flags and a loaded config; returns the exit status. */
export async function runSweepQueue(flags: SweepQueueFlags, config: GatewayConfig, io: SweepIo): Promise<number> {
  let matchers: Matcher[];
  let queues: QueueName[];
  let concurrency: number;
  let limit: number | undefined;
  let every: number;
  try {
    matchers = [
      ...(flags.matchHeader ?? []).map(parseHeaderMatcher),
      ...(flags.matchSender ?? []).map((spec) => parseEnvelopeMatcher('sender', spec)),
      ...(flags.matchRecipient ?? []).map((spec) => parseEnvelopeMatcher('recipient', spec)),
    ];
    queues = parseQueues(flags.queues);
    concurrency = positiveInt(flags.concurrency, '--concurrency', 4, 256);
    limit = flags.limit === undefined ? undefined : positiveInt(flags.limit, '--limit', 0, Number.MAX_SAFE_INTEGER);
    every = positiveInt(flags.checkpointEvery, '--checkpoint-every', 1000, 1_000_000);
    if (flags.matchersOnly && matchers.length === 0) throw new UsageError('--matchers-only needs at least one --match-header, --match-sender or --match-recipient');
    if (flags.matchersOnly && flags.virusScan === true) throw new UsageError('--matchers-only and --virus-scan contradict each other');
  } catch (e) {
    if (e instanceof UsageError || e instanceof MatcherSyntaxError) {
      io.stderr(`postfix-milter-ts sweep-queue: ${e.message}\n`);
      return EX_USAGE;
    }
    throw e;
  }
  const contentChecks = flags.matchersOnly !== true;
  const virusScan = contentChecks && (flags.virusScan ?? matchers.length === 0);

  try {
    const queueDir = resolve(flags.queueDir ?? (await postconfQueueDirectory(io.env)));
    let checkpoint: { file: string; previous: Checkpoint | undefined; fingerprint: string; every: number } | undefined;
    if (flags.checkpoint !== undefined) {
      const fp = fingerprint({ queueDir, queues, matchers: matchers.map((m) => `${m.kind}:${m.spec}`), contentChecks, virusScan });
      let previous = await loadCheckpoint(flags.checkpoint);
      if (previous && previous.fingerprint !== fp) {
        io.stderr(
          `postfix-milter-ts sweep-queue: checkpoint ${flags.checkpoint} belongs to a different sweep (other queue directory, queues, matchers or virus scanning); ` +
            'run with the same options, or delete it to start over\n',
        );
        return EX_USAGE;
      }
      if (previous?.finished) {
        io.stderr(`sweep-queue: checkpoint ${flags.checkpoint} is from a sweep that finished at ${previous.updatedAt}; starting a new sweep\n`);
        previous = undefined;
      } else if (previous) {
        const rest = previous.walked ? `every queue walked; checking again the ${previous.retry.length} that could not be checked` : `${previous.retry.length} to check again`;
        io.stderr(`sweep-queue: resuming from ${flags.checkpoint} (${previous.counts.files} files done, ${previous.selected.length} selected, ${rest})\n`);
      }
      checkpoint = { file: flags.checkpoint, previous, fingerprint: fp, every };
    }
    if (!flags.quiet) {
      const what = [contentChecks ? 'attachment policy' : undefined, virusScan ? 'virus scan (clamd)' : undefined, matchers.length > 0 ? `${matchers.length} matcher(s)` : undefined].filter((x) => x !== undefined);
      io.stderr(`sweep-queue: ${queueDir} [${queues.join(',')}]: ${what.join(' + ')}, concurrency ${concurrency}\n`);
    }

    const print = (s: Selection): void => {
      if (flags.json) io.stdout(`${JSON.stringify(s)}\n`);
      else io.stdout(`${s.id}\n`);
    };
    const summary = await sweepQueue(
      { queueDir, queues, matchers, config, contentChecks, virusScan, concurrency, limit, checkpoint, signal: io.signal },
      {
        onSelected: print,
        onProblem: (p) => {
          // Only notes are for information; errors and unchecked files change what the output means.
          if (p.kind === 'note' && flags.quiet) return;
          io.stderr(`sweep-queue: ${p.key}: ${p.message}\n`);
        },
        ...(flags.quiet ? {} : { onProgress: (p: SweepProgress) => io.stderr(`${progressLine(p)}\n`) }),
      },
    );
    const c = summary.counts;
    const end = summary.interrupted ? 'interrupted' : summary.limited ? `stopped after --limit ${limit}` : 'done';
    io.stderr(
      `sweep-queue: ${end}: ${summary.filesThisRun} files in ${(summary.elapsedMs / 1000).toFixed(1)} s (${rate(summary.filesThisRun, summary.elapsedMs)}/s), ` +
        `${summary.selectedThisRun} selected` +
        (summary.replayed ? ` (+${summary.replayed} from the checkpoint)` : '') +
        `, ${summary.errorsThisRun} errors; in all ${c.files} files, ${c.selected} selected, ${c.errors} errors, ${c.oversize} too large to check, ` +
        `${summary.retryPending} could not be checked, ${c.vanished} vanished, ${c.incomplete} being written\n`,
    );
    if (c.oversize > 0) io.stderr(`sweep-queue: ${c.oversize} messages were too large to check and are NOT selected (named above): look at them yourself\n`);
    const cpFile = checkpoint?.file;
    if (summary.checkpointError !== undefined) {
      io.stderr(`sweep-queue: the checkpoint was not saved (${summary.checkpointError}); a run with it will not continue from this one\n`);
    } else if (!summary.walked && cpFile !== undefined) {
      io.stderr(`sweep-queue: run again with --checkpoint ${cpFile} to continue\n`);
    }
    if (summary.retryPending > 0) {
      const how =
        cpFile === undefined
          ? 'sweep again once the cause is fixed (with --checkpoint, a second run checks just those)'
          : summary.walked && summary.checkpointError === undefined
            ? `run again with --checkpoint ${cpFile} to check just those`
            : 'the run that continues the sweep checks them again';
      io.stderr(`sweep-queue: ${summary.retryPending} files could not be checked and are NOT selected (named above); ${how}\n`);
    }
    if (summary.selectedInMaildrop > 0) io.stderr(`sweep-queue: ${summary.selectedInMaildrop} selected messages are in the maildrop queue: delete those with \`postsuper -d - maildrop\`\n`);
    if (summary.interrupted) return 128 + (io.signal?.reason === 'SIGTERM' ? 15 : 2);
    if (summary.checkpointError !== undefined || c.errors > 0 || c.oversize > 0 || summary.retryPending > 0) return EX_UNCHECKED;
    return summary.selectedThisRun + summary.replayed > 0 ? 1 : 0;
  } catch (e) {
    if (e instanceof SweepSetupError || e instanceof CheckpointError) {
      io.stderr(`postfix-milter-ts sweep-queue: ${e.message}\n`);
      return EX_UNCHECKED;
    }
    throw e;
  }
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

async function readConfig(file: string | undefined, clamd: readonly string[] | undefined): Promise<GatewayConfig | number> {
  const overrides = configOverrides({ clamd });
  try {
    return file ? await loadConfigFile(configSchema, file, overrides) : parseConfigText(configSchema, '', '(embedded defaults)', overrides);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`postfix-milter-ts: invalid configuration:\n${e.message}\n`);
      return EX_CONFIG;
    }
    throw e;
  }
}

/** Adds the options and action to `cmd` (from `program.command('sweep-queue')`, so it inherits the program's settings). */
export function configureSweepQueueCommand(cmd: Command): Command {
  return cmd
    .description(
      'find bad messages in the Postfix queue (read-only): prints the queue IDs the attachment/virus policy would refuse or the matchers select, ' +
        'for `| postsuper -d -`. Exit 0 none, 1 some selected, 2 some files not checked (see below)',
    )
    .option('-c, --config <file>', 'YAML config file (attachments, clamav, actions sections)')
    .addOption(new Option('--clamd <endpoint>', 'clamd endpoint, repeatable (env CLAMD_ENDPOINTS)').argParser(collect))
    .option('--queue-dir <dir>', "Postfix's queue directory (default: `postconf -h queue_directory`)")
    .option('--queues <list>', `comma-separated queues to read, in this order (default: ${QUEUE_NAMES.join(',')})`)
    .option('--checkpoint <file>', 'record the queue IDs done here (atomically): a run with the same file continues an interrupted sweep, or checks again just the files that could not be checked')
    .option('--checkpoint-every <n>', 'write the checkpoint every N files (default 1000)')
    .addOption(new Option('--match-header <spec>', "select messages with this header, e.g. 'Subject:/invoice [0-9]+/i' (repeatable)").argParser(collect))
    .addOption(new Option('--match-sender <regex>', 'select messages whose envelope sender matches, case-insensitive; ^$ is the null sender (repeatable)').argParser(collect))
    .addOption(new Option('--match-recipient <regex>', 'select messages with an envelope recipient that matches, case-insensitive (repeatable)').argParser(collect))
    .option('--virus-scan', 'ask clamd even when matchers are given')
    .option('--no-virus-scan', 'do not ask clamd (attachment policy and matchers only); the default when matchers are given')
    .option('--matchers-only', 'select by the matchers alone: no attachment or virus policy')
    .option('--concurrency <n>', 'queue files checked at once (default 4)')
    .option('--limit <n>', 'stop after N queue files (continue later with --checkpoint)')
    .option('--json', 'one JSON object per selected message (id, queue, sender, recipients, subject, reasons) instead of bare queue IDs')
    .option('-q, --quiet', 'no progress or notes on stderr (errors, files not checked and the summary still)')
    .addHelpText('after', EXIT_CODES)
    .action(async (opts: SweepQueueFlags & { config?: string; clamd?: string[] }) => {
      const config = await readConfig(opts.config, opts.clamd);
      if (typeof config === 'number') {
        process.exitCode = config;
        return;
      }
      const controller = new AbortController();
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (++signals > 1) process.exit(128 + (signal === 'SIGTERM' ? 15 : 2)); // a second signal: stop now
        process.stderr.write(`sweep-queue: ${signal}: stopping, saving the checkpoint (again to quit at once)\n`);
        controller.abort(signal);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        process.exitCode = await runSweepQueue(opts, config, {
          stdout: (t) => process.stdout.write(t),
          stderr: (t) => process.stderr.write(t),
          env: process.env,
          signal: controller.signal,
        });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
