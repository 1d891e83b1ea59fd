/**
 * Checks the deployment examples (contrib/, Dockerfile, release workflow):
 * every file parses, and the properties that make them safe and working hold
 * (loopback listeners, health paths, hardening, identity wiring, metric names,
 * permission flags identical to the `compile` task).
 *
 * External validators (systemd-analyze, hadolint, nomad) run when they are
 * installed; otherwise their tests are reported as ignored, with the reason
 * in the test name.
 *
 * @module
 */

import { FLAGS as CLI_FLAGS } from "../src/config.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse as parseYaml, parseAllDocuments } from "yaml";

// ---------------------------------------------------------------------------
// The interface contract. The metric names will come from src/metrics.ts; the
// flag names from the CLI parser.

/** Prometheus metric names and their labels (without instance/job). */
const METRICS: Readonly<Record<string, readonly string[]>> = {
  acr_cache_proxy_requests_total: ["route", "method", "status"],
  acr_cache_proxy_response_bytes_total: ["route"],
  acr_cache_proxy_upstream_request_duration_seconds_bucket: ["route", "le"],
  acr_cache_proxy_upstream_request_duration_seconds_sum: ["route"],
  acr_cache_proxy_upstream_request_duration_seconds_count: ["route"],
  acr_cache_proxy_refresh_token_renewals_total: ["result"],
  acr_cache_proxy_token_cache_requests_total: ["result"],
  acr_cache_proxy_refresh_token_expiry_seconds: [],
  acr_cache_proxy_in_flight_requests: [],
  acr_cache_proxy_content_cache_requests_total: ["result"],
  acr_cache_proxy_content_cache_bytes: [],
};

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ["instance", "job"];

/** Environment variables the CLI reads, straight from its flag table. */
const FLAG_ENV: ReadonlySet<string> = new Set(
  CLI_FLAGS.map((f) => f.env).filter((env) => env !== ""),
);

/** Default of --shutdown-grace, in seconds. */
const DEFAULT_SHUTDOWN_GRACE = 30;

const RELEASE_TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

// ---------------------------------------------------------------------------
// Files

const ROOT = new URL("../", import.meta.url);

function repoPath(rel: string): string {
  return fileURLToPath(new URL(rel, ROOT));
}

function readRepoFile(rel: string): string {
  return Deno.readTextFileSync(new URL(rel, ROOT));
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (e: unknown) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Whether `cmd args...` can be started and exits 0. */
function hasTool(cmd: string, ...args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

function toolTestName(what: string, tool: string, available: boolean): string {
  return available ? what : `${what} (skipped: ${tool} is not installed)`;
}

// ---------------------------------------------------------------------------
// Small typed accessors for parsed YAML/JSON

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  assert.ok(
    typeof v === "object" && v !== null && !Array.isArray(v),
    `${what} is a mapping`,
  );
  return v as Obj;
}

function arr(v: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(v), `${what} is a list`);
  return v;
}

function str(v: unknown, what: string): string {
  assert.equal(typeof v, "string", `${what} is a string`);
  return v as string;
}

function strings(v: unknown, what: string): string[] {
  return arr(v, what).map((x, i) => str(x, `${what}[${i}]`));
}

// ---------------------------------------------------------------------------
// Shared value checks

/** Seconds in "45", "45s", "1m30s", "1min 30s", "500ms", "2h". */
function parseSeconds(text: string): number {
  const units: Record<string, number> = {
    "": 1,
    ms: 0.001,
    s: 1,
    sec: 1,
    m: 60,
    min: 60,
    h: 3600,
    hr: 3600,
  };
  let total = 0;
  let rest = text.trim();
  assert.ok(rest.length > 0, "a duration is given");
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)\s*(ms|sec|min|hr|s|m|h|)\s*/.exec(rest);
    assert.ok(m, `"${text}" is a duration`);
    total += Number(m[1]) * (units[m[2] ?? ""] ?? NaN);
    rest = rest.slice(m[0].length);
  }
  assert.ok(Number.isFinite(total), `"${text}" is a duration`);
  return total;
}

/** Bytes in a Kubernetes quantity such as "128Mi". */
function parseQuantity(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(text);
  assert.ok(m, `"${text}" is a memory quantity`);
  const factor: Record<string, number> = {
    "": 1,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
  };
  return Number(m[1]) * (factor[m[2] ?? ""] ?? NaN);
}

/** The port of a loopback listen address; fails for any other address. */
function loopbackPort(address: string, where: string): number {
  const m = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost):(\d+)$/.exec(address);
  assert.ok(m, `${where} listens on loopback only, not "${address}"`);
  return Number(m[2]);
}

/** The value following `flag` in an argument list (`--f v` or `--f=v`). */
function flagValue(args: string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    const bare = a.replace(/^--?/, "");
    if (bare === flag) return args[i + 1];
    if (bare.startsWith(`${flag}=`)) return bare.slice(flag.length + 1);
  }
  return undefined;
}

/** Asserts that every ACR_CACHE_PROXY_* name is a variable the CLI reads. */
function assertKnownEnv(names: Iterable<string>, where: string): void {
  for (const name of names) {
    if (name.startsWith("ACR_CACHE_PROXY_")) {
      assert.ok(FLAG_ENV.has(name), `${where}: ${name} is not a CLI variable`);
    }
  }
}

/** Permission flags of a `deno run`/`deno compile` command line. */
function permissionFlags(args: string[]): string[] {
  return args.filter((a) => /^--(allow|deny)-|^-A$|^--allow-all$/.test(a))
    .sort();
}

/**
 * Splits a shell-like command line into words: blanks separate words except
 * inside quotes or a GitHub `${{ expression }}`; quotes are dropped.
 */
function shellWords(line: string): string[] {
  const word = /(?:\$\{\{[^}]*\}\}|"[^"]*"|'[^']*'|\$(?!\{\{)|[^\s"'$])+/g;
  return [...line.replace(/\\\r?\n/g, " ").matchAll(word)].map((m) =>
    m[0].replace(/"([^"]*)"|'([^']*)'/g, "$1$2")
  );
}

