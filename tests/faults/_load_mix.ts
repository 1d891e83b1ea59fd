/**
 * The load mix shared by the load test and the soak script: a fake ACR on
 * loopback holding a few images and blobs of several sizes (served
 * inline, so every byte streams through the proxy), `main.ts` in inject
 * mode in front of it, and N concurrent fetch loops that verify every
 * body against its digest.
 *
 * @module
 */

import { FakeAcr } from "../../contrib/demo/fake_acr.ts";
import { digestOf } from "../_fixtures.ts";
import { type ProxyProcess, startProxy, writeFakeAz } from "../_process.ts";
import { commandLine, fdCount, rssKib } from "./_procfs.ts";
import { filler } from "./_rig.ts";

/** One thing the clients pull. */
export interface LoadTarget {
  /** Path on the proxy. */
  path: string;
  /** The digest the body must have. */
  digest: string;
  /** Relative share of requests. */
  weight: number;
  /** Label for the summary. */
  kind: string;
}

/** The upstream and proxy for a load run. */
export interface LoadRig extends AsyncDisposable {
  /** The fake ACR. */
  acr: FakeAcr;
  /** The proxy subprocess. */
  proxy: ProxyProcess;
  /** Pid of the process running `main.ts`. */
  pid: number;
  /** What to pull. */
  targets: LoadTarget[];
  /**
   * Stops the upstream server (closing the proxy's pooled upstream
   * connections), so descriptors can be counted at rest.
   *
   * @returns When it has stopped.
   */
  stopUpstream(): Promise<void>;
}

const REPOS = 5;
const BLOB_SIZES: [number, number][] = [
  [16 * 1024, 15],
  [256 * 1024, 8],
  [1024 * 1024, 2],
];

/**
 * Starts a token-authenticated fake ACR (Deno.serve on 127.0.0.1, blobs
 * inline) and `main.ts` in inject mode with a fake `az`.
 *
 * @param extraArgs Extra proxy flags.
 * @returns The rig.
 */
