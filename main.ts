#!/usr/bin/env -S deno run --allow-net --allow-env --allow-sys=uid,osRelease --allow-run=az --allow-read
/**
 * The `acr-cache-proxy` program: flags and environment, the Entra ID
 * credential, `Deno.serve`, and signals. Everything that shapes requests
 * and responses lives in `src/`.
 *
 * ```sh
 * deno run --allow-net --allow-env --allow-sys=uid,osRelease \
 *   --allow-run=az --allow-read=$(command -v az) main.ts \
 *   --upstream-domain example.azurecr.io --upstream-prefix hub
 * ```
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import {
  type Config,
  ConfigError,
  helpText,
  parseInvocation,
} from "./src/config.ts";
import { discoverUpstream, DiscoveryError } from "./src/discover.ts";
import {
  createHandler,
  type ProxyHandler,
  type RequestRecord,
} from "./src/handler.ts";
import {
  enabled,
  formatLine,
  type LogFields,
  requestLogFields,
} from "./src/log.ts";
import { ProxyMetrics } from "./src/metrics.ts";
import { ContentCache } from "./src/cache.ts";
import {
  AccessTokenCache,
  type AccessTokenProvider,
  RefreshTokenSource,
} from "./src/tokens.ts";

type LogLevel = Config["logLevel"];

/** How recently the upstream must have answered for `/readyz`. */
const READY_CONTACT_MS = 3 * 60_000;
/** How long before refresh-token expiry `/readyz` turns not-ready. */
const READY_EXPIRY_MARGIN_MS = 2 * 60_000;
/** How often an idle proxy checks the upstream still answers. */
const PROBE_INTERVAL_MS = 60_000;

if (import.meta.main) {
  await main(Deno.args);
}

async function main(args: string[]): Promise<void> {
  const config = await readConfig(args);
  const tls = config.tls
    ? {
      cert: await readPem(config.tls.certFile, "--tls-cert"),
      key: await readPem(config.tls.keyFile, "--tls-key"),
    }
    : {};
  const app = await createApp(config);
  const { log } = app;

  warnBeyondLoopback(log, config.listen.hostname);
  let server: Deno.HttpServer;
  try {
    server = serve();
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
    await write(
      Deno.stderr,
      `acr-cache-proxy: cannot listen on ${config.listen.hostname}:${config.listen.port} (${why}); choose another --listen-address\n`,
    );
    Deno.exit(1);
  }

  function serve(): Deno.HttpServer {
    return Deno.serve({
      hostname: config.listen.hostname,
      port: config.listen.port,
      ...tls,
      onListen: ({ hostname, port }) =>
        log("info", "listening", {
          address: `${hostname}:${port}`,
          tls: !!config.tls,
        }),
      onError: (e) => {
        log("error", "unhandled error", {
          error: e instanceof Error ? e.name : "error",
        });
        return new Response(null, { status: 500 });
      },
    }, app.handler.fetch);
  }

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log("info", "shutting down", { signal, grace_ms: config.shutdownGraceMs });
    app.stop();

    const grace = new Promise<"grace period over">((resolve) =>
      setTimeout(() => resolve("grace period over"), config.shutdownGraceMs)
    );
    const drained = server.shutdown().then(() => "drained" as const);
    const how = await Promise.race([drained, grace]);
    log("info", "stopped", { how });
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => void stop(signal));
  }
}

/**
 * Reads the configuration from arguments and the environment. Prints help
 * or the version and exits 0 when asked; exits 2 with one sentence on a
 * configuration mistake.
 *
 * @param args Command-line arguments.
 * @returns The configuration.
 */
export async function readConfig(args: string[]): Promise<Config> {
  try {
    const invocation = parseInvocation(args, Deno.env.toObject());
    if (invocation.kind === "help") {
      await write(Deno.stdout, helpText(denoJson.version));
      Deno.exit(0);
    }
    if (invocation.kind === "version") {
      await write(Deno.stdout, `acr-cache-proxy ${denoJson.version}\n`);
      Deno.exit(0);
    }
    return invocation.config;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return await exitOnBadConfig(e.message);
  }
}

/**
 * Stops the program at start over a configuration mistake: one sentence on
 * stderr, exit code 2.
 *
 * @param sentence What is wrong and how to fix it.
 */
export async function exitOnBadConfig(sentence: string): Promise<never> {
  await write(Deno.stderr, `acr-cache-proxy: ${sentence}\n`);
  Deno.exit(2);
}

/** A configured proxy, ready to be served. */
export interface App {
  /** The request handler. */
  handler: ProxyHandler;
  /** Writes one log line. */
  log: (level: LogLevel, msg: string, fields?: LogFields) => void;
  /** Stops the background renewal and probe timers. */
  stop(): void;
}

/**
 * Discovers the upstream, signs in when it needs credentials, and builds
 * the handler. Exits 1 with one sentence when the upstream or the
 * credential does not work.
 *
 * @param config The configuration.
 * @returns The app.
 */