function compileTask(): string[] {
  const denoJson = obj(JSON.parse(readRepoFile("deno.json")), "deno.json");
  const tasks = obj(denoJson.tasks, "deno.json tasks");
  return shellWords(str(tasks.compile, "the compile task"));
}

// ---------------------------------------------------------------------------
// docker compose

const COMPOSE = "contrib/docker-compose/compose.yaml";

Deno.test("compose.yaml runs the repository image on host loopback", () => {
  const compose = obj(parseYaml(readRepoFile(COMPOSE)), COMPOSE);
  const services = obj(compose.services, "services");
  const svc = obj(services["acr-cache-proxy"], "service acr-cache-proxy");

  const build = obj(svc.build, "build");
  const context = repoPath(
    `contrib/docker-compose/${str(build.context, "build.context")}/`,
  );
  const dockerfile = `${context}${
    build.dockerfile === undefined
      ? "Dockerfile"
      : str(build.dockerfile, "dockerfile")
  }`;
  assert.ok(exists(dockerfile), `the Dockerfile ${dockerfile} exists`);
  assert.equal(
    Deno.realPathSync(context),
    Deno.realPathSync(repoPath(".")),
    "the build context is the repository root",
  );

  assert.equal(svc.network_mode, "host");
  assert.equal(svc.ports, undefined, "no port publishing with host network");
  const command = strings(svc.command, "command");
  const port = loopbackPort(
    flagValue(command, "listen-address") ?? "",
    "the compose service",
  );

  assert.ok(
    ["always", "unless-stopped", "on-failure"].includes(
      str(svc.restart, "restart"),
    ),
    "a restart policy is set",
  );

  const health = obj(svc.healthcheck, "healthcheck");
  const test = strings(health.test, "healthcheck.test");
  assert.equal(test[0], "CMD", "exec-form healthcheck (no shell in image)");
  assert.ok(
    test.includes(`http://127.0.0.1:${port}/healthz`),
    `the healthcheck probes http://127.0.0.1:${port}/healthz`,
  );
  const probe = test[1] ?? "";
  assert.ok(
    dockerfileCopyTargets().includes(probe),
    `the Dockerfile puts the probe ${probe} into the image`,
  );

  const env = obj(svc.environment, "environment");
  for (
    const key of [
      "ACR_CACHE_PROXY_UPSTREAM_DOMAIN",
      "ACR_CACHE_PROXY_UPSTREAM_PREFIX",
      "AZURE_CLIENT_ID",
    ]
  ) {
    assert.ok(key in env, `environment sets ${key}`);
  }
  assertKnownEnv(Object.keys(env), COMPOSE);

  const grace = parseSeconds(str(svc.stop_grace_period, "stop_grace_period"));
  assert.ok(
    grace > DEFAULT_SHUTDOWN_GRACE,
    "stop_grace_period exceeds the shutdown grace",
  );
  if (svc.read_only === true) {
    assert.ok(
      strings(svc.tmpfs, "tmpfs").some((t) => t.split(":")[0] === "/tmp"),
      "a read-only container still gets a writable /tmp",
    );
  }
});

// ---------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  keyword: string;
  args: string;
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s*#/.test(raw)) continue;
    if (raw.trim() === "" && pending === "") continue;
    if (raw.endsWith("\\")) {
      pending += raw.slice(0, -1) + " ";
      continue;
    }
    const line = (pending + raw).trim();
    pending = "";
    const m = /^(\S+)\s+([\s\S]*)$/.exec(line);
    assert.ok(m, `Dockerfile instruction "${line}" has arguments`);
    out.push({ keyword: (m[1] ?? "").toUpperCase(), args: m[2] ?? "" });
  }
  assert.equal(pending, "", "no dangling line continuation");
  return out;
}

/** Instructions grouped by stage (each starts with its FROM). */
function dockerStages(): Instruction[][] {
  const stages: Instruction[][] = [];
  for (const ins of parseDockerfile(readRepoFile("Dockerfile"))) {
    if (ins.keyword === "FROM") stages.push([]);
    if (ins.keyword === "ARG" && stages.length === 0) continue;
    const stage = stages.at(-1);
    assert.ok(stage, `"${ins.keyword}" comes after a FROM`);
    stage.push(ins);
  }
  return stages;
}

function execForm(args: string, what: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    assert.fail(`${what} uses the exec (JSON array) form`);
  }
  return strings(parsed, what);
}

function copyArgs(ins: Instruction): { flags: string[]; paths: string[] } {
  const words = shellWords(ins.args);
  return {
    flags: words.filter((w) => w.startsWith("--")),
    paths: words.filter((w) => !w.startsWith("--")),
  };
}

/** Destinations of COPY instructions in the final stage. */
function dockerfileCopyTargets(): string[] {
  const final = dockerStages().at(-1) ?? [];
  return final.filter((i) => i.keyword === "COPY").map((i) =>
    copyArgs(i).paths.at(-1) ?? ""
  );
}

