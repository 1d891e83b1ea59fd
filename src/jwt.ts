/**
 * Reading (never verifying) the claims of a JSON Web Token. The proxy only
 * reads expiry times and the tenant of tokens it was handed by a trusted
 * issuer; it never bases an access decision on an unverified claim.
 *
 * @module
 */

/**
 * Decodes the claims of a compact JWS, or returns `undefined` when the
 * string is not one.
 *
 * @param token The token.
 * @returns The claims object, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readJwtClaims } from "./jwt.ts";
 * const body = btoa(JSON.stringify({ exp: 1 })).replace(/=+$/, "");
 * assert(readJwtClaims(`e30.${body}.sig`)?.exp === 1);
 * ```
 */
export function readJwtClaims(
  token: string,
): Record<string, unknown> | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(
      Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)),
    );
    const claims: unknown = JSON.parse(json);
    return claims && typeof claims === "object" && !Array.isArray(claims)
      ? claims as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads a token's `exp` claim as milliseconds since the epoch.
 *
 * @param token The token.
 * @returns The expiry, or `undefined` when absent or not a JWT.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readJwtExpiry } from "./jwt.ts";
 * assert(readJwtExpiry("opaque") === undefined);
 * ```
 */
export function readJwtExpiry(token: string): number | undefined {
  const exp = readJwtClaims(token)?.exp;
  return typeof exp === "number" && Number.isFinite(exp)
    ? exp * 1000
    : undefined;
}