export async function createApp(config: Config): Promise<App> {
  const stdout = batchedLines(Deno.stdout);
  const stderr = batchedLines(Deno.stderr);
  const log = (level: LogLevel, msg: string, fields: LogFields = {}): void => {
    if (!enabled(level, config.logLevel)) return;
    const line = formatLine(config.logFormat, level, msg, fields, new Date());
    // Request lines go out in batches; any other line flushes them first,
    // so start-up, shutdown and exit messages are never held back.
    if (msg === "request" && level !== "error") return stdout.add(line);
    stdout.flush();
    (level === "error" ? stderr : stdout).write(line);
  };
  const fail = (code: number, message: string): never => {
    log("error", message);
    Deno.exit(code);
  };

  log("info", "starting", effectiveConfig(config));

  let lastContact = 0;
  const tracked: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    lastContact = Date.now();
    return res;
  };

  const metrics = new ProxyMetrics();
  const access = await discoverUpstream(config.upstream, tracked).catch(
    (e) => fail(1, e instanceof DiscoveryError ? e.message : String(e)),
  );

  let tokens: AccessTokenProvider | undefined;
  let refresh: RefreshTokenSource | undefined;
  if (access.kind === "anonymous") {
    log(
      "info",
      "the upstream allows anonymous pulls: no credential is requested",
      { upstream: config.upstream },
    );
  } else {
    refresh = await signIn(config, access, tracked, metrics, log, fail);
    const source = refresh;
    tokens = new AccessTokenCache({
      realm: access.realm,
      service: access.service,
      refreshToken: () => source.token(),
      onRefreshRejected: () => source.renew(),
      fetch: tracked,
      onLookup: (hit) => metrics.countTokenLookup(hit),
    });
    metrics.watchRefreshExpiry(() =>
      source.expiresAt === undefined
        ? undefined
        : Math.round((source.expiresAt - Date.now()) / 1000)
    );
  }

  const ready = (): boolean => {
    const now = Date.now();
    if (now - lastContact > READY_CONTACT_MS) return false;
    if (!refresh) return true;
    return (refresh.expiresAt ?? 0) - now > READY_EXPIRY_MARGIN_MS;
  };

  const probe = setInterval(() => {
    if (Date.now() - lastContact < PROBE_INTERVAL_MS) return;
    tracked(new URL("/v2/", config.upstream), { method: "HEAD" })
      .then((res) => res.body?.cancel())
      .catch(() => log("warn", "the upstream did not answer a health probe"));
  }, PROBE_INTERVAL_MS);
  // Background work never keeps the process alive by itself: under `deno
  // serve` an isolate ends when its server has drained.
  probe.unref();

  const cache = config.cacheBytes > 0
    ? new ContentCache({
      maxBytes: config.cacheBytes,
      ttlMs: config.cacheTtlMs,
    })
    : undefined;
  if (cache) metrics.watchContentBytes(() => cache.bytes);

  const handler = createHandler({
    upstream: config.upstream,
    defaultRoute: config.defaultRoute,
    routes: config.routes,
    ...(tokens ? { tokens } : {}),
    mode: config.authMode,
    masqueradeDomain: config.masqueradeDomain,
    ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
    trustForwarded: config.trustForwarded,
    ...(config.tokenSecret
      ? { grantSecret: new TextEncoder().encode(config.tokenSecret) }
      : {}),
    headerTimeoutMs: config.headerTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    ...(cache ? { cache } : {}),
    metrics,
    ready,
    onRequest: (r: RequestRecord) => {
      // Any answer from the upstream shows it is reachable; reading that
      // from the record keeps a wrapper off the per-request fetch.
      if (r.upstreamStatus !== undefined) lastContact = Date.now();
      const level = r.status >= 500 ? "warn" : "info";
      if (enabled(level, config.logLevel)) {
        log(level, "request", requestLogFields(r));
      }
    },
  });

  const refreshLoop = startRefreshLoop(refresh);
  return {
    handler,
    log,
    stop(): void {
      clearInterval(probe);
      refreshLoop.stop();
    },
  };
}

