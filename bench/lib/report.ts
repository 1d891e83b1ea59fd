/**
 * Result tables, target verdicts and the Markdown results file.
 *
 * @module
 */
import type { Role } from "./contenders.ts";
import type { GateResult } from "./gate.ts";
import type { MachineInfo } from "./machine.ts";
import type { BenchOptions, ContenderId } from "./options.ts";
import type {
  ManifestResult,
  ParallelResult,
  SingleBlobResult,
} from "./workloads.ts";

/** Everything measured (or not) for one contender. */
export interface ContenderReport {
  readonly id: ContenderId;
  readonly label: string;
  readonly role: Role;
  /** Why it was skipped; `null` when it ran. */
  readonly skipped: string | null;
  readonly gate: GateResult | null;
  readonly single: SingleBlobResult | null;
  readonly parallel: ParallelResult | null;
  readonly manifest: ManifestResult | null;
  /** The same, by digest: what a caching contender answers from memory. */
  readonly manifestByDigest: ManifestResult | null;
  /** Failures while starting or measuring. */
  readonly errors: readonly string[];
}

/** A whole run, ready to print. */
export interface RunReport {
  readonly options: BenchOptions;
  readonly machine: MachineInfo;
  readonly startedAt: Date;
  readonly seconds: number;
  readonly contenders: readonly ContenderReport[];
  readonly tokenRates: readonly TokenRateRow[];
}

/** One `/token` measurement (acr-cache-proxy only). */
export interface TokenRateRow {
  /** Delay the fake token service added to every call. */
  readonly latencyMs: number;
  /** Requests/s answered from the warm cache. */
  readonly cachedRps: number;
  /** Requests/s forwarding each request to the token service. */
  readonly forwardedRps: number;
  /** cachedRps / forwardedRps. */
  readonly ratio: number;
  /** Non-2xx answers and socket errors, both runs. */
  readonly errors: number;
}

function tokenRateSection(rows: readonly TokenRateRow[]): string {
  if (rows.length === 0) return "not measured (acr-cache-proxy not selected)";
  return table(
    [
      "token service latency",
      "warm cache req/s",
      "forwarding req/s",
      "ratio",
      "target >= 20x",
      "errors",
    ],
    rows.map((r) => [
      `${r.latencyMs} ms`,
      r.cachedRps.toFixed(0),
      r.forwardedRps.toFixed(0),
      `${r.ratio.toFixed(1)}x`,
      r.ratio >= 20 ? "PASS" : "MISS",
      String(r.errors),
    ]),
  );
}

const MIB = 1024 * 1024;

/** A target verdict: shown value and PASS (true), MISS (false) or n/a. */
export interface Verdict {
  readonly text: string;
  readonly pass: boolean | null;
}

/** One product target and how to judge a contender against it. */
export interface Target {
  readonly name: string;
  readonly goal: string;
  evaluate(r: ContenderReport, all: readonly ContenderReport[]): Verdict;
}

function byId(
  all: readonly ContenderReport[],
  id: ContenderId,
): ContenderReport | undefined {
  return all.find((c) => c.id === id && c.gate?.passed === true);
}

function ratio(
  value: number | undefined,
  ref: number | undefined,
): number | null {
  return value === undefined || ref === undefined || ref === 0
    ? null
    : value / ref;
}

function fmt(value: number | null | undefined, digits: number): string {
  return value === null || value === undefined || !Number.isFinite(value)
    ? "–"
    : value.toFixed(digits);
}

function fmtRatio(value: number | null): string {
  return value === null ? "–" : `${value.toFixed(2)}x`;
}

function verdict(
  value: number | null,
  ok: (v: number) => boolean,
  text: string,
): Verdict {
  if (value === null) return { text: "", pass: null };
  return { text, pass: ok(value) };
}

function singleRatio(
  r: ContenderReport,
  all: readonly ContenderReport[],
): number | null {
  return ratio(r.single?.mbPerSecond, byId(all, "direct")?.single?.mbPerSecond);
}

function parallelRatio(
  r: ContenderReport,
  all: readonly ContenderReport[],
): number | null {
  return ratio(
    r.parallel?.mbPerSecond,
    byId(all, "nginx")?.parallel?.mbPerSecond,
  );
}

/** Manifest rate against Go's in the same run, by tag or by digest. */
function manifestRatio(
  r: ContenderReport,
  all: readonly ContenderReport[],
  workload: "manifest" | "manifestByDigest" = "manifest",
): number | null {
  return ratio(
    r[workload]?.requestsPerSecond,
    byId(all, "go")?.[workload]?.requestsPerSecond,
  );
}

