/**
 * Linux /proc readers: process trees, CPU time and resident memory.
 *
 * @module
 */

/** Clock ticks per second for utime/stime (USER_HZ, 100 on Linux/x86-64). */
export const CLOCK_TICKS_PER_SECOND = 100;

interface StatFields {
  readonly ppid: number;
  readonly utime: number;
  readonly stime: number;
}

function readStat(pid: number): StatFields | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // Fields after "pid (comm) ": state ppid ... utime is field 14, stime 15.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    ppid: Number(rest[1]),
    utime: Number(rest[11]),
    stime: Number(rest[12]),
  };
}

/** Pid of `root` followed by all its live descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat === null) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(pid);
    children.set(stat.ppid, list);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** User plus system CPU seconds consumed so far by the given processes. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat !== null) ticks += stat.utime + stat.stime;
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}

function statusKib(pid: number, field: string): number {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return 0;
  }
  const match = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return match?.[1] === undefined ? 0 : Number(match[1]);
}

/** Sum of VmRSS of the given processes, bytes. */
export function rssBytes(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + statusKib(pid, "VmRSS") * 1024, 0);
}

/** Samples the summed RSS of a process set at a fixed interval. */
export class RssSampler {
  #peak = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #pids: readonly number[];

  /** Starts sampling `pids` every `intervalMs` milliseconds. */
  constructor(pids: readonly number[], intervalMs: number) {
    this.#pids = pids;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }

  #sample(): void {
    this.#peak = Math.max(this.#peak, rssBytes(this.#pids));
  }

  /** Stops sampling and returns the highest sum seen, bytes. */
  stop(): number {
    this.#sample();
    clearInterval(this.#timer);
    this.#timer = undefined;
    return this.#peak;
  }
}
