/**
 * Starts the product (`main.ts`) as a subprocess against the rig, with a
 * pinned credential (fake `az` or fake managed identity) and the
 * documented permission flags; its output goes to a log file.
 *
 * @module
 */

import { isIsolated } from "./gate.ts";
import {
  type Daemon,
  freePort,
  probe,
  run,
  type RunResult,
  spawnDaemon,
  tail,
  waitFor,
} from "./proc.ts";
import type { Rig } from "./rig.ts";

/** Absolute path of the product entry point. */
export const MAIN_TS: string =
  new URL("../../../main.ts", import.meta.url).pathname;
/** Repository root (cwd of the proxy, so deno.json applies). */
export const REPO_ROOT: string = new URL("../../../", import.meta.url).pathname;

/** Which Entra credential the proxy is pinned to. */
export type CredentialKind = "cli" | "msi";

/** Options for {@linkcode startProxy}. */
export interface ProxyOptions {
  /** Credential (default `cli`). */
  credential?: CredentialKind;
  /** Extra CLI flags. */
  args?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Wait for `/healthz` up to this many ms (default 60000). */
  readyTimeoutMs?: number;
}

/** A running proxy. */
export interface RunningProxy {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** `127.0.0.1:<port>` (for mirror configs). */
  host: string;
  /** The process. */
  daemon: Daemon;
  /** Reads the proxy's log (stdout and stderr). */
  log(): Promise<string>;
  /** SIGTERM and wait. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Reports why the proxy cannot be started yet, or null.
 *
 * @returns reason or null
 */
export function proxyMissing(): string | null {
  try {
    Deno.statSync(MAIN_TS);
    return null;
  } catch {
    return `${MAIN_TS} does not exist yet`;
  }
}

/**
 * Permission flags for a credential kind, as documented. Outside a
 * loopback-only namespace, network access is narrowed to 127.0.0.1.
 *
 * @param kind credential kind
 * @param azPath absolute path of the fake `az`
 * @returns deno run flags
 */
export function permissionFlags(
  kind: CredentialKind,
  azPath: string,
): string[] {
  const net = isIsolated() ? "--allow-net" : "--allow-net=127.0.0.1";
  return kind === "cli"
    ? [
      net,
      "--allow-env",
      "--allow-sys=uid,osRelease",
      "--allow-run=az",
      `--allow-read=${azPath}`,
    ]
    : [net, "--allow-env", "--allow-sys=osRelease"];
}

/**
 * Environment for a credential kind: a clean environment with only what
 * Deno needs plus the pinned credential.
 *
 * @param rig the rig (fake az and managed identity)
 * @param kind credential kind
 * @returns environment variables
 */
export function credentialEnv(
  rig: Rig,
  kind: CredentialKind,
): Record<string, string> {
  const base: Record<string, string> = { NO_COLOR: "1" };
  for (const k of ["HOME", "DENO_DIR", "XDG_CACHE_HOME", "TZ", "LANG"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) base[k] = v;
  }
  const path = Deno.env.get("PATH") ?? "/usr/bin:/bin";
  if (kind === "cli") {
    return {
      ...base,
      PATH: `${rig.az.binDir}:${path}`,
      AZURE_TOKEN_CREDENTIALS: "AzureCliCredential",
    };
  }
  return {
    ...base,
    PATH: path,
    AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential",
    IDENTITY_ENDPOINT: rig.msi.endpoint,
    IDENTITY_HEADER: rig.msi.secret,
  };
}

/**
 * The `deno run` argument list for the proxy.
 *
 * @param rig the rig
 * @param kind credential kind
 * @param port listen port
 * @param extra extra CLI flags
 * @returns arguments after the deno executable
 */
export function proxyArgs(
  rig: Rig,
  kind: CredentialKind,
  port: number,
  extra: string[] = [],
): string[] {
  return [
    "run",
    ...permissionFlags(kind, rig.az.azPath),
    MAIN_TS,
    "--upstream-domain",
    rig.acr.origin,
    "--upstream-prefix",
    rig.prefix,
    "--listen-address",
    `127.0.0.1:${port}`,
    ...extra,
  ];
}

/**
 * Runs the proxy expecting it to exit by itself (e.g. no credential
 * works), killing it after `timeoutMs`.
 *
 * @param rig the rig
 * @param options credential, flags, env
 * @param timeoutMs deadline
 * @returns exit code and output
 */
export function runProxyToExit(
  rig: Rig,
  options: ProxyOptions = {},
  timeoutMs = 60_000,
): Promise<RunResult> {
  const kind = options.credential ?? "cli";
  return run(Deno.execPath(), proxyArgs(rig, kind, freePort(), options.args), {
    env: { ...credentialEnv(rig, kind), ...(options.env ?? {}) },
    clearEnv: true,
    cwd: REPO_ROOT,
    timeoutMs,
  });
}

/**
 * Starts `main.ts` against the rig's fake ACR and waits for `/healthz`.
 *
 * @param rig the rig
 * @param options credential, flags, env
 * @returns the running proxy
 */
export async function startProxy(
  rig: Rig,
  options: ProxyOptions = {},
): Promise<RunningProxy> {
  const missing = proxyMissing();
  if (missing) throw new Error(missing);
  const kind = options.credential ?? "cli";
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = freePort();
    const daemon = await spawnDaemon({
      name: `proxy(${kind})`,
      cmd: Deno.execPath(),
      args: proxyArgs(rig, kind, port, options.args),
      logPath: `${rig.dir}/proxy-${kind}-${port}.log`,
      env: { ...credentialEnv(rig, kind), ...(options.env ?? {}) },
      clearEnv: true,
      cwd: REPO_ROOT,
    });
    const origin = `http://127.0.0.1:${port}`;
    try {
      await waitFor(async () => (await probe(`${origin}/healthz`)) === 200, {
        what: `proxy /healthz on ${origin}`,
        daemon,
        timeoutMs: options.readyTimeoutMs ?? 60_000,
        intervalMs: 100,
      });
      return {
        origin,
        host: `127.0.0.1:${port}`,
        daemon,
        log: () => daemon.log(),
        stop: () => daemon.stop("SIGTERM", 15_000),
      };
    } catch (err) {
      lastError = err;
      await daemon.stop("SIGKILL");
      if (!/address already in use|AddrInUse/i.test(tail(await daemon.log()))) {
        break;
      }
    }
  }
  throw lastError;
}
