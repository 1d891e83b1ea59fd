/**
 * Load through `main.ts`: many concurrent clients pulling a mix of
 * manifests and blobs with every body checked against its digest, the
 * proxy's memory and descriptors watched from `/proc`; then many short
 * connections one after another.
 *
 * The load generator runs in this process, on the same cores as the
 * proxy and the fake upstream, so the request rates printed are what the
 * whole loopback setup sustains, not the proxy alone.
 *
 * Sizes: ACR_FAULTS_LOAD_CLIENTS (default 500), ACR_FAULTS_LOAD_SECONDS
 * (default 20, after a 10 s warm-up), ACR_FAULTS_SHORT_CONNECTIONS
 * (default 10000). Longer runs: `deno task soak`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { digestOf } from "../_fixtures.ts";
import {
  meanRss,
  memoryFlat,
  percentile,
  runLoad,
  sampleProcess,
  startLoadRig,
} from "./_load_mix.ts";
import { fdCount, rssKib } from "./_procfs.ts";
import { requestOnce } from "./_raw_http.ts";
import { measured } from "./_report.ts";
import { delay } from "./misbehaving_upstream.ts";

const CLIENTS = envNumber("ACR_FAULTS_LOAD_CLIENTS", 500);
const SECONDS = envNumber("ACR_FAULTS_LOAD_SECONDS", 20);
const WARMUP_SECONDS = 10;
const SHORT_CONNECTIONS = envNumber("ACR_FAULTS_SHORT_CONNECTIONS", 10_000);
/** Descriptors the proxy may hold beyond its idle count afterwards. */
const FD_SLACK = 10;

function envNumber(name: string, fallback: number): number {
  const value = Number(Deno.env.get(name) ?? fallback);
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number`);
  }
  return value;
}

async function settleFds(pid: number, target: number): Promise<number> {
  const deadline = performance.now() + 5000;
  let n = fdCount(pid);
  while (n > target && performance.now() < deadline) {
    await delay(100);
    n = fdCount(pid);
  }
  return n;
}

Deno.test(`load: ${CLIENTS} concurrent clients for ${SECONDS} s: no failure, flat memory, no descriptor growth`, async () => {
  await using rig = await startLoadRig();
  const fdsIdle = fdCount(rig.pid);
  const rssIdle = rssKib(rig.pid);
  const client = Deno.createHttpClient({});
  const sampler = sampleProcess(rig.pid, 1000);
  let stats;
  try {
    stats = await runLoad({
      baseUrl: rig.proxy.url,
      targets: rig.targets,
      clients: CLIENTS,
      durationMs: (WARMUP_SECONDS + SECONDS) * 1000,
      client,
    });
  } finally {
    sampler.stop();
    client.close();
  }
  // Closing the upstream drops the proxy's pooled upstream connections, so
  // what is left open afterwards is what the proxy leaked.
  await rig.stopUpstream();
  const fdsAfter = await settleFds(rig.pid, fdsIdle + FD_SLACK);
  const rssRest = rssKib(rig.pid);
  const samples = sampler.samples;
  const peakFds = Math.max(...samples.map((s) => s.fds));
  const third = SECONDS / 3;
  const rssEarly = meanRss(samples, WARMUP_SECONDS, WARMUP_SECONDS + third);
  const rssLate = meanRss(
    samples,
    WARMUP_SECONDS + 2 * third,
    WARMUP_SECONDS + SECONDS + 1,
  );
  const rssPeak = Math.max(...samples.map((s) => s.rssKib));
  const requests = stats.ok + stats.failed + stats.corrupted;
  const mib = (kib: number): string => (kib / 1024).toFixed(1);

  measured(`load ${CLIENTS} clients ${WARMUP_SECONDS}+${SECONDS} s`, {
    requests,
    rps: Math.round(requests / (stats.elapsedMs / 1000)),
    mib_per_s: (stats.bytes / 1048576 / (stats.elapsedMs / 1000)).toFixed(1),
    ok: stats.ok,
    failed: stats.failed,
    corrupted: stats.corrupted,
    p50_ms: percentile(stats.latencyMs, 50),
    p99_ms: percentile(stats.latencyMs, 99),
    rss_idle_mib: mib(rssIdle),
    rss_after_warmup_mib: mib(rssEarly),
    rss_end_mib: mib(rssLate),
    rss_peak_mib: mib(rssPeak),
    rss_at_rest_mib: mib(rssRest),
    fds_idle: fdsIdle,
    fds_peak: peakFds,
    fds_after: fdsAfter,
  });
  measured("load mix", {
    by_kind: JSON.stringify(Object.fromEntries(stats.byKind)),
    errors: JSON.stringify(Object.fromEntries(stats.errors)),
  });

  assert.equal(stats.failed, 0, JSON.stringify([...stats.errors]));
  assert.equal(stats.corrupted, 0);
  assert.ok(stats.ok > CLIENTS, `only ${stats.ok} requests completed`);
  assert.ok(
    memoryFlat(rssEarly, rssLate),
    `RSS grew from ${mib(rssEarly)} MiB to ${mib(rssLate)} MiB after warm-up`,
  );
  assert.ok(
    fdsAfter <= fdsIdle + FD_SLACK,
    `descriptors: ${fdsIdle} idle, ${fdsAfter} after the load`,
  );
});

Deno.test(`load: ${SHORT_CONNECTIONS} sequential short connections: every answer whole, no descriptor growth`, async () => {
  await using rig = await startLoadRig();
  const target = rig.targets.find((t) => t.kind === "manifest")!;
  const addr = {
    hostname: "127.0.0.1",
    port: Number(new URL(rig.proxy.url).port),
  };
  // Warm the token cache and the upstream connection pool first.
  for (let i = 0; i < 20; i++) {
    const res = await requestOnce(addr, "GET", target.path);
    assert.equal(res.status, 200);
  }
  const fdsBefore = fdCount(rig.pid);
  const rssBefore = rssKib(rig.pid);
  const errors = new Map<string, number>();
  let ok = 0;
  const t0 = performance.now();
  for (let i = 0; i < SHORT_CONNECTIONS; i++) {
    let why: string | undefined;
    try {
      const res = await requestOnce(addr, "GET", target.path);
      if (res.status !== 200) why = `status ${res.status}`;
      else if (!res.complete) why = "incomplete body";
      else if ((await digestOf(res.body)) !== target.digest) why = "digest";
    } catch (e) {
      why = e instanceof Error ? e.name : String(e);
    }
    if (why) errors.set(why, (errors.get(why) ?? 0) + 1);
    else ok++;
  }
  const elapsed = (performance.now() - t0) / 1000;
  const fdsAfter = await settleFds(rig.pid, fdsBefore + FD_SLACK);
  const rssAfter = rssKib(rig.pid);
  measured(`${SHORT_CONNECTIONS} sequential short connections`, {
    ok,
    failed: SHORT_CONNECTIONS - ok,
    per_s: Math.round(SHORT_CONNECTIONS / elapsed),
    seconds: elapsed.toFixed(1),
    fds_before: fdsBefore,
    fds_after: fdsAfter,
    rss_before_mib: (rssBefore / 1024).toFixed(1),
    rss_after_mib: (rssAfter / 1024).toFixed(1),
    errors: JSON.stringify(Object.fromEntries(errors)),
  });
  assert.equal(ok, SHORT_CONNECTIONS, JSON.stringify([...errors]));
  assert.ok(
    fdsAfter <= fdsBefore + FD_SLACK,
    `descriptors: ${fdsBefore} before, ${fdsAfter} after`,
  );
});