Deno.test("Dockerfile builds the compiled binary in stages", () => {
  const stages = dockerStages();
  assert.ok(stages.length >= 2, "the Dockerfile is multi-stage");

  const froms = stages.map((s) =>
    shellWords(s[0]?.args ?? "").find((w) => !w.startsWith("--")) ?? ""
  );
  for (const image of froms) {
    assert.match(
      image,
      /(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/,
      `${image} is pinned`,
    );
    assert.ok(!image.endsWith(":latest"), `${image} is not :latest`);
  }

  const build = stages[0] ?? [];
  const buildImage = froms[0] ?? "";
  const denoTag = /^denoland\/deno:(\d+\.\d+\.\d+)$/.exec(buildImage);
  assert.ok(
    denoTag,
    `the build stage pins denoland/deno:X.Y.Z, not ${buildImage}`,
  );
  assert.equal(
    denoTag[1],
    releaseDenoVersion(),
    "the image and the release workflow use the same Deno",
  );

  const runs = build.filter((i) => i.keyword === "RUN").map((i) => i.args);
  const compile = compileTask();
  const output = flagValue(compile, "output");
  assert.ok(output, "the compile task names its --output");
  const usesTask = runs.some((r) => /\bdeno task compile\b/.test(r));
  const explicit = runs.find((r) => /\bdeno compile\b/.test(r));
  assert.ok(usesTask || explicit, "the build stage compiles");
  if (!usesTask && explicit) {
    assert.deepEqual(
      permissionFlags(shellWords(explicit)),
      permissionFlags(compile),
      "deno compile uses the compile task's permission flags",
    );
  }

  const workdir = build.findLast((i) => i.keyword === "WORKDIR")?.args ?? "/";
  const binary = `${workdir.replace(/\/$/, "")}/${output}`;
  const final = stages.at(-1) ?? [];
  const copies = final.filter((i) => i.keyword === "COPY").map(copyArgs);
  const fromBuild = copies.find((c) => c.paths[0] === binary);
  assert.ok(fromBuild, `the final stage copies ${binary}`);
  assert.ok(fromBuild.flags.some((f) => f.startsWith("--from=")));
  const installed = fromBuild.paths.at(-1) ?? "";

  const finalImage = froms.at(-1) ?? "";
  assert.match(
    finalImage,
    /^gcr\.io\/distroless\/(cc|base|base-nossl)-debian\d+[:@]/,
    "the runtime base has glibc and CA certificates (not distroless/static)",
  );
  assert.ok(!finalImage.includes("base-nossl"), "the base has CA certificates");

  const user = final.findLast((i) => i.keyword === "USER")?.args ?? "";
  assert.ok(user !== "", "the final stage sets USER");
  assert.ok(!/^(root|0)(:|$)/.test(user), `USER ${user} is not root`);

  const entrypoint = final.find((i) => i.keyword === "ENTRYPOINT");
  assert.ok(entrypoint, "ENTRYPOINT is set");
  assert.deepEqual(execForm(entrypoint.args, "ENTRYPOINT"), [installed]);

  const cmd = final.find((i) => i.keyword === "CMD");
  assert.ok(cmd, "CMD sets the listen address explicitly");
  const listen = flagValue(execForm(cmd.args, "CMD"), "listen-address");
  assert.ok(listen, "CMD passes --listen-address");
  const port = /:(\d+)$/.exec(listen)?.[1];
  const exposed = final.filter((i) => i.keyword === "EXPOSE").flatMap((i) =>
    shellWords(i.args).map((p) => p.replace(/\/tcp$/, ""))
  );
  assert.ok(port && exposed.includes(port), `EXPOSE ${port}`);

  for (const copy of build.filter((i) => i.keyword === "COPY")) {
    const { flags, paths } = copyArgs(copy);
    if (flags.some((f) => f.startsWith("--from="))) continue;
    for (const src of paths.slice(0, -1)) {
      if (/[*?[]/.test(src)) continue;
      assert.ok(exists(repoPath(src)), `COPY source ${src} exists`);
    }
  }
});

Deno.test(".dockerignore keeps tests, benchmarks and .git out", () => {
  const patterns = readRepoFile(".dockerignore").split(/\r?\n/)
    .map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  for (const dir of [".git", "tests", "bench"]) {
    assert.ok(
      patterns.some((p) => p.replace(/^\/|\/$/g, "") === dir),
      `${dir} is excluded`,
    );
  }
  for (const needed of ["deno.json", "deno.lock", "src", "main.ts", "mod.ts"]) {
    for (const p of patterns.filter((p) => !p.startsWith("!"))) {
      const re = new RegExp(
        "^" + p.replace(/^\//, "").replace(/\/$/, "")
          .replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, "[^/]*")
          .replace(/\?/g, "[^/]") +
          "$",
      );
      assert.ok(!re.test(needed), `${needed} is not excluded by "${p}"`);
    }
  }
});

const HADOLINT = hasTool("hadolint", "--version");
Deno.test({
  name: toolTestName("Dockerfile passes hadolint", "hadolint", HADOLINT),
  ignore: !HADOLINT,
  fn(): void {
    const out = new Deno.Command("hadolint", {
      args: [repoPath("Dockerfile")],
    }).outputSync();
    assert.ok(out.success, new TextDecoder().decode(out.stdout));
  },
});

// ---------------------------------------------------------------------------
// systemd

const UNIT = "contrib/systemd/acr-cache-proxy.service";

type Ini = Map<string, Map<string, string[]>>;

/** systemd unit syntax: sections, repeated keys, comments, continuations. */
function parseUnit(text: string): Ini {
  const ini: Ini = new Map();
  let section: Map<string, string[]> | undefined;
  let pending = "";
  for (const raw of text.split(/\r?\n/)) {
    if (pending === "" && /^\s*[#;]/.test(raw)) continue;
    if (raw.endsWith("\\")) {
      pending += raw.slice(0, -1) + " ";
      continue;
    }
    const line = (pending + raw).trim();
    pending = "";
    if (line === "") continue;
    const head = /^\[([^\]]+)\]$/.exec(line);
    if (head) {
      section = new Map();
      ini.set(head[1] ?? "", section);
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$/.exec(line);
    assert.ok(kv, `unit line "${line}" is Key=Value`);
    assert.ok(section, `"${line}" is inside a section`);
    const key = kv[1] ?? "";
    section.set(key, [...(section.get(key) ?? []), kv[2] ?? ""]);
  }
  return ini;
}

function isYes(v: string | undefined): boolean {
  return ["yes", "true", "on", "1"].includes((v ?? "").toLowerCase());
}

/** KEY=VALUE lines as systemd's EnvironmentFile= reads them. */
function parseEnvFile(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    assert.ok(m, `"${line}" is VARIABLE=value (no "export", no spaces)`);
    env.set(m[1] ?? "", m[2] ?? "");
  }
  return env;
}

Deno.test("systemd unit is hardened and stops gracefully", () => {
  const unit = parseUnit(readRepoFile(UNIT));
  const svc = unit.get("Service");
  assert.ok(svc, "[Service] exists");
  assert.ok(unit.has("Install"), "[Install] exists");
  const last = (k: string): string | undefined => svc.get(k)?.at(-1);

  for (
    const key of [
      "DynamicUser",
      "ProtectHome",
      "NoNewPrivileges",
      "PrivateTmp",
      "PrivateDevices",
    ]
  ) {
    assert.ok(isYes(last(key)), `${key}=yes`);
  }
  assert.equal(last("ProtectSystem"), "strict");
  assert.deepEqual(
    (last("RestrictAddressFamilies") ?? "").split(/\s+/).sort(),
    ["AF_INET", "AF_INET6", "AF_UNIX"],
  );
  assert.equal(last("CapabilityBoundingSet"), "", "no capabilities at all");
  assert.ok(
    (svc.get("SystemCallFilter") ?? []).some((v) =>
      v.split(/\s+/).includes("@system-service")
    ),
    "SystemCallFilter allows @system-service",
  );
  assert.ok(
    !isYes(last("MemoryDenyWriteExecute")),
    "MemoryDenyWriteExecute stays off: V8's JIT needs W^X mappings",
  );

  assert.equal(last("Restart"), "on-failure");
  assert.ok(parseSeconds(last("RestartSec") ?? "") > 0, "RestartSec is set");
  assert.ok(
    (svc.get("EnvironmentFile") ?? []).includes(
      "-/etc/default/acr-cache-proxy",
    ),
    "optional EnvironmentFile=-/etc/default/acr-cache-proxy",
  );
  assert.equal(last("KillSignal"), "SIGTERM");

  const exec = shellWords(last("ExecStart") ?? "");
  if (exec[0] === "/usr/local/bin/acr-cache-proxy") {
    // The compiled binary carries its permissions.
  } else {
    assert.deepEqual(exec.slice(1, 2), ["run"], "ExecStart runs the binary");
    assert.deepEqual(permissionFlags(exec), permissionFlags(compileTask()));
  }
  const env = new Map<string, string>();
  for (const line of svc.get("Environment") ?? []) {
    for (const pair of shellWords(line)) {
      const [k, ...v] = pair.split("=");
      env.set(k ?? "", v.join("="));
    }
  }
  assertKnownEnv(env.keys(), UNIT);
  const grace = Number(
    flagValue(exec, "shutdown-grace") ??
      env.get("ACR_CACHE_PROXY_SHUTDOWN_GRACE") ?? DEFAULT_SHUTDOWN_GRACE,
  );
  assert.ok(
    parseSeconds(last("TimeoutStopSec") ?? "") > grace,
    `TimeoutStopSec exceeds the shutdown grace (${grace} s)`,
  );
  const listen = flagValue(exec, "listen-address") ??
    env.get("ACR_CACHE_PROXY_LISTEN_ADDRESS");
  assert.ok(listen, "the unit sets the listen address explicitly");
  loopbackPort(listen, "the systemd unit");
});

Deno.test("systemd environment example sets the upstream", () => {
  const env = parseEnvFile(
    readRepoFile("contrib/systemd/acr-cache-proxy.env.example"),
  );
  assert.ok(env.get("ACR_CACHE_PROXY_UPSTREAM_DOMAIN"), "upstream is set");
  assertKnownEnv(env.keys(), "acr-cache-proxy.env.example");
  const listen = env.get("ACR_CACHE_PROXY_LISTEN_ADDRESS");
  if (listen !== undefined) loopbackPort(listen, "the environment example");
});

const SYSTEMD_ANALYZE = hasTool("systemd-analyze", "--version");

/** A copy of the unit whose ExecStart points at an executable stub. */
function unitWithStub(dir: string): string {
  const stub = `${dir}/acr-cache-proxy`;
  Deno.writeTextFileSync(stub, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  const text = readRepoFile(UNIT)
    .replaceAll("/usr/local/bin/acr-cache-proxy", stub)
    .replaceAll("/usr/bin/deno", stub);
  const path = `${dir}/acr-cache-proxy.service`;
  Deno.writeTextFileSync(path, text);
  return path;
}

Deno.test({
  name: toolTestName(
    "systemd-analyze accepts the unit and rates its exposure low",
    "systemd-analyze",
    SYSTEMD_ANALYZE,
  ),
  ignore: !SYSTEMD_ANALYZE,
  fn(): void {
    const dir = Deno.makeTempDirSync({ prefix: "contrib-unit-" });
    try {
      const unit = unitWithStub(dir);
      const verify = new Deno.Command("systemd-analyze", {
        args: ["verify", "--man=no", unit],
      }).outputSync();
      const stderr = new TextDecoder().decode(verify.stderr);
      assert.ok(verify.success, stderr);
      assert.ok(
        !stderr.includes("acr-cache-proxy.service"),
        `systemd-analyze verify warns:\n${stderr}`,
      );

      const security = new Deno.Command("systemd-analyze", {
        args: ["security", "--offline=yes", "--no-pager", unit],
      }).outputSync();
      const text = new TextDecoder().decode(security.stdout);
      const score = /Overall exposure level for [^:]+: ([\d.]+)/.exec(text);
      assert.ok(score, `systemd-analyze security printed a score:\n${text}`);
      assert.ok(Number(score[1]) <= 2, `exposure ${score[1]} is at most 2.0`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------
// Nomad (HCL)

const NOMAD_JOB = "contrib/nomad/acr-cache-proxy.nomad.hcl";

type HclValue = string | number | boolean | HclValue[] | {
  [k: string]: HclValue;
};

interface HclBlock {
  type: string;
  labels: string[];
  attrs: Map<string, HclValue>;
  blocks: HclBlock[];
}

type HclToken = { kind: "ident" | "string" | "number" | "punct"; text: string };

/** Tokens of the HCL subset used by job files (no heredocs). */
function hclTokens(text: string): HclToken[] {
  const tokens: HclToken[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] ?? "";
    const rest = text.slice(i);
    if (/\s/.test(c)) {
      i++;
    } else if (c === "#" || rest.startsWith("//")) {
      const nl = text.indexOf("\n", i);
      i = nl === -1 ? text.length : nl;
    } else if (rest.startsWith("/*")) {
      const end = text.indexOf("*/", i + 2);
      assert.ok(end !== -1, "block comment is closed");
      i = end + 2;
    } else if (c === '"') {
      let j = i + 1;
      let depth = 0;
      let value = "";
      for (;; j++) {
        const d = text[j];
        assert.ok(
          d !== undefined && d !== "\n",
          "string is closed on its line",
        );
        if (d === "\\") {
          value += text[j + 1] ?? "";
          j++;
        } else if (d === "$" && text[j + 1] === "{") {
          depth++;
          value += "${";
          j++;
        } else if (d === "}" && depth > 0) {
          depth--;
          value += d;
        } else if (d === '"' && depth === 0) {
          break;
        } else {
          value += d;
        }
      }
      tokens.push({ kind: "string", text: value });
      i = j + 1;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_.-]*/.exec(rest);
      tokens.push({ kind: "ident", text: m?.[0] ?? c });
      i += m?.[0].length ?? 1;
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?/.exec(rest);
      tokens.push({ kind: "number", text: m?.[0] ?? c });
      i += m?.[0].length ?? 1;
    } else if ("{}[]=,:".includes(c)) {
      tokens.push({ kind: "punct", text: c });
      i++;
    } else {
      assert.fail(`unexpected "${c}" in HCL at offset ${i}`);
    }
  }
  return tokens;
}

/** Parses blocks and attributes; fails on unbalanced braces or brackets. */
function parseHcl(text: string): HclBlock {
  const tokens = hclTokens(text);
  let pos = 0;
  const peek = (): HclToken | undefined => tokens[pos];
  const next = (): HclToken => {
    const t = tokens[pos++];
    assert.ok(t, "HCL ends early (unbalanced braces?)");
    return t;
  };
  const expect = (text: string): void => {
    const t = next();
    assert.equal(t.text, text, `HCL expects "${text}"`);
  };

  function value(): HclValue {
    const t = next();
    if (t.kind === "string") return t.text;
    if (t.kind === "number") return Number(t.text);
    if (t.kind === "ident") {
      return t.text === "true" ? true : t.text === "false" ? false : t.text;
    }
    if (t.text === "[") {
      const list: HclValue[] = [];
      while (peek()?.text !== "]") {
        list.push(value());
        if (peek()?.text === ",") next();
      }
      expect("]");
      return list;
    }
    if (t.text === "{") {
      const map: { [k: string]: HclValue } = {};
      while (peek()?.text !== "}") {
        const key = next().text;
        const sep = next().text;
        assert.ok(sep === "=" || sep === ":", "object entries use = or :");
        map[key] = value();
        if (peek()?.text === ",") next();
      }
      expect("}");
      return map;
    }
    assert.fail(`unexpected "${t.text}" as an HCL value`);
  }

  function body(block: HclBlock, closing: string | undefined): HclBlock {
    while (pos < tokens.length && peek()?.text !== closing) {
      const name = next();
      assert.equal(name.kind, "ident", `"${name.text}" starts an item`);
      if (peek()?.text === "=") {
        next();
        assert.ok(!block.attrs.has(name.text), `${name.text} is set once`);
        block.attrs.set(name.text, value());
        continue;
      }
      const labels: string[] = [];
      while (peek()?.kind === "string") labels.push(next().text);
      expect("{");
      const child: HclBlock = {
        type: name.text,
        labels,
        attrs: new Map(),
        blocks: [],
      };
      body(child, "}");
      expect("}");
      block.blocks.push(child);
    }
    return block;
  }

  const root = body(
    { type: "", labels: [], attrs: new Map(), blocks: [] },
    undefined,
  );
  assert.equal(pos, tokens.length, "HCL has no stray closing brace");
  return root;
}

function hclBlock(parent: HclBlock, type: string): HclBlock {
  const found = parent.blocks.filter((b) => b.type === type);
  assert.equal(found.length, 1, `exactly one ${type} block`);
  return found[0] as HclBlock;
}

Deno.test("Nomad job is a system job on host loopback with a health check", () => {
  const root = parseHcl(readRepoFile(NOMAD_JOB));
  const job = hclBlock(root, "job");
  assert.equal(job.attrs.get("type"), "system");
  const group = hclBlock(job, "group");
  const network = hclBlock(group, "network");
  assert.equal(network.attrs.get("mode"), "host");

  const task = hclBlock(group, "task");
  assert.equal(task.attrs.get("driver"), "docker");
  const config = hclBlock(task, "config");
  assert.equal(config.attrs.get("network_mode"), "host");
  const args = strings(config.attrs.get("args"), "config.args");
  const port = loopbackPort(
    flagValue(args, "listen-address") ?? "",
    "the Nomad task",
  );
  const reserved = hclBlock(network, "port");
  assert.equal(reserved.attrs.get("static"), port, "the port is reserved");

  const service = hclBlock(group, "service");
  assert.equal(
    service.attrs.get("address"),
    "127.0.0.1",
    "the check inherits the loopback service address",
  );
  assert.equal(service.attrs.get("port"), reserved.labels[0]);
  const check = hclBlock(service, "check");
  assert.equal(check.attrs.get("type"), "http");
  assert.equal(check.attrs.get("path"), "/healthz");

  const env = hclBlock(task, "env");
  assert.ok(env.attrs.has("ACR_CACHE_PROXY_UPSTREAM_DOMAIN"), "upstream set");
  assertKnownEnv(env.attrs.keys(), NOMAD_JOB);

  const grace = Number(
    flagValue(args, "shutdown-grace") ?? DEFAULT_SHUTDOWN_GRACE,
  );
  const kill = parseSeconds(
    str(task.attrs.get("kill_timeout"), "kill_timeout"),
  );
  assert.ok(kill > grace, `kill_timeout exceeds the shutdown grace (${grace})`);
});

const NOMAD = hasTool("nomad", "version");
Deno.test({
  name: toolTestName("nomad accepts the job file", "nomad", NOMAD),
  ignore: !NOMAD,
  fn(): void {
    const out = new Deno.Command("nomad", {
      args: ["fmt", "-check", "-list=false", repoPath(NOMAD_JOB)],
    }).outputSync();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
  },
});

// ---------------------------------------------------------------------------
// Kubernetes

const K8S = "contrib/kubernetes/daemonset.yaml";

function k8sObjects(): Obj[] {
  return parseAllDocuments(readRepoFile(K8S)).map((doc, i) => {
    assert.equal(doc.errors.length, 0, `document ${i} parses`);
    return obj(doc.toJS(), `document ${i}`);
  });
}

function k8sKind(objects: Obj[], kind: string): Obj {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0] as Obj;
}

function probe(container: Obj, name: string): Obj {
  const p = obj(container[name], name);
  return obj(p.httpGet, `${name}.httpGet`);
}

Deno.test("DaemonSet runs on every node's loopback with workload identity", () => {
  const objects = k8sObjects();
  const ns = obj(k8sKind(objects, "Namespace").metadata, "Namespace metadata");
  const sa = k8sKind(objects, "ServiceAccount");
  const saMeta = obj(sa.metadata, "ServiceAccount metadata");
  assert.equal(saMeta.namespace, ns.name);
  assert.match(
    str(
      obj(
        saMeta.annotations,
        "annotations",
      )["azure.workload.identity/client-id"],
      "the workload identity client-id annotation",
    ),
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  );

  const ds = k8sKind(objects, "DaemonSet");
  assert.equal(obj(ds.metadata, "DaemonSet metadata").namespace, ns.name);
  const spec = obj(ds.spec, "DaemonSet spec");
  const template = obj(spec.template, "template");
  const labels = obj(
    obj(template.metadata, "template metadata").labels,
    "labels",
  );
  assert.equal(
    labels["azure.workload.identity/use"],
    "true",
    "pods opt in to workload identity (the label value is the string true)",
  );
  const selector = obj(
    obj(spec.selector, "selector").matchLabels,
    "matchLabels",
  );
  for (const [k, v] of Object.entries(selector)) {
    assert.equal(labels[k], v, `the selector matches template label ${k}`);
  }

  const pod = obj(template.spec, "pod spec");
  assert.equal(pod.serviceAccountName, saMeta.name);
  assert.equal(pod.hostNetwork, true);
  const tolerations = arr(pod.tolerations, "tolerations").map((t) =>
    obj(t, "toleration")
  );
  assert.ok(
    tolerations.some((t) =>
      t.operator === "Exists" && t.key === undefined &&
      t.effect === undefined
    ),
    "a toleration matches every taint",
  );
  assert.ok(
    Number(pod.terminationGracePeriodSeconds) > DEFAULT_SHUTDOWN_GRACE,
    "terminationGracePeriodSeconds exceeds the shutdown grace",
  );

  const containers = arr(pod.containers, "containers");
  assert.equal(containers.length, 1, "one container");
  const c = obj(containers[0], "container");
  const args = strings(c.args, "args");
  const port = loopbackPort(flagValue(args, "listen-address") ?? "", "the pod");
  assert.equal(port, 5000);
  const listenHost = (flagValue(args, "listen-address") ?? "").replace(
    /:\d+$/,
    "",
  );
  for (
    const [name, path] of [
      ["readinessProbe", "/readyz"],
      ["livenessProbe", "/healthz"],
    ]
  ) {
    const get = probe(c, name ?? "");
    assert.equal(get.path, path, `${name} path`);
    assert.equal(Number(get.port), port, `${name} port`);
    assert.equal(get.host, listenHost, `${name} probes the loopback listener`);
  }

  const env = arr(c.env ?? [], "env").map((e) => obj(e, "env entry"));
  const envNames = env.map((e) => str(e.name, "env name"));
  assert.ok(envNames.includes("ACR_CACHE_PROXY_UPSTREAM_DOMAIN"));
  assertKnownEnv(envNames, K8S);
  const pinned = env.find((e) => e.name === "AZURE_TOKEN_CREDENTIALS");
  if (pinned) assert.equal(pinned.value, "WorkloadIdentityCredential");

  const resources = obj(c.resources, "resources");
  obj(resources.requests, "resources.requests");
  const memory = str(obj(resources.limits, "limits").memory, "memory limit");
  assert.ok(parseQuantity(memory) <= 128 * 1024 ** 2, "memory limit <= 128Mi");

  const podSec = obj(pod.securityContext ?? {}, "pod securityContext");
  const sec = obj(c.securityContext, "container securityContext");
  assert.equal(sec.runAsNonRoot ?? podSec.runAsNonRoot, true);
  const uid = sec.runAsUser ?? podSec.runAsUser;
  assert.ok(typeof uid === "number" && uid > 0, "a numeric non-root uid");
  assert.equal(sec.readOnlyRootFilesystem, true);
  assert.equal(sec.allowPrivilegeEscalation, false);
  assert.notEqual(sec.privileged, true);
  const caps = obj(sec.capabilities, "capabilities");
  assert.ok(strings(caps.drop, "capabilities.drop").includes("ALL"));
  assert.equal(caps.add, undefined, "no capability is added");

  const mounts = arr(c.volumeMounts ?? [], "volumeMounts").map((m) =>
    obj(m, "volumeMount")
  );
  assert.ok(
    mounts.some((m) => m.mountPath === "/tmp" && m.readOnly !== true),
    "a writable /tmp for the code cache despite the read-only root",
  );
});

// ---------------------------------------------------------------------------
// containerd hosts.toml

type Toml = { [k: string]: string | string[] | Toml };

/** TOML subset: comments, [dotted."quoted".tables], strings, string arrays. */
function parseToml(text: string): Toml {
  const root: Toml = {};
  let table = root;
  const keyParts = (s: string): string[] => {
    const parts: string[] = [];
    const re = /\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_-]+))\s*(\.|$)/y;
    let m: RegExpExecArray | null;
    while (re.lastIndex < s.length && (m = re.exec(s)) !== null) {
      parts.push(m[1] !== undefined ? JSON.parse(`"${m[1]}"`) : m[2] ?? "");
    }
    assert.equal(re.lastIndex, s.length, `TOML key "${s}" is well formed`);
    return parts;
  };
  const value = (s: string): string | string[] => {
    const parsed: unknown = JSON.parse(s.replace(/,\s*\]$/, "]"));
    if (typeof parsed === "string") return parsed;
    return strings(parsed, `TOML value ${s}`);
  };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/^((?:[^"#]|"(?:[^"\\]|\\.)*")*)#.*$/, "$1")
      .trim();
    if (line === "") continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      table = root;
      for (const part of keyParts(head[1] ?? "")) {
        const nextTable = table[part] ?? {};
        assert.ok(typeof nextTable === "object" && !Array.isArray(nextTable));
        table[part] = nextTable;
        table = nextTable;
      }
      continue;
    }
    const kv = /^([^=]+?)\s*=\s*(.+)$/.exec(line);
    assert.ok(kv, `TOML line "${line}" is key = value`);
    const [key] = keyParts(kv[1] ?? "");
    assert.ok(key !== undefined && !(key in table), `key ${key} is new`);
    table[key] = value(kv[2] ?? "");
  }
  return root;
}

Deno.test("containerd hosts.toml mirrors docker.io through the proxy", () => {
  const toml = parseToml(
    readRepoFile("contrib/kubernetes/containerd-hosts.toml"),
  );
  assert.equal(toml.server, "https://registry-1.docker.io", "fallback server");
  const hosts = obj(toml.host, "[host] tables");
  const names = Object.keys(hosts);
  assert.deepEqual(names, ["http://127.0.0.1:5000"], "one mirror: the proxy");
  const mirror = obj(hosts["http://127.0.0.1:5000"], "the proxy's table");
  assert.deepEqual(
    strings(mirror.capabilities, "capabilities").sort(),
    ["pull", "resolve"],
    "pull and resolve only, never push",
  );
});

// ---------------------------------------------------------------------------
// Grafana

const DASHBOARD = "contrib/grafana/acr-cache-proxy.json";

/** Metric names, selector label names and grouping labels in a query. */
function promqlParts(expr: string): {
  metrics: string[];
  selectors: { metric: string; labels: string[] }[];
  grouping: string[];
} {
  const metrics = [...expr.matchAll(/\bacr_cache_proxy_[a-z0-9_]+\b/g)].map(
    (m) => m[0],
  );
  const selectors = [...expr.matchAll(/([A-Za-z_:][\w:]*)\{([^}]*)\}/g)].map(
    (m) => ({
      metric: m[1] ?? "",
      labels: (m[2] ?? "").split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)
        .map((p) => p.trim()).filter((p) => p !== "")
        .map((p) => /^([A-Za-z_]\w*)\s*(=~|!~|!=|=)/.exec(p)?.[1] ?? p),
    }),
  );
  const grouping = [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)]
    .flatMap((m) => (m[1] ?? "").split(",").map((l) => l.trim()))
    .filter((l) => l !== "");
  return { metrics, selectors, grouping };
}