async function signIn(
  config: Config,
  access: { realm: string; service: string },
  fetchFn: typeof fetch,
  metrics: ProxyMetrics,
  log: (level: LogLevel, msg: string, fields?: LogFields) => void,
  fail: (code: number, message: string) => never,
): Promise<RefreshTokenSource> {
  // The Azure SDK is loaded only when a credential is needed: it is most of
  // the proxy's idle memory, and an anonymous upstream never uses it.
  let entra: typeof import("./src/entra.ts");
  try {
    entra = await import("./src/entra.ts");
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0]! : String(e);
    return fail(
      1,
      `Could not load the Azure SDK (@azure/identity) to sign in: ${why}; ` +
        "run the proxy once with access to the npm registry, or use a " +
        "compiled binary or the container image.",
    );
  }
  const { entraTokenProvider, explainSignInFailure } = entra;
  let getEntraToken;
  try {
    getEntraToken = entraTokenProvider(config.entraScope);
  } catch (e) {
    // The credential's constructor checks AZURE_TOKEN_CREDENTIALS and kin.
    const why = e instanceof Error ? e.message.split("\n")[0]! : String(e);
    return fail(2, `The Azure credential settings are invalid: ${why}.`);
  }

  const source = new RefreshTokenSource({
    exchangeUrl: new URL("/oauth2/exchange", access.realm),
    service: access.service,
    getEntraToken,
    fetch: fetchFn,
    onRenewal: (event) => {
      metrics.countRenewal(event.ok);
      if (event.ok) {
        log("info", "refresh token renewed", {
          expires_at: new Date(event.expiresAt ?? 0).toISOString(),
        });
      } else {
        if (event.expiresAt === undefined) {
          log("warn", "refresh token request failed", { error: event.error });
        } else {
          log(
            "warn",
            "refresh token renewal failed; keeping the current token",
            {
              error: event.error,
              current_expires_at: new Date(event.expiresAt).toISOString(),
            },
          );
        }
      }
    },
  });

  try {
    await source.renew();
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const signIn = why.startsWith("Entra ID sign-in failed: ");
    fail(
      1,
      signIn
        ? explainSignInFailure(why.slice("Entra ID sign-in failed: ".length))
        : `The registry refused the Entra ID token (${why}); check that the identity has the AcrPull role (or a repository reader role) on ${config.upstream}.`,
    );
  }
  log("info", "signed in", {
    service: access.service,
    scope: config.entraScope,
  });
  return source;
}

function startRefreshLoop(
  source: RefreshTokenSource | undefined,
): { stop(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const step = async (): Promise<void> => {
    if (!source || stopped) return;
    const wait = await source.tick();
    if (!stopped) timer = setTimeout(step, wait).unref();
  };
  if (source) timer = setTimeout(step, 1000).unref();
  return {
    stop(): void {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

function effectiveConfig(config: Config): LogFields {
  return {
    upstream: config.upstream,
    default_route: `${config.defaultRoute.registry}=${
      config.defaultRoute.prefix || "(no prefix)"
    }`,
    routes: config.routes.map((r) => `${r.registry}=${r.prefix}`).join(","),
    listen: `${config.listen.hostname}:${config.listen.port}`,
    auth_mode: config.authMode,
    masquerade_domain: config.masqueradeDomain,
    public_url: config.publicUrl,
    entra_scope: config.entraScope,
    trust_forwarded: config.trustForwarded,
    tls: config.tls !== undefined,
    token_secret: config.tokenSecret ? "set" : "random",
    header_timeout_ms: config.headerTimeoutMs,
    idle_timeout_ms: config.idleTimeoutMs,
    cache_bytes: config.cacheBytes,
    cache_ttl_ms: config.cacheTtlMs,
    shutdown_grace_ms: config.shutdownGraceMs,
  };
}

async function readPem(path: string, flag: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Error ? e.name : "error";
    return await exitOnBadConfig(
      `cannot read ${flag} ${path} (${why}); check the path and grant --allow-read=${path}`,
    );
  }
}

/**
 * Warns when the proxy listens beyond loopback: it pulls with its own
 * identity for anyone who reaches it.
 *
 * @param log Where the warning goes.
 * @param hostname The address listened on.
 */
export function warnBeyondLoopback(
  log: App["log"],
  hostname: string,
): void {
  if (isLoopback(hostname)) return;
  log(
    "warn",
    "listening beyond loopback: anyone who reaches this port can pull what the identity can pull",
    { hostname },
  );
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" ||
    hostname.startsWith("127.");
}

/** Lines held for one write, and how to send them now. */
interface LineBatch {
  /** Queues a line; it is written within one turn of the event loop. */
  add(line: string): void;
  /** Writes every queued line now. */
  flush(): void;
  /** Writes the queued lines and this one now. */
  write(line: string): void;
}

// One write per turn of the event loop (or per 256 lines) instead of one
// per request: a write to a pipe costs several microseconds, as much as a
// fifth of a cached request. A process killed outright loses at most the
// lines of that turn. A closed stream drops lines rather than the process.
function batchedLines(
  stream: { writeSync(p: Uint8Array): number },
): LineBatch {
  const encoder = new TextEncoder();
  let pending: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;

  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const bytes = encoder.encode(pending.join("\n") + "\n");
    pending = [];
    try {
      let at = 0;
      while (at < bytes.length) at += stream.writeSync(bytes.subarray(at));
    } catch {
      // Nowhere left to report it.
    }
  };

  return {
    add(line: string): void {
      pending.push(line);
      if (pending.length >= 256) flush();
      else timer ??= setTimeout(flush, 0);
    },
    flush,
    write(line: string): void {
      pending.push(line);
      flush();
    },
  };
}

async function write(
  stream: { write(p: Uint8Array): Promise<number> },
  text: string,
): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  while (at < bytes.length) at += await stream.write(bytes.subarray(at));
}