export async function startLoadRig(extraArgs: string[] = []): Promise<LoadRig> {
  const dir = await Deno.makeTempDir({ prefix: "acr-load-" });
  const acr = new FakeAcr({
    acceptEntraToken: (t) => t === "fake-entra-token",
  });
  const targets: LoadTarget[] = [];
  for (let i = 0; i < REPOS; i++) {
    const image = await acr.pushSampleImage(`hub/library/app${i}`, "latest");
    const base = `/v2/library/app${i}`;
    targets.push(
      {
        kind: "manifest",
        path: `${base}/manifests/latest`,
        digest: image.manifest,
        weight: 8,
      },
      {
        kind: "config",
        path: `${base}/blobs/${image.config}`,
        digest: image.config,
        weight: 3,
      },
    );
    for (const [n, [size, weight]] of BLOB_SIZES.entries()) {
      const digest = await acr.putBlob(filler(size, 100 + i * 10 + n));
      targets.push({
        kind: `blob ${size / 1024} KiB`,
        path: `${base}/blobs/${digest}`,
        digest,
        weight,
      });
    }
  }

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen(): void {} },
    acr.handle,
  );
  // The fake remembers every request; forget them so long runs stay flat.
  const trim = setInterval(() => acr.seen.splice(0), 1000);
  const upstream = `http://127.0.0.1:${server.addr.port}`;
  let proxy: ProxyProcess;
  try {
    proxy = await startProxy(
      [
        "--upstream-domain",
        upstream,
        "--upstream-prefix",
        "hub",
        "--auth-mode",
        "inject",
        "--log-level",
        "warn",
        ...extraArgs,
      ],
      { azPath: await writeFakeAz(dir) },
    );
  } catch (e) {
    clearInterval(trim);
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  const pid = proxy.child.pid;
  if (!commandLine(pid).some((a) => a.endsWith("/main.ts"))) {
    throw new Error(`pid ${pid} is not the process running main.ts`);
  }
  let upstreamStopped = false;
  const stopUpstream = async (): Promise<void> => {
    if (upstreamStopped) return;
    upstreamStopped = true;
    clearInterval(trim);
    await server.shutdown();
  };
  return {
    acr,
    proxy,
    pid,
    targets,
    stopUpstream,
    async [Symbol.asyncDispose](): Promise<void> {
      await proxy.stop("SIGTERM");
      await stopUpstream();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Counters of a load run. */
export interface LoadStats {
  /** Responses with status 200 and the right digest. */
  ok: number;
  /** Requests that failed (network error, wrong status, short body). */
  failed: number;
  /** Bodies that arrived whole but with the wrong digest. */
  corrupted: number;
  /** Body bytes verified. */
  bytes: number;
  /** Failure reasons and how often. */
  errors: Map<string, number>;
  /** Completed requests by target kind. */
  byKind: Map<string, number>;
  /** Latency histogram, 1 ms buckets (last bucket: 10 s and more). */
  latencyMs: Uint32Array;
  /** Wall time of the run, ms. */
  elapsedMs: number;
}

/** Options for {@link runLoad}. */
export interface LoadOptions {
  /** The proxy's base URL. */
  baseUrl: string;
  /** What to pull. */
  targets: LoadTarget[];
  /** Concurrent fetch loops. */
  clients: number;
  /** How long to run, ms. */
  durationMs: number;
  /** The HTTP client to use. */
  client?: Deno.HttpClient;
  /** Called about every second with the stats so far. */
  onSecond?: (stats: LoadStats) => void;
}

/**
 * Runs `clients` concurrent fetch loops for `durationMs`, each pulling a
 * weighted random target and verifying status, length and digest.
 *
 * @param options Where, what, how many and how long.
 * @returns The counters.
 */
export async function runLoad(options: LoadOptions): Promise<LoadStats> {
  const stats: LoadStats = {
    ok: 0,
    failed: 0,
    corrupted: 0,
    bytes: 0,
    errors: new Map(),
    byKind: new Map(),
    latencyMs: new Uint32Array(10_001),
    elapsedMs: 0,
  };
  const total = options.targets.reduce((n, t) => n + t.weight, 0);
  const pick = (): LoadTarget => {
    let r = Math.random() * total;
    for (const t of options.targets) {
      r -= t.weight;
      if (r < 0) return t;
    }
    return options.targets.at(-1)!;
  };
  const fail = (why: string): void => {
    stats.failed++;
    stats.errors.set(why, (stats.errors.get(why) ?? 0) + 1);
  };
  const started = performance.now();
  const end = started + options.durationMs;
  const ticker = options.onSecond
    ? setInterval(() => options.onSecond!(stats), 1000)
    : undefined;

  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const target = pick();
      const t0 = performance.now();
      try {
        const res = await fetch(options.baseUrl + target.path, {
          ...(options.client ? { client: options.client } : {}),
        });
        const body = new Uint8Array(await res.arrayBuffer());
        const length = res.headers.get("content-length");
        if (res.status !== 200) {
          fail(`status ${res.status}`);
        } else if (length !== null && Number(length) !== body.length) {
          fail("short body");
        } else if ((await digestOf(body)) !== target.digest) {
          stats.corrupted++;
        } else {
          stats.ok++;
          stats.bytes += body.length;
          stats.byKind.set(
            target.kind,
            (stats.byKind.get(target.kind) ?? 0) + 1,
          );
        }
      } catch (e) {
        fail(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
      }
      const ms = Math.min(10_000, Math.floor(performance.now() - t0));
      stats.latencyMs[ms]!++;
    }
  };
  try {
    await Promise.all(Array.from({ length: options.clients }, loop));
  } finally {
    clearInterval(ticker);
  }
  stats.elapsedMs = performance.now() - started;
  return stats;
}

/**
 * Reads a percentile from a latency histogram.
 *
 * @param hist The 1 ms histogram.
 * @param p The percentile, 0 to 100.
 * @returns Milliseconds.
 */
export function percentile(hist: Uint32Array, p: number): number {
  const count = hist.reduce((n, c) => n + c, 0);
  let seen = 0;
  for (let ms = 0; ms < hist.length; ms++) {
    seen += hist[ms]!;
    if (seen >= (count * p) / 100) return ms;
  }
  return hist.length - 1;
}

/** One resource sample of the proxy process. */
export interface Sample {
  /** Seconds since sampling began. */
  t: number;
  /** VmRSS, KiB. */
  rssKib: number;
  /** Open descriptors. */
  fds: number;
}

/**
 * Samples RSS and descriptor count of a process every `everyMs`.
 *
 * @param pid The process.
 * @param everyMs The interval.
 * @returns The growing sample list and a function that stops sampling.
 */
export function sampleProcess(
  pid: number,
  everyMs = 1000,
): { samples: Sample[]; stop(): void } {
  const samples: Sample[] = [];
  const t0 = performance.now();
  const take = (): void => {
    try {
      samples.push({
        t: (performance.now() - t0) / 1000,
        rssKib: rssKib(pid),
        fds: fdCount(pid),
      });
    } catch {
      // The process is gone.
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    stop(): void {
      clearInterval(timer);
    },
  };
}

/**
 * Mean RSS over a window of samples.
 *
 * @param samples The samples.
 * @param from Start, seconds.
 * @param to End, seconds.
 * @returns KiB.
 */
export function meanRss(samples: Sample[], from: number, to: number): number {
  const window = samples.filter((s) => s.t >= from && s.t < to);
  return window.reduce((n, s) => n + s.rssKib, 0) / (window.length || 1);
}

/**
 * The "memory flat after warm-up" rule of the load test and the soak:
 * the mean RSS of the last third of the run is at most 25 % plus 32 MiB
 * above that of the first third after warm-up. A short run cannot tell a
 * slow leak from a heap still settling; the soak's trend line can.
 *
 * @param earlyKib Mean RSS of the first third after warm-up.
 * @param lateKib Mean RSS of the last third.
 * @returns Whether memory counts as flat.
 */
export function memoryFlat(earlyKib: number, lateKib: number): boolean {
  return lateKib <= earlyKib * 1.25 + 32 * 1024;
}
