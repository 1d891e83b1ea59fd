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
    const payload = b64url(encoder.encode(JSON.stringify(grant)));
    const sig = await crypto.subtle.sign(
      "HMAC",
      await this.#key,
      encoder.encode(payload),
    );
    return `${PREFIX}${payload}.${b64url(new Uint8Array(sig))}`;
  }

  /**
   * Verifies a token and returns its grant when valid and unexpired.
   *
   * @param token The token a client sent.
   * @param nowSeconds The current time in epoch seconds.
   * @returns The grant, or `undefined`.
   */
  async verify(token: string, nowSeconds: number): Promise<Grant | undefined> {
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
    return grant as Grant;
  }
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