Deno.test("Grafana dashboard queries only the proxy's metrics", () => {
  const dash = obj(JSON.parse(readRepoFile(DASHBOARD)), DASHBOARD);
  const schema = Number(dash.schemaVersion);
  assert.ok(schema >= 36 && schema <= 41, `schemaVersion ${schema} ~ 39`);

  const vars = arr(obj(dash.templating, "templating").list, "variables")
    .map((v) => obj(v, "variable"));
  const dsVar = vars.find((v) => v.type === "datasource");
  assert.ok(dsVar, "a data source variable exists");
  assert.equal(dsVar.query, "prometheus");
  const dsRef = `\${${str(dsVar.name, "variable name")}}`;

  // Every Prometheus reference (panels, queries, variables) goes through the
  // variable, so the dashboard imports into any Grafana unchanged.
  const refs: Obj[] = [];
  const collect = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(collect);
    if (typeof v !== "object" || v === null) return;
    for (const [k, child] of Object.entries(v)) {
      if (k === "datasource" && typeof child === "object" && child !== null) {
        refs.push(child as Obj);
      }
      collect(child);
    }
  };
  collect(dash);
  for (const ref of refs.filter((r) => r.type !== "grafana")) {
    assert.deepEqual(ref, { type: "prometheus", uid: dsRef });
  }

  const panels = arr(dash.panels, "panels").map((p) => obj(p, "panel"));
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  const used = new Set<string>();
  const exprs: string[] = [];
  for (const panel of panels) {
    const title = str(panel.title, "panel title");
    const pos = obj(panel.gridPos, `${title} gridPos`);
    assert.ok(Number(pos.x) + Number(pos.w) <= 24, `${title} fits the grid`);
    assert.equal(obj(panel.datasource, `${title} datasource`).uid, dsRef);
    const targets = arr(panel.targets, `${title} targets`);
    assert.ok(targets.length > 0, `${title} has a query`);
    for (const t of targets) {
      const target = obj(t, `${title} target`);
      const expr = str(target.expr, `${title} expr`);
      exprs.push(expr);
      const { metrics, selectors, grouping } = promqlParts(expr);
      assert.ok(metrics.length > 0, `${title} queries a proxy metric`);
      const allowed = new Set(TARGET_LABELS);
      for (const m of metrics) {
        const labels = METRICS[m];
        assert.ok(labels, `${title}: ${m} is not a metric of the proxy`);
        labels.forEach((l) => allowed.add(l));
        used.add(m);
      }
      for (const s of selectors) {
        const own = new Set([...(METRICS[s.metric] ?? []), ...TARGET_LABELS]);
        for (const l of s.labels) {
          assert.ok(own.has(l), `${title}: ${s.metric} has no label ${l}`);
        }
      }
      for (const l of grouping) {
        assert.ok(allowed.has(l), `${title}: cannot group by ${l}`);
      }
    }
  }

  for (
    const m of Object.keys(METRICS).filter((m) => !/_(sum|count)$/.test(m))
  ) {
    assert.ok(used.has(m), `some panel shows ${m}`);
  }
  const latency = exprs.filter((e) =>
    e.includes("histogram_quantile") && e.includes("_bucket")
  );
  for (const q of ["0.5", "0.95", "0.99"]) {
    assert.ok(
      latency.some((e) => e.includes(`histogram_quantile(${q},`)),
      `upstream latency p${Number(q) * 100}`,
    );
  }
  assert.ok(
    exprs.some((e) => e.includes('status=~"5.."') && e.includes("/")),
    "an error ratio panel (5xx over all)",
  );
});

