/**
 * acr-cache-proxy as a library: a web-standard `Request -> Response`
 * handler that makes an Azure Container Registry cache rule look like an
 * anonymous Docker Hub mirror. It runs on Deno, Node, Bun and workers; the
 * caller brings `fetch` and, for a private registry, a token source.
 *
 * @example Serve a mirror of an anonymous registry with Deno
 * ```ts ignore
 * import { createHandler } from "@acr-cache-proxy/acr-cache-proxy";
 *
 * const handler = createHandler({
 *   upstream: "https://example.azurecr.io",
 *   defaultRoute: { registry: "docker.io", prefix: "hub" },
 *   mode: "inject",
 * });
 * Deno.serve({ hostname: "127.0.0.1", port: 8080 }, handler.fetch);
 * ```
 *
 * @module
 */

export {
  type AuthMode,
  createHandler,
  type HandlerOptions,
  type ProxyHandler,
  type RequestRecord,
} from "./src/handler.ts";
export type { Route } from "./src/names.ts";
export {
  AccessTokenCache,
  type AccessTokenCacheOptions,
  type AccessTokenProvider,
  type EntraToken,
  type EntraTokenProvider,
  RefreshTokenSource,
  type RefreshTokenSourceOptions,
  type RenewalEvent,
  TokenError,
} from "./src/tokens.ts";
export {
  discoverUpstream,
  DiscoveryError,
  type UpstreamAccess,
} from "./src/discover.ts";
export { ProxyMetrics } from "./src/metrics.ts";
export {
  type CachedAnswer,
  ContentCache,
  type ContentCacheOptions,
} from "./src/cache.ts";
