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
/** How clients authenticate to the proxy (`--auth-mode`). */
export type AuthMode = "challenge" | "inject";
/** Proxy log format (`--log-format`). */
export type LogFormat = "text" | "json";

/** Both auth modes, in the order the suites run them. */
export const AUTH_MODES: readonly AuthMode[] = ["challenge", "inject"];

/** A TLS listener: PEM files and the certificate clients trust. */
export interface ProxyTls {
  /** `--tls-cert` file. */
  certFile: string;
  /** `--tls-key` file. */
  keyFile: string;
  /** PEM text of the certificate (the trust anchor for probes). */
  certPem: string;
}

/** Options for {@linkcode startProxy}. */
export interface ProxyOptions {
  /** Credential (default `cli`). */
  credential?: CredentialKind;
  /** `--auth-mode` (default `challenge`). */
  mode?: AuthMode;
  /** `--log-format` (default `text`). */
  logFormat?: LogFormat;
  /** `--log-level` (default `debug`, so scans see every line). */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** `--upstream-prefix` (default the rig's `hub`; null leaves it out). */
  upstreamPrefix?: string | null;
  /** `--route REGISTRY=PREFIX` values. */
  routes?: string[];
  /** Serve HTTPS with these files (added to `--allow-read`). */
  tls?: ProxyTls;
  /** Short label for the log file name. */
  label?: string;
  /** Extra CLI flags. */
  args?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Wait for `/healthz` up to this many ms (default 60000). */
  readyTimeoutMs?: number;
}

/** A running proxy. */
export interface RunningProxy {
  /** `http://127.0.0.1:<port>` (`https://` with TLS) */
  origin: string;
  /** `127.0.0.1:<port>` (for mirror configs). */
  host: string;
  /** Its auth mode. */
  mode: AuthMode;
  /** Its log format. */
  logFormat: LogFormat;
  /** The flags it was started with (after `main.ts`). */
  flags: string[];
  /** The Deno permission flags it runs with (before `main.ts`). */
  permissions: string[];
  /** The process. */
  daemon: Daemon;
  /**
   * Reads the proxy's log (stdout and stderr) once it has settled: the
   * proxy writes request lines in batches, up to one turn of its event
   * loop after the response.
   */
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
 * Permission flags for a credential kind, as documented (the TLS files
 * join `--allow-read`). Outside a loopback-only namespace, network access
 * is narrowed to 127.0.0.1.
 *
 * @param kind credential kind
 * @param azPath absolute path of the fake `az`
 * @param readPaths more files the proxy must read (TLS PEM files)
 * @returns deno run flags
 */
export function permissionFlags(
  kind: CredentialKind,
  azPath: string,
  readPaths: string[] = [],
): string[] {
  const net = isIsolated() ? "--allow-net" : "--allow-net=127.0.0.1";
  const read = kind === "cli" ? [azPath, ...readPaths] : readPaths;
  return [
    net,
    "--allow-env",
    kind === "cli" ? "--allow-sys=uid,osRelease" : "--allow-sys=osRelease",
    ...(kind === "cli" ? ["--allow-run=az"] : []),
    ...(read.length ? [`--allow-read=${read.join(",")}`] : []),
  ];
}

/**
 * The product flags (after `main.ts`) for a set of options.
 *
 * @param rig the rig
 * @param port listen port
 * @param options mode, format, prefix, routes, TLS, extra flags
 * @returns flags
 */
export function productFlags(
  rig: Rig,
  port: number,
  options: ProxyOptions = {},
): string[] {
  const prefix = options.upstreamPrefix === undefined
    ? rig.prefix
    : options.upstreamPrefix;
  return [
    "--upstream-domain",
    rig.acr.origin,
    ...(prefix === null ? [] : ["--upstream-prefix", prefix]),
    ...(options.routes ?? []).flatMap((r) => ["--route", r]),
    "--listen-address",
    `127.0.0.1:${port}`,
    "--auth-mode",
    options.mode ?? "challenge",
    "--log-format",
    options.logFormat ?? "text",
    "--log-level",
    options.logLevel ?? "debug",
    ...(options.tls
      ? ["--tls-cert", options.tls.certFile, "--tls-key", options.tls.keyFile]
      : []),
    ...(options.args ?? []),
  ];
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
 * @param port listen port
 * @param options credential, mode, format, prefix, routes, TLS, flags
 * @returns arguments after the deno executable
 */
export function proxyArgs(
  rig: Rig,
  port: number,
  options: ProxyOptions = {},
): string[] {
  const tlsFiles = options.tls
    ? [options.tls.certFile, options.tls.keyFile]
    : [];
  return [
    "run",
    ...permissionFlags(options.credential ?? "cli", rig.az.azPath, tlsFiles),
    MAIN_TS,
    ...productFlags(rig, port, options),
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
  return run(Deno.execPath(), proxyArgs(rig, freePort(), options), {
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
  const mode = options.mode ?? "challenge";
  const label = options.label ?? `${kind}-${mode}`;
  const client = options.tls
    ? Deno.createHttpClient({ caCerts: [options.tls.certPem] })
    : undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = freePort();
    const args = proxyArgs(rig, port, options);
    const daemon = await spawnDaemon({
      name: `proxy(${label})`,
      cmd: Deno.execPath(),
      args,
      logPath: `${rig.dir}/proxy-${label}-${port}.log`,
      env: { ...credentialEnv(rig, kind), ...(options.env ?? {}) },
      clearEnv: true,
      cwd: REPO_ROOT,
    });
    const origin = `${options.tls ? "https" : "http"}://127.0.0.1:${port}`;
    try {
      await waitFor(
        async () =>
          (await probe(`${origin}/healthz`, client ? { client } : {})) ===
            200,
        {
          what: `proxy /healthz on ${origin}`,
          daemon,
          timeoutMs: options.readyTimeoutMs ?? 60_000,
          intervalMs: 100,
        },
      );
      client?.close();
      return {
        origin,
        host: `127.0.0.1:${port}`,
        mode,
        logFormat: options.logFormat ?? "text",
        flags: args.slice(args.indexOf(MAIN_TS) + 1),
        permissions: args.slice(1, args.indexOf(MAIN_TS)),
        daemon,
        log: () => settledLog(daemon),
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
  client?.close();
  throw lastError;
}

// Reads until two reads 25 ms apart agree (at most about 1 s).
async function settledLog(daemon: Daemon): Promise<string> {
  let last = await daemon.log();
  for (let i = 0; i < 40; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const now = await daemon.log();
    if (now === last) return now;
    last = now;
  }
  return last;
}