// ---------------------------------------------------------------------------
// Release workflow

const RELEASE = ".github/workflows/release.yml";

function releaseWorkflow(): Obj {
  return obj(parseYaml(readRepoFile(RELEASE)), RELEASE);
}

function workflowSteps(job: Obj, name: string): Obj[] {
  return arr(job.steps, `${name} steps`).map((s) => obj(s, `${name} step`));
}

function releaseDenoVersion(): string {
  const versions = new Set<string>();
  for (const job of Object.values(obj(releaseWorkflow().jobs, "jobs"))) {
    for (const step of workflowSteps(obj(job, "job"), "job")) {
      if (String(step.uses ?? "").startsWith("denoland/setup-deno@")) {
        const w = obj(step.with, "setup-deno with");
        versions.add(String(w["deno-version"]).replace(/^v/, ""));
      }
    }
  }
  assert.equal(versions.size, 1, "every job sets up the same Deno version");
  return [...versions][0] ?? "";
}

Deno.test("release workflow compiles every target with the task's flags", () => {
  const wf = releaseWorkflow();
  const on = obj(wf.on, "on");
  assert.deepEqual(strings(obj(on.push, "on.push").tags, "tags"), ["v*"]);
  assert.match(releaseDenoVersion(), /^\d+\.\d+\.\d+$/, "Deno is pinned");

  const jobs = obj(wf.jobs, "jobs");
  const compileFlags = permissionFlags(compileTask());
  let compiles = 0;
  let publishes = 0;
  for (const [name, j] of Object.entries(jobs)) {
    const job = obj(j, name);
    for (const step of workflowSteps(job, name)) {
      if (step.uses !== undefined) {
        assert.match(
          str(step.uses, "uses"),
          /^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@(v\d+|[0-9a-f]{40})$/,
          `${name}: actions are pinned to a major tag or a commit`,
        );
      }
      const run = typeof step.run === "string" ? step.run : "";
      for (const m of run.matchAll(/deno compile\b[^\n]*/g)) {
        compiles++;
        const words = shellWords(m[0]);
        assert.deepEqual(
          permissionFlags(words),
          compileFlags,
          `${name}: deno compile uses the compile task's permission flags`,
        );
        assert.equal(flagValue(words, "target"), "${{ matrix.target }}");
        const matrix = obj(obj(job.strategy, "strategy").matrix, "matrix");
        const targets = matrix.target !== undefined
          ? strings(matrix.target, "matrix.target")
          : arr(matrix.include, "matrix.include").map((e) =>
            str(obj(e, "include").target, "include.target")
          );
        assert.deepEqual([...targets].sort(), [...RELEASE_TARGETS].sort());
      }
      if (/\bdeno publish\b(?!\s+--dry-run)/.test(run)) {
        publishes++;
        const perms = obj(job.permissions, `${name} permissions`);
        assert.equal(perms["id-token"], "write", "OIDC for JSR");
      }
    }
  }
  assert.equal(compiles, 1, "one matrix step compiles");
  assert.equal(publishes, 1, "one step publishes to JSR");
});

