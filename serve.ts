/**
 * The proxy for `deno serve`, which can run one isolate per core:
 *
 * ```sh
 * deno serve --parallel --host 127.0.0.1 --port 8080 \
 *   --allow-net --allow-env --allow-sys=uid,osRelease \
 *   --allow-run=az --allow-read=$(command -v az) \
 *   serve.ts --upstream-domain example.azurecr.io --upstream-prefix hub
 * ```
 *
 * With a managed identity or another credential that does not run `az`,
 * leave out `--allow-run` and `--allow-read`; `--allow-sys=osRelease` is
 * enough.
 *
 * `deno serve` owns the listener, so some settings work differently here:
 * - Always give `--host`: Deno's default is every interface (the proxy
 *   warns then), and `--listen-address` is ignored (the start-up line
 *   still prints it; the "listening" line has the real address).
 * - TLS flags are refused: run `main.ts` for HTTPS.
 * - At SIGTERM or SIGINT deno serve drains the requests in flight; after
 *   `--shutdown-grace` the proxy ends it, as `main.ts` does. A second
 *   SIGTERM ends it at once (that is deno serve's own).
 * - Each isolate signs in and keeps its own refresh token, token cache and
 *   content cache (one token exchange per core at start), and answers
 *   `/metrics` and `/readyz` for itself: a scrape sees one isolate.
 * - In challenge mode every isolate must accept the tokens the others
 *   issue: set `ACR_CACHE_PROXY_TOKEN_SECRET`, or use `--auth-mode inject`.
 *
 * @module
 */

import {
  createApp,
  exitOnBadConfig,
  readConfig,
  warnBeyondLoopback,
} from "./main.ts";

const config = await readConfig(Deno.args);
if (config.authMode === "challenge" && !config.tokenSecret) {
  await exitOnBadConfig(
    "under deno serve, whose isolates must accept each other's tokens, challenge mode needs ACR_CACHE_PROXY_TOKEN_SECRET (generate one with `openssl rand -hex 32`), or use --auth-mode inject",
  );
}
if (config.tls) {
  await exitOnBadConfig(
    "under deno serve the proxy cannot serve TLS (--tls-cert and --tls-key would be ignored): run main.ts for HTTPS, or put a TLS terminator in front",
  );
}
const app = await createApp(config);

// deno serve drains the requests in flight at SIGTERM with no time limit;
// the grace period bounds that as it does for main.ts. The timer does not
// keep a drained isolate alive.
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => {
    app.log("info", "shutting down", {
      signal,
      grace_ms: config.shutdownGraceMs,
    });
    app.stop();
    setTimeout(() => {
      app.log("info", "stopped", { how: "grace period over" });
      Deno.exit(0);
    }, config.shutdownGraceMs).unref();
  });
}

export default {
  fetch: app.handler.fetch,
  onListen: (addr: Deno.Addr): void => {
    if (!("hostname" in addr)) return;
    app.log("info", "listening", { address: `${addr.hostname}:${addr.port}` });
    warnBeyondLoopback(app.log, addr.hostname);
  },
} satisfies Deno.ServeDefaultExport;
