/**
 * The proxy under test, wired to recording fakes, and the invariants every
 * security test checks on what reached the fakes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { GrantSigner } from "../../src/grant.ts";
import {
  type AuthMode,
  createHandler,
  type HandlerOptions,
  type ProxyHandler,
} from "../../src/handler.ts";
import { isValidName } from "../../src/names.ts";
import {
  MARKER_TOKEN,
  RecordingTokens,
  RecordingUpstream,
  UPSTREAM,
} from "./fakes.ts";

/** The cache-rule prefix every proxy under test uses. */
export const PREFIX = "hub";

/** Public base URL clients use in unit-level requests. */
export const BASE = "http://proxy.test";

/** Key of proxy-issued grants; tests sign grants with it. */
export const GRANT_SECRET: Uint8Array = new Uint8Array(32).fill(7);

/** Every scope the token provider may be asked for. */
export const PULL_SCOPE_RE = /^repository:hub\/[a-z0-9._\/-]+:pull$/;

/** Request headers the proxy may send upstream. */
export const UPSTREAM_HEADERS: ReadonlySet<string> = new Set([
  "accept",
  "accept-encoding",
  "authorization",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "range",
  "user-agent",
]);

/** A proxy handler and the fakes behind it. */
export interface ProxyUnderTest {
  /** The handler. */
  handler: ProxyHandler;
  /** The fake upstream. */
  upstream: RecordingUpstream;
  /** The fake token provider. */
  tokens: RecordingTokens;
  /** The auth mode. */
  mode: AuthMode;
}

/**
 * Builds a proxy for the `hub` prefix (Docker Hub naming) over the fakes.
 *
 * @param mode `challenge` or `inject`.
 * @param extra Options overriding the defaults.
 * @returns The proxy and its fakes.
 */
export function makeProxy(
  mode: AuthMode,
  extra: Partial<HandlerOptions> = {},
): ProxyUnderTest {
  const upstream = new RecordingUpstream();
  const tokens = new RecordingTokens();
  const handler = createHandler({
    upstream: UPSTREAM,
    defaultRoute: { registry: "docker.io", prefix: PREFIX },
    routes: [{ registry: "docker.io", prefix: PREFIX }],
    tokens,
    mode,
    grantSecret: GRANT_SECRET,
    fetch: upstream.fetch,
    ...extra,
  });
  return { handler, upstream, tokens, mode };
}

/**
 * Signs a grant the way the proxy does, for client-side names.
 *
 * @param names Canonical client-side names, e.g. `library/nginx`.
 * @param options Another secret or expiry, to forge bad grants.
 * @returns The bearer token.
 */
export async function signGrant(
  names: readonly string[],
  options: { secret?: Uint8Array; exp?: number; registry?: string } = {},
): Promise<string> {
  const signer = new GrantSigner(options.secret ?? GRANT_SECRET);
  return await signer.sign({
    registry: options.registry ?? "docker.io",
    names: [...names],
    exp: options.exp ?? Math.floor(Date.now() / 1000) + 600,
  });
}

/**
 * Asserts what reached the fakes stayed read-only, pull-only and inside
 * the prefix: only GET/HEAD to the upstream origin under `/v2/hub/` on a
 * valid name, no body, no redirect following, only forwarded headers,
 * the marker token as the only credential, and every scope asked of the
 * token provider a pull on a `hub/` repository.
 *
 * @param proxy The proxy whose fakes to check.
 * @param forbidden Strings (client credentials, cookies) that must not
 * appear anywhere upstream.
 */
export function assertConfined(
  proxy: ProxyUnderTest,
  forbidden: readonly string[] = [],
): void {
  for (const call of proxy.upstream.calls) {
    const where = `${call.method} ${call.url}`;
    assert.ok(
      call.method === "GET" || call.method === "HEAD",
      `upstream saw a ${call.method}: ${where}`,
    );
    const url = new URL(call.url);
    assert.equal(url.origin, UPSTREAM, `wrong host: ${where}`);
    assert.ok(url.pathname.startsWith("/v2/hub/"), `outside prefix: ${where}`);
    const m =
      /^\/v2\/(.+)\/(?:manifests|blobs|referrers)\/[^/]+$|^\/v2\/(.+)\/tags\/list$/
        .exec(url.pathname);
    assert.ok(m, `not a read API path: ${where}`);
    const name = m[1] ?? m[2] ?? "";
    assert.ok(isValidName(name), `upstream name not in grammar: ${where}`);
    assert.equal(call.redirect, "manual", `redirects followed: ${where}`);
    assert.equal(call.hasBody, false, `body sent upstream: ${where}`);
    for (const header of Object.keys(call.headers)) {
      assert.ok(UPSTREAM_HEADERS.has(header), `forwarded ${header}: ${where}`);
    }
    assert.equal(
      call.headers.authorization,
      `Bearer ${MARKER_TOKEN}`,
      `upstream credential is not the proxy's own: ${where}`,
    );
    const text = JSON.stringify(call);
    for (const secret of forbidden) {
      assert.ok(!text.includes(secret), `${secret} reached upstream: ${where}`);
    }
  }
  for (const scopes of proxy.tokens.asked) {
    assert.ok(scopes.length >= 1 && scopes.length <= 16, "scope count");
    for (const scope of scopes) {
      assert.match(scope, PULL_SCOPE_RE, `token provider asked for ${scope}`);
      const name = scope.slice("repository:".length, -":pull".length);
      assert.ok(isValidName(name), `scope name not in grammar: ${scope}`);
      for (const secret of forbidden) {
        assert.ok(!scope.includes(secret), `${secret} reached tokens`);
      }
    }
  }
}