/** The product targets. */
export const TARGETS: readonly Target[] = [
  {
    name: "one large blob vs direct",
    goal: ">= 0.90x",
    evaluate: (r, all): Verdict => {
      const v = singleRatio(r, all);
      return verdict(v, (x) => x >= 0.9, fmtRatio(v));
    },
  },
  {
    name: "8 parallel blobs vs nginx proxy",
    goal: ">= 1.1x",
    evaluate: (r, all): Verdict => {
      const v = parallelRatio(r, all);
      return verdict(v, (x) => x >= 1.1, fmtRatio(v));
    },
  },
  {
    name: "manifest GET req/s vs Go",
    goal: ">= 2x",
    evaluate: (r, all): Verdict => {
      const v = manifestRatio(r, all);
      return verdict(v, (x) => x >= 2, fmtRatio(v));
    },
  },
  {
    name: "CPU per manifest request",
    goal: "<= 50 µs",
    evaluate: (r): Verdict => {
      const v = r.manifest?.cpuMicrosPerRequest ?? null;
      return verdict(v, (x) => x <= 50, `${fmt(v, 1)} µs`);
    },
  },
  {
    name: "manifest GET by digest req/s vs Go",
    goal: ">= 2x",
    evaluate: (r, all): Verdict => {
      const v = manifestRatio(r, all, "manifestByDigest");
      return verdict(v, (x) => x >= 2, fmtRatio(v));
    },
  },
  {
    name: "CPU per manifest request by digest",
    goal: "<= 50 µs",
    evaluate: (r): Verdict => {
      const v = r.manifestByDigest?.cpuMicrosPerRequest ?? null;
      return verdict(v, (x) => x <= 50, `${fmt(v, 1)} µs`);
    },
  },
  {
    name: "peak RSS during 8 streams",
    goal: "<= 60 MiB",
    evaluate: (r): Verdict => {
      const v = r.parallel?.peakRssBytes ?? null;
      return verdict(
        v,
        (x) => x <= 60 * MIB,
        `${fmt(v === null ? null : v / MIB, 1)} MiB`,
      );
    },
  },
];

function table(header: readonly string[], rows: readonly string[][]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [
    line(header),
    line(header.map(() => "---")),
    ...rows.map(line),
  ].join("\n");
}

function gateCell(r: ContenderReport): string {
  if (r.skipped !== null) return "skipped";
  if (r.gate === null) return "error";
  return r.gate.passed ? "pass" : "FAIL";
}

function nameCell(r: ContenderReport): string {
  return r.role === "stand-in" ? `${r.label} (stand-in)` : r.label;
}

/** Absolute numbers and ratios, one row per contender. */
export function resultsTable(all: readonly ContenderReport[]): string {
  const rows = all.map((r) => {
    const usable = r.gate?.passed === true;
    const m = usable ? r.manifest : null;
    const p = usable ? r.parallel : null;
    const s = usable ? r.single : null;
    const rps = m === null ? "–" : fmt(m.requestsPerSecond, 0) +
      (m.non2xx + m.socketErrors > 0 ? " (!)" : "");
    return [
      nameCell(r),
      gateCell(r),
      fmt(s?.mbPerSecond, 0),
      s === null ? "–" : fmtRatio(singleRatio(r, all)),
      fmt(p?.mbPerSecond, 0),
      p === null ? "–" : fmtRatio(parallelRatio(r, all)),
      rps,
      m === null ? "–" : fmtRatio(manifestRatio(r, all)),
      m === null ? "–" : `${m.non2xx}/${m.socketErrors}`,
      fmt(m?.cpuMicrosPerRequest, 1),
      fmt(p?.cpuSecondsPerGiB, 2),
      fmt(
        p?.peakRssBytes === null || p === null ? null : p.peakRssBytes / MIB,
        1,
      ),
    ];
  });
  return table([
    "contender",
    "gate",
    "1 blob MB/s",
    "vs direct",
    "8x MB/s",
    "vs nginx",
    "manifest req/s",
    "vs Go",
    "non-2xx/sock err",
    "CPU µs/req",
    "CPU s/GiB",
    "peak RSS MiB",
  ], rows);
}

/** Manifest GETs by digest, one row per contender. */
export function digestTable(all: readonly ContenderReport[]): string {
  const rows = all.filter((r) => r.gate?.passed === true).map((r) => {
    const m = r.manifestByDigest;
    return [
      nameCell(r),
      m === null ? "–" : fmt(m.requestsPerSecond, 0),
      m === null ? "–" : fmtRatio(manifestRatio(r, all, "manifestByDigest")),
      m === null ? "–" : `${m.non2xx}/${m.socketErrors}`,
      fmt(m?.cpuMicrosPerRequest, 1),
    ];
  });
  return table([
    "contender",
    "by digest req/s",
    "vs Go",
    "non-2xx/sock err",
    "CPU µs/req",
  ], rows);
}

/** Target verdicts for the product and its stand-in. */
export function targetsTable(all: readonly ContenderReport[]): string {
  const judged = all.filter((r) =>
    (r.role === "product" || r.role === "stand-in") && r.gate?.passed === true
  );
  if (judged.length === 0) return "(no product or stand-in was measured)";
  const rows = TARGETS.map((t) => [
    t.name,
    t.goal,
    ...judged.map((r) => {
      const v = t.evaluate(r, all);
      const mark = v.pass === null ? "n/a" : v.pass ? "PASS" : "MISS";
      return `${v.text} ${mark}`.trim();
    }),
  ]);
  return table(["target", "goal", ...judged.map(nameCell)], rows);
}

