/**
 * Soak: the load test's mix for a chosen number of minutes, with a
 * progress line per minute and a summary at the end.
 *
 * ```sh
 * deno run --allow-all tests/faults/soak.ts --minutes 10 [--clients 500]
 * ```
 *
 * `--minutes` is required (more than 0, at most 120). The run stops by
 * itself; a watchdog ends it two minutes after the planned end whatever
 * happens. Exit code 0 when every response was whole and verified, memory
 * stayed flat after warm-up and no descriptor was left open; 1 otherwise;
 * 2 on bad arguments.
 *
 * @module
 */

import {
  type LoadStats,
  meanRss,
  memoryFlat,
  percentile,
  runLoad,
  sampleProcess,
  startLoadRig,
} from "./_load_mix.ts";
import { fdCount, rssKib } from "./_procfs.ts";
import { delay } from "./misbehaving_upstream.ts";

const MAX_MINUTES = 120;
const MAX_CLIENTS = 2000;
const WARMUP_SECONDS = 30;
const FD_SLACK = 10;

/** Parsed command line. */
export interface SoakArgs {
  /** How long to run. */
  minutes: number;
  /** Concurrent fetch loops. */
  clients: number;
}

/**
 * Reads `--minutes N` and `--clients C`.
 *
 * @param args The arguments.
 * @returns The settings.
 * @throws {RangeError} When an argument is missing, unknown or out of range.
 */
export function parseSoakArgs(args: readonly string[]): SoakArgs {
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const m = /^--?(minutes|clients)(?:=(.*))?$/.exec(args[i]!);
    if (!m) throw new RangeError(`unknown argument ${JSON.stringify(args[i])}`);
    const value = m[2] ?? args[++i];
    if (value === undefined) throw new RangeError(`--${m[1]} needs a value`);
    values.set(m[1]!, value);
  }
  const minutes = Number(values.get("minutes"));
  if (!values.has("minutes")) throw new RangeError("--minutes is required");
  if (!(minutes > 0 && minutes <= MAX_MINUTES)) {
    throw new RangeError(
      `--minutes must be more than 0 and at most ${MAX_MINUTES}`,
    );
  }
  const clients = Number(values.get("clients") ?? 500);
  if (!(Number.isInteger(clients) && clients > 0 && clients <= MAX_CLIENTS)) {
    throw new RangeError(
      `--clients must be an integer from 1 to ${MAX_CLIENTS}`,
    );
  }
  return { minutes, clients };
}

// deno-lint-ignore no-console
const say = (line: string): void => console.log(line);

/** Kills the proxy subprocess when the run must end early. */
let killProxy: (() => void) | undefined;

