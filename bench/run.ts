/**
 * Benchmark harness for acr-cache-proxy (`deno task bench [--short]`).
 *
 * Starts an nginx upstream serving a manifest and pseudo-random blobs on
 * loopback, starts and gates the contenders (direct, nginx proxies, Go
 * ReverseProxy, a naive Deno proxy, acr-cache-proxy), measures them with curl
 * and wrk, and writes the results to `bench/results/`. Exits 0 unless
 * acr-cache-proxy fails the gate. See bench/README.md.
 *
 * @module
 */
import { CONTENDERS, type RunContext } from "./lib/contenders.ts";
import { createFixtures } from "./lib/fixtures.ts";
import { say, warn } from "./lib/log.ts";
import { loadAverage, machineInfo } from "./lib/machine.ts";
import { startNginx, upstreamConfig } from "./lib/nginx.ts";
import {
  type BenchOptions,
  parseOptions,
  USAGE,
  UsageError,
} from "./lib/options.ts";
import { freePort } from "./lib/ports.ts";
import { haveCommand, interruptAll, stopAllServices } from "./lib/process.ts";
import {
  markdown,
  type RunReport,
  summary,
  type TokenRateRow,
} from "./lib/report.ts";
import { measureTokenRate } from "./token/rate.ts";
import { benchContenders } from "./lib/schedule.ts";

const RESULTS_DIR = new URL("./results/", import.meta.url).pathname;
const REPO_DIR = new URL("../", import.meta.url).pathname;
const REQUIRED_TOOLS = ["nginx", "curl", "wrk"] as const;
// Loopback answers in microseconds; 20 and 50 ms stand in for a token
// service a network away (same region, and farther), as a real registry's
// is. The ratio is about that round trip over the proxy's own cost.
const TOKEN_LATENCIES_MS = [0, 20, 50] as const;

async function writeResults(report: RunReport): Promise<string> {
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const date = report.startedAt.toISOString().slice(0, 10);
  const path = `${RESULTS_DIR}${date}-${report.options.mode}.md`;
  const text = markdown(report);
  await Deno.writeTextFile(path, text);
  await Deno.writeTextFile(`${RESULTS_DIR}latest.md`, text);
  return path;
}

async function run(options: BenchOptions, workDir: string): Promise<number> {
  const startedAt = new Date();
  const loadAtStart = await loadAverage();
  const t0 = performance.now();
  const mib = (n: number): number => n / 1024 / 1024;
  say(
    `acr-cache-proxy bench (${options.mode}): fixtures ` +
      `${mib(options.largeBlobBytes)} MiB + ${options.parallelStreams} x ` +
      `${mib(options.parallelBlobBytes)} MiB in ${workDir}`,
  );
  const dataDir = `${workDir}/data`;
  await Deno.mkdir(dataDir, { mode: 0o755 });
  await Deno.chmod(dataDir, 0o755);
  const fixtures = await createFixtures(dataDir, options);
  say(`fixtures ready after ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const upstreamPort = freePort();
  const upstreamDir = `${workDir}/nginx-upstream`;
  await startNginx(
    "nginx upstream",
    upstreamDir,
    upstreamConfig(upstreamDir, upstreamPort, fixtures),
    `http://127.0.0.1:${upstreamPort}/v2/`,
  );
  const ctx: RunContext = { workDir, upstreamPort };

  const contenders = await benchContenders(
    CONTENDERS.filter((c) => options.only.includes(c.id)),
    ctx,
    fixtures,
    options,
  );
  const direct = contenders.find((r) => r.id === "direct");
  if (direct !== undefined && direct.gate?.passed !== true) {
    throw new Error(
      "direct access to the upstream failed the gate, the harness is broken: " +
        JSON.stringify(direct.gate ?? direct.errors),
    );
  }

  const tokenRates: TokenRateRow[] = [];
  if (options.only.includes("acr")) {
    for (const latencyMs of TOKEN_LATENCIES_MS) {
      say(`/token rate, token service latency ${latencyMs} ms`);
      const ports: [number, number, number] = [
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const rate = await measureTokenRate(options.wrkSeconds, ports, latencyMs);
      tokenRates.push({ latencyMs, ...rate });
    }
  }

  const report: RunReport = {
    options,
    machine: await machineInfo(REPO_DIR, loadAtStart),
    startedAt,
    seconds: (performance.now() - t0) / 1000,
    contenders,
    tokenRates,
  };
  say(`\n${summary(report)}`);
  say(`\nwritten ${await writeResults(report)} (and latest.md)`);
  say(`total ${report.seconds.toFixed(0)} s`);
  const productFailed = contenders.some((r) =>
    r.role === "product" && r.skipped === null && r.gate?.passed !== true
  );
  return productFailed ? 1 : 0;
}

async function main(): Promise<number> {
  let options: BenchOptions | null;
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    warn(`${error.message}\n${USAGE}`);
    return 2;
  }
  if (options === null) {
    say(USAGE);
    return 0;
  }
  for (const tool of REQUIRED_TOOLS) {
    if (!await haveCommand(tool)) {
      warn(`${tool} is not installed; the bench needs nginx, curl and wrk`);
      return 1;
    }
  }
  const workDir = await Deno.makeTempDir({ prefix: "acr-bench-" });
  await Deno.chmod(workDir, 0o755);
  const cleanup = async (): Promise<void> => {
    await stopAllServices();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  };
  const onSignal = (): void => {
    warn("interrupted, stopping everything");
    interruptAll();
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    return await run(options, workDir);
  } finally {
    await cleanup();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

Deno.exit(await main());
