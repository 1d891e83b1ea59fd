/**
 * Command-line options of the benchmark and the sizes each mode uses.
 *
 * @module
 */

/** Contender ids accepted by `--only`. */
export const CONTENDER_IDS = [
  "direct",
  "nginx",
  "nginx-default",
  "go",
  "naive",
  "acr",
  "acr-streaming",
  "acr-native",
  "acr-parallel",
  "acr-parallel-native",
] as const;

/** One of {@link CONTENDER_IDS}. */
export type ContenderId = typeof CONTENDER_IDS[number];

/** Everything a run needs to know about sizes, durations and selection. */
export interface BenchOptions {
  /** `short` for CI (whole run under 2 minutes), `full` otherwise. */
  readonly mode: "short" | "full";
  /** Size of the single large blob in bytes. */
  readonly largeBlobBytes: number;
  /** Size of each blob of the parallel workload in bytes. */
  readonly parallelBlobBytes: number;
  /** Number of concurrent downloads in the parallel workload. */
  readonly parallelStreams: number;
  /**
   * Rounds of the blob workloads. Each round runs every contender once, so
   * load from elsewhere on the machine spreads over all of them; medians are
   * reported.
   */
  readonly rounds: number;
  /** wrk duration for the manifest workload, seconds. */
  readonly wrkSeconds: number;
  /** wrk warm-up duration before the measured run, seconds. */
  readonly warmupSeconds: number;
  /** wrk threads. */
  readonly wrkThreads: number;
  /** wrk connections. */
  readonly wrkConnections: number;
  /** Contenders to run; all by default. */
  readonly only: readonly ContenderId[];
}

const MIB = 1024 * 1024;

const SHORT = {
  mode: "short",
  largeBlobBytes: 64 * MIB,
  parallelBlobBytes: 16 * MIB,
  parallelStreams: 8,
  rounds: 3,
  wrkSeconds: 3,
  warmupSeconds: 1,
  wrkThreads: 2,
  wrkConnections: 64,
} as const;

const FULL = {
  mode: "full",
  largeBlobBytes: 1024 * MIB,
  parallelBlobBytes: 256 * MIB,
  parallelStreams: 8,
  rounds: 5,
  wrkSeconds: 10,
  warmupSeconds: 2,
  wrkThreads: 2,
  wrkConnections: 64,
} as const;

/** Usage text printed by `--help`. */
export const USAGE: string = `usage: deno task bench [--short] [--only ID,ID...]

  --short        CI sizes: 64 MiB blob, 8 x 16 MiB, wrk 3 s (under 2 minutes)
  --only IDS     run only these contenders (${CONTENDER_IDS.join(", ")})
  --help         this text

Default (full): 1 GiB blob, 8 x 256 MiB, wrk 10 s (under 10 minutes on 2 cores).
Results go to bench/results/<date>-<short|full>.md and bench/results/latest.md.`;

/** Raised for a command line the bench does not understand. */
export class UsageError extends Error {
  /** Creates the error with a one-sentence message. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function parseOnly(value: string | undefined): ContenderId[] {
  if (value === undefined || value === "") {
    throw new UsageError("--only needs a comma-separated list of ids");
  }
  const ids = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const id of ids) {
    if (!(CONTENDER_IDS as readonly string[]).includes(id)) {
      throw new UsageError(`unknown contender "${id}"`);
    }
  }
  return ids as ContenderId[];
}

/**
 * Parses the bench command line.
 *
 * @returns the options, or `null` when `--help` was asked for
 * @throws {UsageError} on an unknown flag or a bad `--only` list
 */
export function parseOptions(args: readonly string[]): BenchOptions | null {
  let short = false;
  let only: ContenderId[] = [...CONTENDER_IDS];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") return null;
    if (arg === "--short") short = true;
    else if (arg === "--full") short = false;
    else if (arg === "--only") only = parseOnly(args[++i]);
    else if (arg?.startsWith("--only=")) only = parseOnly(arg.slice(7));
    else throw new UsageError(`unknown argument "${arg}"`);
  }
  return { ...(short ? SHORT : FULL), only };
}