// ---------------------------------------------------------------------------
// Across files

Deno.test("every YAML and JSON file under contrib/ parses", () => {
  const walk = (dir: string): string[] =>
    [...Deno.readDirSync(dir)].flatMap((e) =>
      e.isDirectory ? walk(`${dir}/${e.name}`) : [`${dir}/${e.name}`]
    );
  const files = walk(repoPath("contrib")).filter((f) =>
    /\.(ya?ml|json)$/.test(f)
  );
  assert.ok(files.length >= 3, "the examples are there");
  for (const file of files) {
    const text = Deno.readTextFileSync(file);
    if (file.endsWith(".json")) {
      JSON.parse(text);
    } else {
      for (const doc of parseAllDocuments(text)) {
        assert.equal(doc.errors.length, 0, `${file}: ${doc.errors[0]}`);
      }
    }
  }
});

Deno.test("the dashboard's metric table matches what the proxy exposes", async () => {
  const { ProxyMetrics } = await import("../src/metrics.ts");
  const m = new ProxyMetrics();
  m.countRequest("docker.io", "GET", 200);
  m.addBytes("docker.io", 1);
  m.observeUpstream("docker.io", 0.1);
  m.countRenewal(true);
  m.countTokenLookup(true);
  m.trackInFlight(1);
  m.watchRefreshExpiry(() => 60);

  const exposed = new Map<string, string[]>();
  for (const line of m.render().split("\n")) {
    const sample = /^([a-z_]+)(?:\{([^}]*)\})? /.exec(line);
    if (!sample) continue;
    const labels = [...(sample[2] ?? "").matchAll(/([a-z_]+)="/g)].map((x) =>
      x[1]!
    );
    exposed.set(sample[1]!, labels);
  }
  assert.deepEqual(
    [...exposed.keys()].sort(),
    Object.keys(METRICS).sort(),
  );
  for (const [name, labels] of exposed) {
    assert.deepEqual([...labels].sort(), [...METRICS[name]!].sort(), name);
  }
});
