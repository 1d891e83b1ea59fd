/**
 * The measured workloads, each driven by external load generators (curl,
 * wrk) while the proxy's process tree is watched through /proc. Blob
 * workloads measure one run at a time, so rounds can interleave contenders.
 *
 * @module
 */
import type { Endpoint } from "./contenders.ts";
import { download } from "./curl.ts";
import { type Fixtures, type ServedFile, TAG } from "./fixtures.ts";
import { GATE_REQUEST_HEADERS } from "./gate.ts";
import type { BenchOptions } from "./options.ts";
import { cpuSeconds, processTree, rssBytes, RssSampler } from "./procfs.ts";
import { runWrk } from "./wrk.ts";

/** Bytes in a megabyte as curl and the report use it (decimal). */
export const MB = 1e6;

/** Bytes in a GiB. */
export const GIB: number = 1024 ** 3;

const RSS_SAMPLE_MS = 50;

/** One large blob, one curl at a time, over all rounds. */
export interface SingleBlobResult {
  /** Median of the runs, MB/s. */
  readonly mbPerSecond: number;
  readonly runs: readonly number[];
}

/** One run of the parallel workload. */
export interface ParallelRun {
  /** Total bytes / wall time, MB/s. */
  readonly mbPerSecond: number;
  readonly bytes: number;
  /** Proxy CPU seconds spent; `null` without a proxy. */
  readonly cpuSeconds: number | null;
  /** Highest summed VmRSS of the proxy tree; `null` without a proxy. */
  readonly peakRssBytes: number | null;
  /** Summed VmRSS of the proxy tree just before; `null` without a proxy. */
  readonly rssBeforeBytes: number | null;
}

/** Several blobs at once, one curl each, over all rounds. */
export interface ParallelResult {
  /** Median of the runs, MB/s. */
  readonly mbPerSecond: number;
  readonly runs: readonly number[];
  /** Proxy CPU seconds per GiB streamed; `null` without a proxy. */
  readonly cpuSecondsPerGiB: number | null;
  /** Highest summed VmRSS of the proxy tree in any run. */
  readonly peakRssBytes: number | null;
  /** Summed VmRSS of the proxy tree before the first run. */
  readonly rssBeforeBytes: number | null;
}

/** Manifest GETs under wrk. */
export interface ManifestResult {
  readonly requestsPerSecond: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly socketErrors: number;
  /** Proxy CPU microseconds per request; `null` without a proxy. */
  readonly cpuMicrosPerRequest: number | null;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? sorted[mid] as number
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function proxyPids(endpoint: Endpoint): number[] | null {
  return endpoint.service === null ? null : processTree(endpoint.service.pid);
}

async function checkedDownload(
  endpoint: Endpoint,
  blob: ServedFile,
): Promise<number> {
  const result = await download(
    `${endpoint.origin}${endpoint.repoPath}/blobs/${blob.digest}`,
    endpoint.clientHeaders,
  );
  if (result.status !== 200 || result.bytes !== blob.size) {
    throw new Error(
      `download of ${blob.digest} gave status ${result.status}, ` +
        `${result.bytes} of ${blob.size} bytes`,
    );
  }
  return result.bytesPerSecond;
}

/** Downloads the large blob once; curl's average speed in MB/s. */
export async function singleBlobRun(
  endpoint: Endpoint,
  fixtures: Fixtures,
): Promise<number> {
  return await checkedDownload(endpoint, fixtures.large) / MB;
}

/**
 * Downloads every parallel blob at once, recording wall-clock throughput,
 * proxy CPU and peak RSS.
 */
export async function parallelRun(
  endpoint: Endpoint,
  fixtures: Fixtures,
): Promise<ParallelRun> {
  const pids = proxyPids(endpoint);
  const rssBeforeBytes = pids === null ? null : rssBytes(pids);
  const sampler = pids === null ? null : new RssSampler(pids, RSS_SAMPLE_MS);
  const cpuBefore = pids === null ? 0 : cpuSeconds(pids);
  const started = performance.now();
  let peakRssBytes: number | null = null;
  try {
    await Promise.all(
      fixtures.parallel.map((b) => checkedDownload(endpoint, b)),
    );
  } finally {
    peakRssBytes = sampler?.stop() ?? null;
  }
  const seconds = (performance.now() - started) / 1000;
  const bytes = fixtures.parallel.reduce((sum, b) => sum + b.size, 0);
  return {
    mbPerSecond: bytes / seconds / MB,
    bytes,
    cpuSeconds: pids === null ? null : cpuSeconds(pids) - cpuBefore,
    peakRssBytes,
    rssBeforeBytes,
  };
}

/** Median of single-blob runs. */
export function summarizeSingle(runs: readonly number[]): SingleBlobResult {
  return { mbPerSecond: median(runs), runs };
}

/** Median throughput, CPU per GiB and peak RSS over parallel runs. */
export function summarizeParallel(
  runs: readonly ParallelRun[],
): ParallelResult {
  const bytes = runs.reduce((sum, r) => sum + r.bytes, 0);
  const cpu = runs.every((r) => r.cpuSeconds !== null)
    ? runs.reduce((sum, r) => sum + (r.cpuSeconds ?? 0), 0)
    : null;
  const peaks = runs.map((r) => r.peakRssBytes).filter((v) => v !== null);
  return {
    mbPerSecond: median(runs.map((r) => r.mbPerSecond)),
    runs: runs.map((r) => r.mbPerSecond),
    cpuSecondsPerGiB: cpu === null ? null : cpu / (bytes / GIB),
    peakRssBytes: peaks.length === 0 ? null : Math.max(...peaks),
    rssBeforeBytes: runs[0]?.rssBeforeBytes ?? null,
  };
}

/**
 * Warms up, then runs wrk on the manifest (by tag unless `reference` names
 * its digest) and reads the proxy's CPU.
 */
export async function measureManifest(
  endpoint: Endpoint,
  options: BenchOptions,
  reference: string = TAG,
): Promise<ManifestResult> {
  const url = `${endpoint.origin}${endpoint.repoPath}/manifests/${reference}`;
  const shape = {
    threads: options.wrkThreads,
    connections: options.wrkConnections,
    headers: {
      Accept: GATE_REQUEST_HEADERS["Accept"] ?? "*/*",
      ...endpoint.clientHeaders,
    },
  };
  await runWrk(url, { ...shape, seconds: options.warmupSeconds });
  const pids = proxyPids(endpoint);
  const cpuBefore = pids === null ? 0 : cpuSeconds(pids);
  const result = await runWrk(url, { ...shape, seconds: options.wrkSeconds });
  const cpuMicrosPerRequest = pids === null
    ? null
    : (cpuSeconds(pids) - cpuBefore) * 1e6 / result.requests;
  return { ...result, cpuMicrosPerRequest };
}
