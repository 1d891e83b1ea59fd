/**
 * Starting, watching and stopping the processes of a bench run. Every
 * long-lived process goes through {@link startService}, which records it so
 * {@link stopAllServices} can end it (and its children) by pid.
 *
 * @module
 */
import { processTree } from "./procfs.ts";

/** A long-lived process started by the bench (server, proxy). */
export interface Service {
  /** Human-readable name used in messages. */
  readonly name: string;
  /** Pid of the process the bench spawned. */
  readonly pid: number;
  /** Resolves with the exit code once the process has ended. */
  readonly exited: Promise<number>;
  /** Whether the process has already ended. */
  hasExited(): boolean;
  /** The last few KiB of its stdout and stderr, for error messages. */
  output(): string;
  /** Ends the process and any children it left behind. */
  stop(): Promise<void>;
}

/** How to start a service. */
export interface ServiceSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  /** Environment; with `clearEnv` it is the whole environment. */
  readonly env?: Record<string, string>;
  readonly clearEnv?: boolean;
}

/** Result of a short-lived command. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

const OUTPUT_TAIL_BYTES = 8192;
const STOP_GRACE_MS = 5000;

const running = new Set<Service>();
const interruption = new AbortController();

/** Aborted by {@link interruptAll}; short-lived commands listen to it. */
export const interruptSignal: AbortSignal = interruption.signal;

/**
 * Ends every short-lived command in flight and refuses new services; used
 * on SIGINT/SIGTERM before {@link stopAllServices}.
 */
export function interruptAll(): void {
  interruption.abort();
}

async function drain(
  stream: ReadableStream<Uint8Array>,
  sink: (text: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream) {
      sink(decoder.decode(chunk, { stream: true }));
    }
  } catch {
    // The stream errors when the process is killed; the tail is kept.
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(
      stat.lastIndexOf(")") + 2,
      stat.lastIndexOf(")") + 3,
    );
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Starts a long-lived process and registers it for cleanup. */
export function startService(spec: ServiceSpec): Service {
  if (interruptSignal.aborted) throw new Error("the bench was interrupted");
  const child = new Deno.Command(spec.command, {
    args: [...spec.args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
    ...(spec.env === undefined ? {} : { env: spec.env }),
    ...(spec.clearEnv === undefined ? {} : { clearEnv: spec.clearEnv }),
  }).spawn();
  let tail = "";
  const append = (text: string): void => {
    tail = (tail + text).slice(-OUTPUT_TAIL_BYTES);
  };
  const drained = Promise.all([
    drain(child.stdout, append),
    drain(child.stderr, append),
  ]);
  let done = false;
  const exited = child.status.then(async (status) => {
    done = true;
    await drained;
    return status.code;
  });
  const service: Service = {
    name: spec.name,
    pid: child.pid,
    exited,
    hasExited: () => done,
    output: () => tail.trim(),
    stop: async (): Promise<void> => {
      running.delete(service);
      if (done) return;
      const family = processTree(child.pid);
      signal(child.pid, "SIGTERM");
      const ended = await Promise.race([
        exited.then(() => true),
        delay(STOP_GRACE_MS).then(() => false),
      ]);
      if (!ended) signal(child.pid, "SIGKILL");
      await exited;
      for (const pid of family) {
        if (pid !== child.pid && isAlive(pid)) signal(pid, "SIGKILL");
      }
    },
  };
  running.add(service);
  return service;
}

/** Stops every service that is still registered. */
export async function stopAllServices(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}

/**
 * Runs a command to completion with a time limit and collects its output.
 */
export async function runCommand(
  command: string,
  args: readonly string[],
  options: {
    readonly timeoutMs: number;
    readonly env?: Record<string, string>;
    readonly clearEnv?: boolean;
    readonly cwd?: string;
  },
): Promise<CommandResult> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.timeoutMs);
  try {
    const out = await new Deno.Command(command, {
      args: [...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.any([controller.signal, interruptSignal]),
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.clearEnv === undefined ? {} : { clearEnv: options.clearEnv }),
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    }).output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Whether an executable is found on PATH. */
export async function haveCommand(command: string): Promise<boolean> {
  const result = await runCommand("sh", ["-c", `command -v "$0"`, command], {
    timeoutMs: 5000,
  });
  return result.code === 0;
}

/**
 * Polls `url` until it answers with any HTTP status. Fails early when the
 * service exits, and after `timeoutMs`.
 */
export async function waitForHttp(
  url: string,
  service: Service,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    if (service.hasExited()) {
      const code = await service.exited;
      throw new Error(
        `${service.name} exited with code ${code} before answering: ` +
          (service.output() || "(no output)"),
      );
    }
    try {
      const res = await fetch(url, {
        method: "HEAD",
        signal: AbortSignal.timeout(2000),
      });
      await res.body?.cancel();
      return;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await delay(100);
  }
  throw new Error(
    `${service.name} did not answer ${url} within ${timeoutMs} ms ` +
      `(${lastError}): ${service.output() || "(no output)"}`,
  );
}
