/**
 * What the fault and load suites read about a running proxy from `/proc`:
 * resident memory and open file descriptors.
 *
 * @module
 */

/**
 * Resident set size of a process.
 *
 * @param pid The process.
 * @returns VmRSS in KiB, or 0 once the process is gone.
 */
export function rssKib(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Counts a process's open file descriptors.
 *
 * @param pid The process.
 * @returns How many entries `/proc/<pid>/fd` holds.
 */
export function fdCount(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

/**
 * Counts a process's open sockets.
 *
 * @param pid The process.
 * @returns How many of its descriptors are sockets.
 */
export function socketCount(pid: number): number {
  let n = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      if (
        Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`).startsWith("socket:")
      ) n++;
    } catch {
      // Closed while listing.
    }
  }
  return n;
}

/**
 * Reads a process's command line.
 *
 * @param pid The process.
 * @returns Its arguments.
 */
export function commandLine(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0")
    .filter((s) => s !== "");
}
