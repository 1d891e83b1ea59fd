/**
 * Description of the machine and tool versions, for the results file.
 *
 * @module
 */
import { runCommand } from "./process.ts";

/** Facts about where a run happened. */
export interface MachineInfo {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  /** /proc/loadavg when the run started: other work skews the numbers. */
  readonly loadAtStart: string;
  /** /proc/loadavg when the run ended. */
  readonly loadAtEnd: string;
  readonly deno: string;
  readonly tools: readonly string[];
  /** `git describe`-style id of the checkout, or `(no commit)`. */
  readonly commit: string;
}

async function firstLine(
  command: string,
  args: readonly string[],
): Promise<string> {
  try {
    const result = await runCommand(command, args, { timeoutMs: 10_000 });
    const text = `${result.stdout}\n${result.stderr}`.trim();
    return text.split("\n")[0]?.trim() || `${command}: no output`;
  } catch {
    return `${command}: not found`;
  }
}

async function readOr(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

/** Reads the load average now, for {@link machineInfo}. */
export async function loadAverage(): Promise<string> {
  const text = await readOr("/proc/loadavg");
  return text.split(" ").slice(0, 3).join(" ") || "unknown";
}

/** Collects CPU, memory, kernel and tool versions. */
export async function machineInfo(
  repoDir: string,
  loadAtStart: string,
): Promise<MachineInfo> {
  const cpuinfo = await readOr("/proc/cpuinfo");
  const meminfo = await readOr("/proc/meminfo");
  const memKib = Number(meminfo.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? "0");
  const gitHead = await runCommand(
    "git",
    ["-C", repoDir, "rev-parse", "--short", "HEAD"],
    { timeoutMs: 10_000 },
  ).catch(() => null);
  const tools = await Promise.all([
    firstLine("nginx", ["-v"]),
    firstLine("go", ["version"]),
    firstLine("wrk", ["--version"]),
    firstLine("curl", ["--version"]),
  ]);
  return {
    cpus: navigator.hardwareConcurrency,
    cpuModel: cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ??
      "unknown",
    memoryGiB: memKib / 1024 / 1024,
    kernel: Deno.osRelease(),
    loadAtStart,
    loadAtEnd: await loadAverage(),
    deno: `deno ${Deno.version.deno} (v8 ${Deno.version.v8})`,
    tools,
    commit: gitHead !== null && gitHead.code === 0
      ? gitHead.stdout.trim()
      : "(no commit)",
  };
}
