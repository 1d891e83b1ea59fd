/**
 * The contenders: the upstream itself, three baseline proxies and
 * acr-cache-proxy (single process and `deno serve --parallel`).
 *
 * @module
 */
import { REPOSITORY, TAG } from "./fixtures.ts";
import {
  proxyConfig,
  startNginx,
  TUNED_PROXY_BUFFER,
  UPSTREAM_PREFIX,
} from "./nginx.ts";
import type { ContenderId } from "./options.ts";
import { freePort } from "./ports.ts";
import {
  haveCommand,
  runCommand,
  type Service,
  startService,
  waitForHttp,
} from "./process.ts";

/** Entry point of acr-cache-proxy run with `deno run`. */
export const PRODUCT_MAIN: string = new URL("../../main.ts", import.meta.url)
  .pathname;

/** Module exporting `default { fetch }`, run with `deno serve --parallel`. */
export const PRODUCT_SERVE_MODULE: string =
  new URL("../../serve.ts", import.meta.url).pathname;

/**
 * Permissions acr-cache-proxy gets: loopback network only, no `az`, no file
 * reads. Anonymous upstream mode needs nothing else.
 */
export const PRODUCT_PERMISSIONS: readonly string[] = [
  "--no-prompt",
  "--allow-net=127.0.0.1",
  "--allow-env",
  "--allow-sys=uid,osRelease",
];

const NAIVE_PROXY = new URL("../baseline/naive.ts", import.meta.url).pathname;
const GO_PROXY_DIR = new URL("../baseline/goproxy/", import.meta.url).pathname;

/** What the bench knows about the run while contenders start. */
export interface RunContext {
  /** Temp folder of this run. */
  readonly workDir: string;
  /** Port of the nginx upstream on 127.0.0.1. */
  readonly upstreamPort: number;
}

/** A started contender. */
export interface Endpoint {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** Path of the bench repository, e.g. `/v2/library/bench`. */
  readonly repoPath: string;
  /** The proxy process, or `null` for direct access. */
  readonly service: Service | null;
  /** Headers every client request carries (the Bearer token, if any). */
  readonly clientHeaders: Readonly<Record<string, string>>;
}

/** How a contender relates to the targets. */
export type Role = "reference" | "baseline" | "stand-in" | "product";

/** One thing being measured. */
export interface Contender {
  readonly id: ContenderId;
  readonly label: string;
  readonly role: Role;
  /** `null` when it can run, else why it is skipped. */
  unavailable(ctx: RunContext): Promise<string | null>;
  /** Starts it and waits until it answers. */
  start(ctx: RunContext): Promise<Endpoint>;
}

const PROXY_REPO_PATH = `/v2/${REPOSITORY}`;

function upstreamOrigin(ctx: RunContext): string {
  return `http://127.0.0.1:${ctx.upstreamPort}`;
}

function readyUrl(origin: string): string {
  return `${origin}${PROXY_REPO_PATH}/manifests/${TAG}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Environment for Deno contenders: no inherited cloud settings, and the
 * credential chain pinned to the CLI (no `az` is allowed to run), so nothing
 * can reach a metadata endpoint even by accident.
 */
function denoEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    NO_COLOR: "1",
    AZURE_TOKEN_CREDENTIALS: "AzureCliCredential",
  };
  for (const name of ["DENO_DIR", "XDG_CACHE_HOME", "DENO_JOBS"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function startAndWait(
  service: Service,
  origin: string,
  timeoutMs: number,
): Promise<Endpoint> {
  try {
    await waitForHttp(readyUrl(origin), service, timeoutMs);
  } catch (error) {
    await service.stop();
    throw error;
  }
  return { origin, repoPath: PROXY_REPO_PATH, service, clientHeaders: {} };
}

const direct: Contender = {
  id: "direct",
  label: "direct (nginx upstream)",
  role: "reference",
  unavailable: (): Promise<string | null> => Promise.resolve(null),
  start: (ctx: RunContext): Promise<Endpoint> =>
    Promise.resolve({
      origin: upstreamOrigin(ctx),
      repoPath: `/v2/${UPSTREAM_PREFIX}/${REPOSITORY}`,
      service: null,
      clientHeaders: {},
    }),
};

function nginxProxy(
  id: ContenderId,
  label: string,
  bufferSize: string | null,
): Contender {
  return {
    id,
    label,
    role: "baseline",
    unavailable: (): Promise<string | null> => Promise.resolve(null),
    start: async (ctx: RunContext): Promise<Endpoint> => {
      const port = freePort();
      const origin = `http://127.0.0.1:${port}`;
      const prefix = `${ctx.workDir}/${id}`;
      const service = await startNginx(
        label,
        prefix,
        proxyConfig(prefix, port, ctx.upstreamPort, bufferSize),
        readyUrl(origin),
      );
      return { origin, repoPath: PROXY_REPO_PATH, service, clientHeaders: {} };
    },
  };
}

const goProxy: Contender = {
  id: "go",
  label: "Go httputil.ReverseProxy",
  role: "baseline",
  unavailable: async (): Promise<string | null> =>
    await haveCommand("go") ? null : "go is not installed (golang-go)",
  start: async (ctx: RunContext): Promise<Endpoint> => {
    const binary = `${ctx.workDir}/goproxy`;
    const build = await runCommand("go", ["build", "-o", binary, "main.go"], {
      cwd: GO_PROXY_DIR,
      timeoutMs: 180_000,
      env: {
        GOPATH: `${ctx.workDir}/gopath`,
        GOCACHE: `${ctx.workDir}/gocache`,
        GOPROXY: "off",
        GOFLAGS: "",
      },
    });
    if (build.code !== 0) {
      throw new Error(`go build failed: ${build.stderr.trim()}`);
    }
    const port = freePort();
    const origin = `http://127.0.0.1:${port}`;
    const service = startService({
      name: "go proxy",
      command: binary,
      args: [
        "-listen",
        `127.0.0.1:${port}`,
        "-upstream",
        upstreamOrigin(ctx),
        "-prefix",
        UPSTREAM_PREFIX,
      ],
    });
    return await startAndWait(service, origin, 10_000);
  },
};

