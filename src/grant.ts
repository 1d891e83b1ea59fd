/**
 * Tokens this proxy issues to clients in challenge mode. A grant names the
 * route and the client-side repositories it allows pulling, and expires; it
 * is signed with HMAC-SHA-256 so the proxy can tell its own tokens from
 * anything else a client sends. Upstream tokens never reach clients.
 *
 * @module
 */

/** What a proxy-issued token allows. */
export interface Grant {
  /** The route's registry (`docker.io`, `ghcr.io`, ...). */
  registry: string;
  /** Client-side repository names the holder may pull. */
  names: string[];
  /** Expiry in epoch seconds. */
  exp: number;
}

const PREFIX = "acp1.";
const encoder = new TextEncoder();

/**
 * Signs and verifies grants with one HMAC key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GrantSigner } from "./grant.ts";
 * const signer = new GrantSigner(crypto.getRandomValues(new Uint8Array(32)));
 * const token = await signer.sign({ registry: "docker.io", names: ["a"], exp: 2e9 });
 * const grant = await signer.verify(token, 1e9);
 * assert(grant?.names[0] === "a");
 * ```
 */
export class GrantSigner {
  #key: Promise<CryptoKey>;
  // Signing and verifying are the costly part of a warm `/token` or an
  // authorized request; both are memoised, bounded, by exact input.
  #signed = new Map<string, string>();
  #verified = new Map<string, Grant>();

  /**
   * Creates a signer.
   *
   * @param secret At least 32 bytes of key material.
   */
  constructor(secret: Uint8Array) {
    if (secret.length < 32) {
      throw new RangeError("the grant secret must be at least 32 bytes");
    }
    this.#key = crypto.subtle.importKey(
      "raw",
      new Uint8Array(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
  }

  /**
   * Issues a token for a grant.
   *
   * @param grant What the token allows.
   * @returns The token.
   */
  async sign(grant: Grant): Promise<string> {
    const json = JSON.stringify(grant);
    const memo = this.#signed.get(json);
    if (memo) return memo;

    const payload = b64url(encoder.encode(json));
    const sig = await crypto.subtle.sign(
      "HMAC",
      await this.#key,
      encoder.encode(payload),
    );
    const token = `${PREFIX}${payload}.${b64url(new Uint8Array(sig))}`;
    remember(this.#signed, json, token);
    return token;
  }

  /**
   * Verifies a token and returns its grant when valid and unexpired.
   *
   * @param token The token a client sent.
   * @param nowSeconds The current time in epoch seconds.
   * @returns The grant, or `undefined`.
   */
  async verify(token: string, nowSeconds: number): Promise<Grant | undefined> {
    const memo = this.#verified.get(token);
    if (memo) return memo.exp > nowSeconds ? memo : undefined;
    if (!token.startsWith(PREFIX) || token.length > 8192) return undefined;
    const [payload, sig, extra] = token.slice(PREFIX.length).split(".");
    if (!payload || !sig || extra !== undefined) return undefined;

    let ok = false;
    try {
      ok = await crypto.subtle.verify(
        "HMAC",
        await this.#key,
        fromB64url(sig),
        encoder.encode(payload),
      );
    } catch {
      return undefined;
    }
    if (!ok) return undefined;

    const grant = JSON.parse(new TextDecoder().decode(fromB64url(payload)));
    if (typeof grant?.exp !== "number" || grant.exp <= nowSeconds) {
      return undefined;
    }
    remember(this.#verified, token, grant as Grant);
    return grant as Grant;
  }
}

const MEMO_ENTRIES = 1024;

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= MEMO_ENTRIES) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
  map.set(key, value);
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}
