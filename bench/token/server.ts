/**
 * One side of the `/token` benchmark, run as its own process so load, fake
 * and proxy do not share an isolate:
 *
 * - `fake`: the in-memory ACR stand-in (token service) on `--port`, with
 *   `--latency-ms` added to every token call.
 * - `cached`: the proxy handler with its real token cache.
 * - `forward`: the same handler, but every token request goes to the token
 *   service (what a proxy without a cache, like the Go tool, does).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { FakeAcr } from "../../contrib/demo/fake_acr.ts";
import { createHandler } from "../../src/handler.ts";
import {
  AccessTokenCache,
  type AccessTokenProvider,
  RefreshTokenSource,
} from "../../src/tokens.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    role: { type: "string" },
    port: { type: "string" },
    upstream: { type: "string", default: "" },
    "latency-ms": { type: "string", default: "0" },
  },
});
const port = Number(values.port);
const quiet = { hostname: "127.0.0.1", port, onListen(): void {} };

if (values.role === "fake") {
  // An optional delay on token calls stands in for the network round trip
  // to a real registry's token service; loopback answers in microseconds.
  const latency = Number(values["latency-ms"]);
  const acr = new FakeAcr();
  Deno.serve(quiet, async (req) => {
    if (latency > 0 && new URL(req.url).pathname.startsWith("/oauth2/")) {
      await new Promise((r) => setTimeout(r, latency));
    }
    return acr.handle(req);
  });
} else {
  const upstream = values.upstream!;
  const service = "fakeacr.azurecr.io";
  const refresh = new RefreshTokenSource({
    exchangeUrl: `${upstream}/oauth2/exchange`,
    service,
    getEntraToken: () =>
      Promise.resolve({ token: "bench", expiresAt: Date.now() + 3_600_000 }),
  });
  await refresh.renew();
  const realm = `${upstream}/oauth2/token`;
  const tokens: AccessTokenProvider = values.role === "cached"
    ? new AccessTokenCache({
      realm,
      service,
      refreshToken: () => refresh.token(),
    })
    : forwarding(realm, service, refresh);
  Deno.serve(
    quiet,
    createHandler({
      upstream,
      defaultRoute: { registry: "docker.io", prefix: "hub" },
      tokens,
    }).fetch,
  );
}

function forwarding(
  realm: string,
  service: string,
  refresh: RefreshTokenSource,
): AccessTokenProvider {
  return {
    async get(scopes): Promise<{ token: string; cached: boolean }> {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        service,
        refresh_token: await refresh.token(),
      });
      for (const s of scopes) form.append("scope", s);
      const res = await fetch(realm, { method: "POST", body: form });
      const body = await res.json();
      return { token: body.access_token, cached: false };
    },
    invalidate(): void {},
  };
}