const naive: Contender = {
  id: "naive",
  label: "naive Deno.serve+fetch",
  role: "stand-in",
  unavailable: (): Promise<string | null> => Promise.resolve(null),
  start: async (ctx: RunContext): Promise<Endpoint> => {
    const port = freePort();
    const origin = `http://127.0.0.1:${port}`;
    const service = startService({
      name: "naive deno proxy",
      command: Deno.execPath(),
      args: [
        "run",
        "--no-prompt",
        "--allow-net=127.0.0.1",
        NAIVE_PROXY,
        String(port),
        upstreamOrigin(ctx),
        UPSTREAM_PREFIX,
      ],
      env: denoEnv(),
      clearEnv: true,
    });
    return await startAndWait(service, origin, 30_000);
  },
};

async function productUnavailable(): Promise<string | null> {
  if (!await exists(PRODUCT_MAIN)) return `${PRODUCT_MAIN} does not exist yet`;
  const help = await runCommand(
    Deno.execPath(),
    ["run", "-A", PRODUCT_MAIN, "--help"],
    { timeoutMs: 120_000, env: denoEnv(), clearEnv: true },
  );
  if (help.code !== 0) {
    const why = help.timedOut ? "timed out" : `exited with ${help.code}`;
    const detail = help.stderr.trim().split("\n").slice(-3).join(" | ");
    return `"main.ts --help" ${why}: ${detail}`;
  }
  return null;
}

/**
 * V8 flags the README offers for proxies that stream layers: a young
 * generation of 1 MiB collects dead 16 KiB stream buffers early, and
 * sweeping them inside the pause returns them at once. They cost CPU on
 * small requests (more scavenges), so they are not the default.
 */
export const STREAMING_V8_FLAGS =
  "--v8-flags=--max-semi-space-size=1,--no-concurrent-array-buffer-sweeping";

/** How a product contender runs. */
interface ProductRun {
  /** `deno serve --parallel serve.ts` instead of `deno run main.ts`. */
  parallel?: boolean;
  /** Extra Deno flags (`deno run` only). */
  denoFlags?: readonly string[];
  /** Extra proxy settings, as environment variables. */
  env?: Readonly<Record<string, string>>;
}

/** acr-cache-proxy run one way; the upstream and listen address are set. */
function productContender(
  id: ContenderId,
  label: string,
  run: ProductRun = {},
): Contender {
  return {
    id,
    label,
    role: "product",
    unavailable: async (): Promise<string | null> => {
      if (!run.parallel) return await productUnavailable();
      return await exists(PRODUCT_SERVE_MODULE)
        ? null
        : `${PRODUCT_SERVE_MODULE} does not exist yet`;
    },
    start: async (ctx: RunContext): Promise<Endpoint> => {
      const port = freePort();
      const origin = `http://127.0.0.1:${port}`;
      const entry = run.parallel
        ? [
          "serve",
          "--parallel",
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
          ...PRODUCT_PERMISSIONS,
          PRODUCT_SERVE_MODULE,
        ]
        : ["run", ...run.denoFlags ?? [], ...PRODUCT_PERMISSIONS, PRODUCT_MAIN];
      const service = startService({
        name: label,
        command: Deno.execPath(),
        args: entry,
        env: denoEnv({
          ACR_CACHE_PROXY_UPSTREAM_DOMAIN: upstreamOrigin(ctx),
          ACR_CACHE_PROXY_UPSTREAM_PREFIX: UPSTREAM_PREFIX,
          ACR_CACHE_PROXY_LISTEN_ADDRESS: `127.0.0.1:${port}`,
          // Isolates of one server must share the key of the tokens the
          // proxy issues.
          ACR_CACHE_PROXY_TOKEN_SECRET: randomHex(32),
          ...run.env,
        }),
        clearEnv: true,
      });
      return await startAndWait(service, origin, 60_000);
    },
  };
}

const NO_IDLE_LIMIT = { ACR_CACHE_PROXY_IDLE_TIMEOUT: "0" };

const product = productContender("acr", "acr-cache-proxy");
const productStreaming = productContender(
  "acr-streaming",
  "acr-cache-proxy (streaming V8 flags)",
  { denoFlags: [STREAMING_V8_FLAGS] },
);
const productNative = productContender(
  "acr-native",
  "acr-cache-proxy (--idle-timeout 0)",
  { env: NO_IDLE_LIMIT },
);
const productParallel = productContender(
  "acr-parallel",
  "acr-cache-proxy (parallel)",
  { parallel: true },
);
const productParallelNative = productContender(
  "acr-parallel-native",
  "acr-cache-proxy (parallel, --idle-timeout 0)",
  { parallel: true, env: NO_IDLE_LIMIT },
);

/** All contenders in run order; `direct` first, it is the reference. */
export const CONTENDERS: readonly Contender[] = [
  direct,
  nginxProxy(
    "nginx",
    `nginx proxy_pass (${TUNED_PROXY_BUFFER} buffer)`,
    TUNED_PROXY_BUFFER,
  ),
  nginxProxy("nginx-default", "nginx proxy_pass (default 4k buffer)", null),
  goProxy,
  naive,
  product,
  productStreaming,
  productNative,
  productParallel,
  productParallelNative,
];