async function soak({ minutes, clients }: SoakArgs): Promise<number> {
  const durationMs = minutes * 60_000;
  await using rig = await startLoadRig();
  killProxy = (): void => {
    try {
      rig.proxy.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  };
  const fdsIdle = fdCount(rig.pid);
  const rssIdle = rssKib(rig.pid);
  say(
    `soak: ${clients} clients for ${minutes} min against ${rig.proxy.url} ` +
      `(proxy pid ${rig.pid}, idle ${mib(rssIdle)} MiB RSS, ${fdsIdle} fds)`,
  );

  const client = Deno.createHttpClient({});
  const sampler = sampleProcess(rig.pid, 5000);
  let last = { at: performance.now(), done: 0 };
  let seconds = 0;
  const progress = (stats: LoadStats): void => {
    if (++seconds % 60 !== 0) return;
    const now = performance.now();
    const done = stats.ok + stats.failed + stats.corrupted;
    const rps = (done - last.done) / ((now - last.at) / 1000);
    last = { at: now, done };
    say(
      `  ${seconds / 60} min: ${Math.round(rps)} req/s, ${done} requests, ` +
        `${stats.failed} failed, ${stats.corrupted} corrupted, ` +
        `RSS ${mib(rssKib(rig.pid))} MiB, ${fdCount(rig.pid)} fds`,
    );
  };

  let stats: LoadStats;
  try {
    stats = await runLoad({
      baseUrl: rig.proxy.url,
      targets: rig.targets,
      clients,
      durationMs,
      client,
      onSecond: progress,
    });
  } finally {
    sampler.stop();
    client.close();
  }
  await rig.stopUpstream();
  let fdsAfter = fdCount(rig.pid);
  for (let i = 0; i < 50 && fdsAfter > fdsIdle + FD_SLACK; i++) {
    await delay(100);
    fdsAfter = fdCount(rig.pid);
  }

  const samples = sampler.samples;
  const end = samples.at(-1)?.t ?? 0;
  const warm = Math.min(WARMUP_SECONDS, end / 4);
  const third = (end - warm) / 3;
  const rssEarly = meanRss(samples, warm, warm + third);
  const rssLate = meanRss(samples, warm + 2 * third, end + 1);
  const slope = rssSlopeMibPerHour(samples.filter((s) => s.t >= warm));
  const requests = stats.ok + stats.failed + stats.corrupted;
  const secondsRun = stats.elapsedMs / 1000;
  const flat = memoryFlat(rssEarly, rssLate);
  const fdsFlat = fdsAfter <= fdsIdle + FD_SLACK;
  const clean = stats.failed === 0 && stats.corrupted === 0;

  say("soak summary:");
  say(`  duration        ${secondsRun.toFixed(0)} s, ${clients} clients`);
  say(
    `  requests        ${requests} (${Math.round(requests / secondsRun)}/s, ` +
      `${(stats.bytes / 1048576 / secondsRun).toFixed(1)} MiB/s verified)`,
  );
  say(`  ok/failed/bad   ${stats.ok}/${stats.failed}/${stats.corrupted}`);
  say(
    `  latency         p50 ${percentile(stats.latencyMs, 50)} ms, ` +
      `p99 ${percentile(stats.latencyMs, 99)} ms, ` +
      `max ${percentile(stats.latencyMs, 100)} ms`,
  );
  say(
    `  RSS             idle ${mib(rssIdle)}, after warm-up ${mib(rssEarly)}, ` +
      `end ${mib(rssLate)}, peak ${
        mib(Math.max(...samples.map((s) => s.rssKib)))
      } MiB; trend ${slope.toFixed(1)} MiB/h`,
  );
  say(
    `  descriptors     idle ${fdsIdle}, peak ${
      Math.max(...samples.map((s) => s.fds))
    }, after ${fdsAfter}`,
  );
  if (stats.errors.size) {
    say(
      `  errors          ${JSON.stringify(Object.fromEntries(stats.errors))}`,
    );
  }
  say(
    `  verdict         ${clean ? "every response verified" : "FAILURES"}; ` +
      `memory ${flat ? "flat" : "GREW"}; ` +
      `descriptors ${fdsFlat ? "released" : "LEAKED"}`,
  );
  return clean && flat && fdsFlat ? 0 : 1;
}

function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}

function rssSlopeMibPerHour(samples: { t: number; rssKib: number }[]): number {
  if (samples.length < 2) return 0;
  const n = samples.length;
  const mt = samples.reduce((a, s) => a + s.t, 0) / n;
  const mr = samples.reduce((a, s) => a + s.rssKib, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.t - mt) * (s.rssKib - mr);
    den += (s.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 3600 / 1024;
}

if (import.meta.main) {
  let args: SoakArgs;
  try {
    args = parseSoakArgs(Deno.args);
  } catch (e) {
    // deno-lint-ignore no-console
    console.error(`soak: ${e instanceof Error ? e.message : e}`);
    Deno.exit(2);
  }
  const abandon = (why: string): void => {
    killProxy?.();
    // deno-lint-ignore no-console
    console.error(`soak: ${why}`);
    Deno.exit(1);
  };
  const watchdog = setTimeout(
    () => abandon("watchdog fired; the run overran by two minutes"),
    (args.minutes + 2) * 60_000,
  );
  Deno.unrefTimer(watchdog);
  Deno.addSignalListener("SIGINT", () => abandon("interrupted"));
  Deno.addSignalListener("SIGTERM", () => abandon("terminated"));
  const code = await soak(args);
  clearTimeout(watchdog);
  Deno.exit(code);
}
