/**
 * curl as the HTTP client: raw bytes (no decompression, no redirects) for
 * the correctness gate, and `-o /dev/null` downloads for throughput.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { interruptSignal, runCommand } from "./process.ts";

/** What a client saw for one request. */
export interface Snapshot {
  readonly status: number;
  /** Lower-cased header names, last value wins. */
  readonly headers: ReadonlyMap<string, string>;
  /** `sha256:<hex>` of the body bytes exactly as received. */
  readonly digest: string;
  readonly bodyBytes: number;
}

/** Result of one `-o /dev/null` download. */
export interface Download {
  readonly status: number;
  readonly bytes: number;
  /** curl's `speed_download`, bytes per second. */
  readonly bytesPerSecond: number;
}

const MAX_SECONDS = 600;

function parseHeaderDump(dump: string): {
  status: number;
  headers: Map<string, string>;
} {
  // With redirects or 1xx there may be several blocks; keep the last.
  const blocks = dump.split(/\r?\n\r?\n/).filter((b) => b.trim() !== "");
  const lines = (blocks.at(-1) ?? "").split(/\r?\n/);
  const status = Number(lines[0]?.split(" ")[1] ?? "0");
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(
        line.slice(0, colon).trim().toLowerCase(),
        line.slice(colon + 1).trim(),
      );
    }
  }
  return { status, headers };
}

/**
 * Sends one GET or HEAD with curl and records status, headers and the
 * sha256 of the raw body.
 */
export async function snapshot(
  url: string,
  method: "GET" | "HEAD",
  requestHeaders: Readonly<Record<string, string>>,
  scratchDir: string,
): Promise<Snapshot> {
  const headerFile = await Deno.makeTempFile({ dir: scratchDir });
  const args = ["-sS", "--max-time", String(MAX_SECONDS), "-D", headerFile];
  for (const [name, value] of Object.entries(requestHeaders)) {
    args.push("-H", `${name}: ${value}`);
  }
  args.push(...(method === "HEAD" ? ["--head", "-o", "/dev/null"] : []), url);
  try {
    const child = new Deno.Command("curl", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: interruptSignal,
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const hash = createHash("sha256");
    let bodyBytes = 0;
    for await (const chunk of child.stdout) {
      hash.update(chunk);
      bodyBytes += chunk.length;
    }
    const { code } = await child.status;
    if (code !== 0) {
      const message = (await stderr).trim();
      throw new Error(`curl ${method} ${url} failed (${code}): ${message}`);
    }
    const { status, headers } = parseHeaderDump(
      await Deno.readTextFile(headerFile),
    );
    return {
      status,
      headers,
      digest: `sha256:${hash.digest("hex")}`,
      bodyBytes,
    };
  } finally {
    await Deno.remove(headerFile).catch(() => {});
  }
}

/** Downloads `url` to /dev/null and returns curl's own measurements. */
export async function download(
  url: string,
  requestHeaders: Readonly<Record<string, string>>,
): Promise<Download> {
  const headerArgs = Object.entries(requestHeaders).flatMap((
    [name, value],
  ) => ["-H", `${name}: ${value}`]);
  const result = await runCommand("curl", [
    ...headerArgs,
    "-sS",
    "-o",
    "/dev/null",
    "--max-time",
    String(MAX_SECONDS),
    "-w",
    "%{http_code} %{size_download} %{speed_download}",
    url,
  ], { timeoutMs: (MAX_SECONDS + 10) * 1000 });
  if (result.code !== 0) {
    throw new Error(
      `curl ${url} failed (${result.code}): ${result.stderr.trim()}`,
    );
  }
  const [status, bytes, speed] = result.stdout.trim().split(" ").map(Number);
  return {
    status: status ?? 0,
    bytes: bytes ?? 0,
    bytesPerSecond: speed ?? 0,
  };
}
