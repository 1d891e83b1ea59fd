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
 * Each isolate signs in and keeps its own refresh token and token cache
 * (one extra token exchange per core at start). `deno serve` owns the
 * listen address (`--host`, `--port`), so `--listen-address` is ignored.
 * In challenge mode every isolate must accept the tokens the others issue:
 * set `ACR_CACHE_PROXY_TOKEN_SECRET`, or use `--auth-mode inject`.
 *
 * @module
 */

import { createApp, readConfig } from "./main.ts";

const config = await readConfig(Deno.args);
if (config.authMode === "challenge" && !config.tokenSecret) {
  await Deno.stderr.write(new TextEncoder().encode(
    "acr-cache-proxy: under deno serve --parallel, challenge mode needs ACR_CACHE_PROXY_TOKEN_SECRET (generate one with `openssl rand -hex 32`), or use --auth-mode inject\n",
  ));
  Deno.exit(2);
}
const app = await createApp(config);

export default {
  fetch: app.handler.fetch,
} satisfies Deno.ServeDefaultExport;
