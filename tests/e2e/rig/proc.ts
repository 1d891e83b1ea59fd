/**
 * Subprocess helpers for the e2e rig: long-running daemons with their
 * output captured to a log file, one-shot commands with a deadline, and
 * polling until something is ready.
 *
 * @module
 */

/** Result of a one-shot command. */
export interface RunResult {
  /** Exit code (or 124 when the deadline killed it). */
  code: number;
  /** Decoded standard output. */
  stdout: string;
  /** Raw standard output. */
  stdoutBytes: Uint8Array;
  /** Decoded standard error. */
  stderr: string;
  /** Wall time in milliseconds. */
  ms: number;
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Start from an empty environment (plus `env`). */
  clearEnv?: boolean;
  /** Working directory. */
  cwd?: string;
  /** Kill the command after this many milliseconds (default 120000). */
  timeoutMs?: number;
  /** Bytes fed to standard input. */
  stdin?: Uint8Array;
}

const decoder = new TextDecoder();

/**
 * Runs a command to completion with a deadline and returns its output.
 *
 * @param cmd executable name or path
 * @param args arguments
 * @param options environment, cwd, deadline
 * @returns exit code and decoded output
 */
export async function run(
  cmd: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? 120_000;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const command = new Deno.Command(cmd, {
      args,
      env: options.env ?? {},
      clearEnv: options.clearEnv ?? false,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    const child = command.spawn();
    if (options.stdin) {
      const writer = child.stdin.getWriter();
      await writer.write(options.stdin);
      await writer.close();
    }
    const out = await child.output();
    return {
      code: timedOut ? 124 : out.code,
      stdout: decoder.decode(out.stdout),
      stdoutBytes: out.stdout,
      stderr: decoder.decode(out.stderr) +
        (timedOut ? `\n[killed after ${timeoutMs} ms]` : ""),
      ms: performance.now() - started,
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs a command and throws (with its output) unless it exits 0.
 *
 * @param cmd executable name or path
 * @param args arguments
 * @param options environment, cwd, deadline
 * @returns the successful result
 */
export async function runOk(
  cmd: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${result.code}\n` +
        `stdout: ${tail(result.stdout)}\nstderr: ${tail(result.stderr)}`,
    );
  }
  return result;
}

/**
 * Returns the last `max` characters of a text, for error messages.
 *
 * @param text any text
 * @param max how many characters to keep
 * @returns the tail
 */
export function tail(text: string, max = 3000): string {
  return text.length <= max ? text : "..." + text.slice(text.length - max);
}

/** A background process whose output goes to a log file. */
export interface Daemon {
  /** Short name for messages. */
  readonly name: string;
  /** Process id. */
  readonly pid: number;
  /** Path of the log file holding stdout and stderr. */
  readonly logPath: string;
  /** Whether the process has exited. */
  exited(): boolean;
  /** Exit status once it has exited. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Reads the log file. */
  log(): Promise<string>;
  /**
   * Sends `signal` (default SIGTERM), waits up to `graceMs`, then SIGKILL.
   * Resolves once the process and its log pipes are done.
   */
  stop(signal?: Deno.Signal, graceMs?: number): Promise<Deno.CommandStatus>;
}

/** Options for {@linkcode spawnDaemon}. */
export interface DaemonOptions {
  /** Short name for messages. */
  name: string;
  /** Executable. */
  cmd: string;
  /** Arguments. */
  args: string[];
  /** Log file (created or appended). */
  logPath: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Start from an empty environment (plus `env`). */
  clearEnv?: boolean;
  /** Working directory. */
  cwd?: string;
}

/**
 * Starts a background process with stdout and stderr appended to a file.
 *
 * @param options what to run and where to log
 * @returns a handle to stop it and read its log
 */
export async function spawnDaemon(options: DaemonOptions): Promise<Daemon> {
  const logFile = await Deno.open(options.logPath, {
    create: true,
    append: true,
  });
  const child = new Deno.Command(options.cmd, {
    args: options.args,
    env: options.env ?? {},
    clearEnv: options.clearEnv ?? false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  // Plain writes (not FsFile.writable, which holds data back until close)
  // so the log can be read while the process runs.
  const pipes = Promise.all([
    appendStream(child.stdout, logFile),
    appendStream(child.stderr, logFile),
  ]).finally(() => logFile.close());
  let done = false;
  const status = child.status.then(async (s) => {
    done = true;
    await pipes;
    return s;
  });
  return {
    name: options.name,
    pid: child.pid,
    logPath: options.logPath,
    status,
    exited: () => done,
    log: () => Deno.readTextFile(options.logPath).catch(() => ""),
    async stop(signal = "SIGTERM", graceMs = 10_000) {
      if (!done) {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // already gone
          }
        }, graceMs);
        try {
          return await status;
        } finally {
          clearTimeout(timer);
        }
      }
      return await status;
    },
  };
}

async function appendStream(
  stream: ReadableStream<Uint8Array>,
  file: Deno.FsFile,
): Promise<void> {
  try {
    for await (const chunk of stream) {
      let offset = 0;
      while (offset < chunk.length) {
        offset += await file.write(chunk.subarray(offset));
      }
    }
  } catch {
    // the process went away; keep what was written
  }
}

/** Options for {@linkcode waitFor}. */
export interface WaitOptions {
  /** What is awaited, for the error message. */
  what: string;
  /** Give up after this many milliseconds (default 20000). */
  timeoutMs?: number;
  /** Poll interval (default 50 ms). */
  intervalMs?: number;
  /** Stop early when this daemon exits. */
  daemon?: Daemon;
}

/**
 * Polls `check` until it returns true; throws on timeout or when the
 * watched daemon exits first (with the daemon's log tail).
 *
 * @param check returns true when ready; exceptions count as not ready
 * @param options deadline and what to report
 */
export async function waitFor(
  check: () => Promise<boolean>,
  options: WaitOptions,
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let lastError = "";
  while (Date.now() < deadline) {
    if (options.daemon?.exited()) {
      const s = await options.daemon.status;
      throw new Error(
        `${options.daemon.name} exited (code ${s.code}) before ${options.what}` +
          `\n${tail(await options.daemon.log())}`,
      );
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = String(err);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
  const log = options.daemon ? "\n" + tail(await options.daemon.log()) : "";
  throw new Error(`timed out waiting for ${options.what} ${lastError}${log}`);
}

/**
 * Picks a free TCP port on 127.0.0.1 (bind to port 0, read it, release).
 *
 * @returns a port number that was free a moment ago
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * GETs a URL and reports its status, discarding the body (0 on error).
 *
 * @param url address to probe
 * @param init extra fetch options
 * @returns HTTP status or 0 when the connection failed
 */
export async function probe(
  url: string,
  init: RequestInit & { client?: Deno.HttpClient } = {},
): Promise<number> {
  try {
    const res = await fetch(url, {
      ...init,
      signal: AbortSignal.timeout(2000),
    });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}
