/**
 * Upstream discovery: how the registry wants to be authenticated, read
 * from its answer to `HEAD /v2/`.
 *
 * @module
 */

import { parseChallenges } from "./challenge.ts";

/** How the upstream is accessed. */
export type UpstreamAccess =
  | {
    /** The upstream answers `/v2/` without credentials. */
    kind: "anonymous";
  }
  | {
    /** The upstream wants Bearer tokens from its realm. */
    kind: "token";
    /** The token endpoint (ACR: `https://<registry>/oauth2/token`). */
    realm: string;
    /** The service name to ask tokens for. */
    service: string;
  };

/** The upstream could not be used; the message says what to check. */
export class DiscoveryError extends Error {
  /**
   * Creates a discovery failure.
   *
   * @param message What went wrong and what to check.
   */
  constructor(message: string) {
    super(message);
    this.name = "DiscoveryError";
  }
}

/**
 * Asks the upstream how to authenticate. A `200` means anonymous pulls are
 * allowed; a `401` must carry a Bearer challenge whose realm is on the
 * upstream's own host (credentials are never sent elsewhere).
 *
 * @param origin The upstream origin, e.g. `https://example.azurecr.io`.
 * @param fetchFn The fetch to use.
 * @returns The access method.
 * @throws {DiscoveryError} When the upstream is unreachable or unusable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { discoverUpstream } from "./discover.ts";
 * const fake = () =>
 *   Promise.resolve(new Response(null, {
 *     status: 401,
 *     headers: {
 *       "www-authenticate":
 *         'Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io"',
 *     },
 *   }));
 * const access = await discoverUpstream("https://r.azurecr.io", fake);
 * assert(access.kind === "token");
 * ```
 */
export async function discoverUpstream(
  origin: string,
  fetchFn: typeof fetch,
): Promise<UpstreamAccess> {
  const base = new URL(origin);
  let res: Response;
  try {
    res = await fetchFn(new URL("/v2/", base), {
      method: "HEAD",
      redirect: "manual",
      signal: AbortSignal.timeout(15_000),
    });
  } catch (e) {
    const why = describeFetchError(e);
    throw new DiscoveryError(
      `Cannot reach ${base.origin}/v2/ (${why}); check --upstream-domain and the network path to the registry.`,
    );
  }
  await res.body?.cancel();

  if (res.ok) return { kind: "anonymous" };
  if (res.status !== 401) {
    throw new DiscoveryError(
      `${base.origin}/v2/ answered ${res.status}, not 200 or 401; check that --upstream-domain names a container registry.`,
    );
  }

  const bearer = parseChallenges(res.headers.get("www-authenticate") ?? "")
    .find((c) => c.scheme.toLowerCase() === "bearer");
  const realm = bearer?.params.realm;
  const service = bearer?.params.service;
  if (!realm || !service) {
    throw new DiscoveryError(
      `${base.origin}/v2/ asked for credentials without a Bearer realm and service; only token authentication (as ACR uses) is supported.`,
    );
  }

  let realmUrl: URL;
  try {
    realmUrl = new URL(realm);
  } catch {
    throw new DiscoveryError(`the upstream's token realm is not a URL`);
  }
  const downgrade = base.protocol === "https:" &&
    realmUrl.protocol !== "https:";
  if (realmUrl.host !== base.host || downgrade) {
    throw new DiscoveryError(
      `the upstream's token realm ${realmUrl.origin} is not on ${base.origin}; refusing to send credentials to another host.`,
    );
  }
  return { kind: "token", realm: realmUrl.href, service };
}

// fetch reports "fetch failed" and keeps the reason (refused, TLS, DNS) in
// its cause chain; the operator needs the reason.
function describeFetchError(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur && depth < 4; depth++) {
    const text = cur instanceof Error ? cur.message : String(cur);
    const line = text.split("\n")[0]!.trim();
    if (line && !parts.includes(line)) parts.push(line);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ") || "unknown error";
}
