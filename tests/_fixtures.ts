/**
 * Shared test fixtures: the in-memory fake ACR wired to the handler through
 * an injected fetch, so handler tests need no sockets.
 *
 * @module
 */

import { FakeAcr, type FakeAcrOptions } from "../contrib/demo/fake_acr.ts";
import {
  createHandler,
  type HandlerOptions,
  type ProxyHandler,
} from "../src/handler.ts";
import { AccessTokenCache, RefreshTokenSource } from "../src/tokens.ts";

/** The fake's registry origin inside tests. */
export const UPSTREAM = "https://fakeacr.azurecr.io";
/** The fake's storage origin inside tests. */
export const STORAGE = "https://fakeacr.blob.core.windows.net";

/** A handler in front of a fake ACR, with the pieces exposed. */
export interface Rig {
  acr: FakeAcr;
  handler: ProxyHandler;
  refresh: RefreshTokenSource;
  tokens: AccessTokenCache;
  /** The fetch the handler uses; it routes to the fake's two origins. */
  upstreamFetch: typeof fetch;
}

/**
 * Builds a fake ACR and a handler in front of it.
 *
 * @param handlerOptions Overrides for the handler.
 * @param acrOptions Overrides for the fake.
 * @returns The rig.
 */
export async function makeRig(
  handlerOptions: Partial<HandlerOptions> = {},
  acrOptions: FakeAcrOptions = {},
): Promise<Rig> {
  const acr = new FakeAcr({ storageOrigin: STORAGE, ...acrOptions });
  const upstreamFetch =
    ((input: Request | URL | string, init?: RequestInit) => {
      const req = new Request(input, init);
      const origin = new URL(req.url).origin;
      if (origin === UPSTREAM) return acr.handle(req);
      if (origin === STORAGE) return acr.storage(req);
      return Promise.reject(new TypeError(`test fetch refused ${origin}`));
    }) as typeof fetch;

  const refresh = new RefreshTokenSource({
    exchangeUrl: `${UPSTREAM}/oauth2/exchange`,
    service: "fakeacr.azurecr.io",
    getEntraToken: () =>
      Promise.resolve({
        token: "entra-token",
        expiresAt: Date.now() + 3600_000,
      }),
    fetch: upstreamFetch,
  });
  await refresh.renew();
  const tokens = new AccessTokenCache({
    realm: `${UPSTREAM}/oauth2/token`,
    service: "fakeacr.azurecr.io",
    refreshToken: () => refresh.token(),
    onRefreshRejected: () => refresh.renew(),
    fetch: upstreamFetch,
  });
  const handler = createHandler({
    upstream: UPSTREAM,
    defaultRoute: { registry: "docker.io", prefix: "hub" },
    tokens,
    fetch: upstreamFetch,
    mode: "challenge",
    ...handlerOptions,
  });
  return { acr, handler, refresh, tokens, upstreamFetch };
}

/**
 * Hex SHA-256 digest of bytes, in `sha256:<hex>` form.
 *
 * @param bytes The bytes.
 * @returns The digest.
 */
export async function digestOf(
  bytes: Uint8Array | ArrayBuffer,
): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", new Uint8Array(bytes));
  return "sha256:" +
    [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join(
      "",
    );
}
