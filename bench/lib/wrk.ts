/**
 * wrk runner and output parser.
 *
 * @module
 */
import { runCommand } from "./process.ts";

/** The numbers the bench uses from one wrk run. */
export interface WrkResult {
  readonly requests: number;
  readonly requestsPerSecond: number;
  /** Responses with status >= 400 (wrk's "Non-2xx or 3xx responses"). */
  readonly non2xx: number;
  /** connect + read + write + timeout socket errors. */
  readonly socketErrors: number;
}

/** Parses wrk's text summary. */
export function parseWrk(output: string): WrkResult {
  const num = (re: RegExp): number => Number(output.match(re)?.[1] ?? "0");
  const socket = output.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  const socketErrors = socket === null
    ? 0
    : socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  return {
    requests: num(/(\d+) requests in/),
    requestsPerSecond: num(/Requests\/sec:\s+([\d.]+)/),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors,
  };
}

/** Runs wrk against `url` for `seconds` with the given load shape. */
export async function runWrk(
  url: string,
  options: {
    readonly seconds: number;
    readonly threads: number;
    readonly connections: number;
    readonly headers: Readonly<Record<string, string>>;
  },
): Promise<WrkResult> {
  const args = [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--timeout",
    "5s",
  ];
  for (const [name, value] of Object.entries(options.headers)) {
    args.push("-H", `${name}: ${value}`);
  }
  args.push(url);
  const result = await runCommand("wrk", args, {
    timeoutMs: (options.seconds + 30) * 1000,
  });
  if (result.code !== 0) {
    throw new Error(`wrk failed (${result.code}): ${result.stderr.trim()}`);
  }
  const parsed = parseWrk(result.stdout);
  if (parsed.requests === 0) {
    throw new Error(`wrk made no requests: ${result.stdout.trim()}`);
  }
  return parsed;
}