function problemsSection(all: readonly ContenderReport[]): string {
  const lines: string[] = [];
  for (const r of all) {
    if (r.skipped !== null) lines.push(`- ${r.label}: skipped: ${r.skipped}`);
    for (const c of r.gate?.checks ?? []) {
      if (!c.ok) lines.push(`- ${r.label}: gate ${c.what}: ${c.detail}`);
    }
    for (const e of r.errors) lines.push(`- ${r.label}: ${e}`);
    for (const m of [r.manifest, r.manifestByDigest]) {
      if (m !== null && m.non2xx + m.socketErrors > 0) {
        lines.push(
          `- ${r.label}: wrk saw ${m.non2xx} non-2xx responses and ` +
            `${m.socketErrors} socket errors`,
        );
      }
    }
  }
  return lines.length === 0 ? "none" : lines.join("\n");
}

function runsSection(all: readonly ContenderReport[]): string {
  const rows = all.filter((r) => r.gate?.passed === true).map((r) => [
    r.label,
    (r.single?.runs ?? []).map((v) => v.toFixed(0)).join(", ") || "–",
    (r.parallel?.runs ?? []).map((v) => v.toFixed(0)).join(", ") || "–",
    fmt((r.parallel?.rssBeforeBytes ?? NaN) / MIB, 1),
    r.manifest === null ? "–" : String(r.manifest.requests),
  ]);
  return table([
    "contender",
    "1 blob runs MB/s",
    "8x runs MB/s",
    "RSS before 8x MiB",
    "wrk requests",
  ], rows);
}

/** The console summary: results, targets, problems. */
export function summary(report: RunReport): string {
  return [
    "## Results",
    "",
    resultsTable(report.contenders),
    "",
    "## Manifest GET by digest",
    "",
    "Content-addressed, so acr-cache-proxy answers repeats from memory; " +
    "the other contenders ask the upstream every time.",
    "",
    digestTable(report.contenders),
    "",
    "## Targets",
    "",
    targetsTable(report.contenders),
    "",
    "## /token rate (warm cache vs forwarding)",
    "",
    tokenRateSection(report.tokenRates),
    "",
    "## Problems",
    "",
    problemsSection(report.contenders),
  ].join("\n");
}

function workloadsSection(o: BenchOptions): string {
  const mib = (n: number): string => `${(n / MIB).toFixed(0)} MiB`;
  return [
    `- Gate: GET and HEAD of the manifest (by tag, then twice by digest) ` +
    `and of one ` +
    `${mib(o.parallelBlobBytes)} blob with curl, sending ` +
    "`Accept-Encoding: gzip`; body sha256, `Docker-Content-Digest`, " +
    "`Content-Length` and `Content-Type` must equal the upstream's, " +
    "no `Content-Encoding`.",
    `- Blob workloads run in ${o.rounds} interleaved rounds (each round ` +
    "runs every contender once); medians are reported. MB = 10^6 bytes.",
    `- 1 blob: one ${mib(o.largeBlobBytes)} blob, ` +
    "`curl -o /dev/null`, curl's `speed_download`.",
    `- 8x: ${o.parallelStreams} x ${mib(o.parallelBlobBytes)} distinct ` +
    "blobs, one curl each at once, total bytes / wall time; proxy CPU " +
    "seconds per GiB over all rounds; peak summed VmRSS of the proxy " +
    "process tree, sampled every 50 ms.",
    `- Manifest: \`wrk -t${o.wrkThreads} -c${o.wrkConnections} ` +
    `-d${o.wrkSeconds}s\` after a ${o.warmupSeconds} s warm-up; proxy ` +
    "CPU (utime+stime of the process tree) / requests. Once by tag (every " +
    "contender asks the upstream), once by digest.",
    "- A contender that answers with a Bearer challenge gets one token " +
    "from its realm; every request then carries it.",
    "- acr-cache-proxy runs with its defaults, so it logs one line per " +
    "request (to a pipe the harness drains); the others log nothing.",
    "- Everything on loopback; the upstream is nginx serving files " +
    "(sendfile, no gzip); load generators share the cores with the proxy.",
  ].join("\n");
}

/** The full Markdown results file. */
export function markdown(report: RunReport): string {
  const { options: o, machine: m } = report;
  return [
    `# acr-cache-proxy bench, ${o.mode} run`,
    "",
    `Started ${report.startedAt.toISOString()}, ` +
    `took ${report.seconds.toFixed(0)} s.`,
    "",
    "## Machine",
    "",
    `- CPUs: ${m.cpus} x ${m.cpuModel}`,
    `- Memory: ${m.memoryGiB.toFixed(1)} GiB`,
    `- Kernel: ${m.kernel}`,
    `- Load average (1, 5, 15 min) at start: ${m.loadAtStart}, ` +
    `at end: ${m.loadAtEnd}. Well above 1 means other work on the ` +
    "machine skewed the numbers.",
    `- ${m.deno}`,
    ...m.tools.map((t) => `- ${t}`),
    `- Checkout: ${m.commit}`,
    "",
    "## Workloads",
    "",
    workloadsSection(o),
    "",
    summary(report),
    "",
    "## Raw runs",
    "",
    runsSection(report.contenders),
    "",
  ].join("\n");
}
