// Runs a command to completion and collects its output: the one child-process runner of the harnesses (postconf,
// postqueue, dpkg, apt-get, m4, saslpasswd2, …) and of tests that run the CLI. Shared so that every caller gets
// the same handling of timeouts, spawn errors and commands that exit before reading their input.
import { spawn } from 'node:child_process';

export interface CommandResult {
  /** The exit code; 128 when a signal ended the command, 1 when it ended without either. */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Written to the command's stdin, which is then closed (an empty stdin without it). */
  readonly input?: string;
  /** The command is killed (SIGKILL) and run() rejects after this long. Default 30 s. */
  readonly timeoutMs?: number;
  /** The whole environment of the command. Default: this process's. */
  readonly env?: NodeJS.ProcessEnv;
  /** Working directory. Default: this process's. */
  readonly cwd?: string;
  /** Run as this user and group (the caller must be root). */
  readonly user?: { readonly uid: number; readonly gid: number };
}

/** Runs a command; never rejects for a non-zero exit (the caller inspects `code`), only for a spawn error or the timeout. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      ...(options.user === undefined ? {} : { uid: options.user.uid, gid: options.user.gid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')}: no exit after ${timeoutMs} ms\nstdout:${stdout}\nstderr:${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => {
      // The command may exit before reading all input; its exit code tells what happened.
    });
    child.stdin.end(options.input ?? '');
  });
}
