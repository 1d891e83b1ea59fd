/**
 * Order of a bench run: start every contender and gate it, then run the blob
 * workloads in interleaved rounds (every contender once per round, so load
 * from elsewhere hits all of them alike), then wrk on each in turn.
 *
 * @module
 */
import { clientAuthHeaders } from "./auth.ts";
import type { Contender, Endpoint, RunContext } from "./contenders.ts";
import type { Fixtures } from "./fixtures.ts";
import { type GateResult, runGate } from "./gate.ts";
import { say, warn } from "./log.ts";
import type { BenchOptions } from "./options.ts";
import type { ContenderReport } from "./report.ts";
import {
  type ManifestResult,
  measureManifest,
  type ParallelRun,
  parallelRun,
  singleBlobRun,
  summarizeParallel,
  summarizeSingle,
} from "./workloads.ts";

/** A contender that started and passed the gate. */
interface Live {
  readonly contender: Contender;
  readonly endpoint: Endpoint;
  readonly gate: GateResult;
  readonly single: number[];
  readonly parallel: ParallelRun[];
  manifest: ManifestResult | null;
  manifestByDigest: ManifestResult | null;
  readonly errors: string[];
  singleFailed: boolean;
  parallelFailed: boolean;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function emptyReport(c: Contender): ContenderReport {
  return {
    id: c.id,
    label: c.label,
    role: c.role,
    skipped: null,
    gate: null,
    single: null,
    parallel: null,
    manifest: null,
    manifestByDigest: null,
    errors: [],
  };
}

async function startWithToken(
  c: Contender,
  ctx: RunContext,
): Promise<Endpoint> {
  const endpoint = await c.start(ctx);
  try {
    const clientHeaders = await clientAuthHeaders(endpoint);
    if (clientHeaders["Authorization"] !== undefined) {
      say("  answered with a Bearer challenge; using a token from its realm");
    }
    return { ...endpoint, clientHeaders };
  } catch (error) {
    await endpoint.service?.stop();
    throw new Error(`token flow: ${message(error)}`);
  }
}

/** Starts and gates one contender; a report when it drops out, else live. */
async function prepare(
  c: Contender,
  ctx: RunContext,
  fixtures: Fixtures,
): Promise<ContenderReport | Live> {
  say(`\n== ${c.label}`);
  const reason = await c.unavailable(ctx);
  if (reason !== null) {
    say(`  skipped: ${reason}`);
    return { ...emptyReport(c), skipped: reason };
  }
  let endpoint: Endpoint;
  try {
    endpoint = await startWithToken(c, ctx);
  } catch (error) {
    warn(`${c.label} did not start: ${message(error)}`);
    return { ...emptyReport(c), errors: [`start: ${message(error)}`] };
  }
  const gate = await runGate(endpoint, fixtures, ctx.workDir);
  if (!gate.passed) {
    say("  gate FAILED, excluded");
    await endpoint.service?.stop();
    return { ...emptyReport(c), gate };
  }
  say("  gate passed");
  return {
    contender: c,
    endpoint,
    gate,
    single: [],
    parallel: [],
    manifest: null,
    manifestByDigest: null,
    errors: [],
    singleFailed: false,
    parallelFailed: false,
  };
}

async function runRound(
  live: readonly Live[],
  fixtures: Fixtures,
): Promise<void> {
  for (const l of live) {
    if (!l.singleFailed) {
      try {
        l.single.push(await singleBlobRun(l.endpoint, fixtures));
      } catch (error) {
        l.singleFailed = true;
        l.errors.push(`single blob: ${message(error)}`);
        warn(`${l.contender.label}: single blob failed: ${message(error)}`);
      }
    }
    if (!l.parallelFailed) {
      try {
        l.parallel.push(await parallelRun(l.endpoint, fixtures));
      } catch (error) {
        l.parallelFailed = true;
        l.errors.push(`parallel blobs: ${message(error)}`);
        warn(`${l.contender.label}: parallel blobs failed: ${message(error)}`);
      }
    }
  }
}

function liveReport(l: Live): ContenderReport {
  return {
    ...emptyReport(l.contender),
    gate: l.gate,
    single: l.singleFailed ? null : summarizeSingle(l.single),
    parallel: l.parallelFailed ? null : summarizeParallel(l.parallel),
    manifest: l.manifest,
    manifestByDigest: l.manifestByDigest,
    errors: l.errors,
  };
}

/**
 * Runs the gate and every workload on `contenders` and returns one report
 * each, in the given order. Stops every contender it started.
 */
export async function benchContenders(
  contenders: readonly Contender[],
  ctx: RunContext,
  fixtures: Fixtures,
  options: BenchOptions,
): Promise<ContenderReport[]> {
  const prepared: (ContenderReport | Live)[] = [];
  try {
    for (const c of contenders) prepared.push(await prepare(c, ctx, fixtures));
    const live = prepared.filter((p): p is Live => "endpoint" in p);
    for (let round = 1; round <= options.rounds; round++) {
      say(
        `\n-- round ${round}/${options.rounds}: one blob, ` +
          `${options.parallelStreams} parallel blobs on ${live.length} contenders`,
      );
      await runRound(live, fixtures);
    }
    for (const l of live) {
      say(`-- manifest wrk ${options.wrkSeconds} s: ${l.contender.label}`);
      try {
        l.manifest = await measureManifest(l.endpoint, options);
      } catch (error) {
        l.errors.push(`manifest wrk: ${message(error)}`);
        warn(`${l.contender.label}: manifest wrk failed: ${message(error)}`);
      }
      say(`-- manifest by digest wrk ${options.wrkSeconds} s`);
      try {
        l.manifestByDigest = await measureManifest(
          l.endpoint,
          options,
          fixtures.manifest.digest,
        );
      } catch (error) {
        l.errors.push(`manifest by digest wrk: ${message(error)}`);
        warn(`${l.contender.label}: by-digest wrk failed: ${message(error)}`);
      }
    }
  } finally {
    await Promise.all(
      prepared.map((p) => "endpoint" in p ? p.endpoint.service?.stop() : null),
    );
  }
  return prepared.map((p) => "endpoint" in p ? liveReport(p) : p);
}
