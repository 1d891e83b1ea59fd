/**
 * Compact JWS helpers for the fakes: ES256 tokens the real registry
 * accepts (libtrust `kid`), HS256 tokens for the fake Entra ID, and
 * unverified decoding for inspecting what a client sent.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Base64url without padding.
 *
 * @param bytes raw bytes
 * @returns encoded text
 */
export function b64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Decodes base64url (padding optional).
 *
 * @param text encoded text
 * @returns raw bytes
 */
export function unb64url(text: string): Uint8Array {
  const std = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(std + "=".repeat((4 - std.length % 4) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The libtrust key ID docker/distribution matches a JWT `kid` against:
 * SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes, base32,
 * 12 groups of 4 joined by colons.
 *
 * @param spkiDer DER-encoded public key
 * @returns the key ID, e.g. `75A4:DYI5:...`
 */
export async function libtrustKeyId(spkiDer: Uint8Array): Promise<string> {
  const hash = new Uint8Array(
    await crypto.subtle.digest("SHA-256", spkiDer as BufferSource),
  );
  const text = base32(hash.slice(0, 30));
  return text.match(/.{4}/g)!.join(":");
}

/** Claims object of a JWT. */
export type Claims = Record<string, unknown>;

/** A decoded (not verified) JWT. */
export interface DecodedJwt {
  /** JOSE header. */
  header: Claims;
  /** Claims. */
  payload: Claims;
}

/**
 * Decodes a compact JWS without checking its signature.
 *
 * @param token compact JWS
 * @returns header and payload, or null when malformed
 */
export function decodeJwt(token: string): DecodedJwt | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    return {
      header: JSON.parse(decoder.decode(unb64url(parts[0]!))),
      payload: JSON.parse(decoder.decode(unb64url(parts[1]!))),
    };
  } catch {
    return null;
  }
}

/** An ES256 signing key with its libtrust key ID. */
export interface Es256Signer {
  /** Private key (ECDSA P-256). */
  privateKey: CryptoKey;
  /** Public key. */
  publicKey: CryptoKey;
  /** libtrust key ID of the public key. */
  kid: string;
}

/**
 * Signs claims as an ES256 compact JWS with the signer's `kid`.
 *
 * @param signer key and kid
 * @param claims JWT claims
 * @returns compact JWS
 */
export async function signEs256(
  signer: Es256Signer,
  claims: Claims,
): Promise<string> {
  const header = { typ: "JWT", alg: "ES256", kid: signer.kid };
  const input = b64url(encoder.encode(JSON.stringify(header))) + "." +
    b64url(encoder.encode(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    signer.privateKey,
    encoder.encode(input),
  );
  return input + "." + b64url(new Uint8Array(sig));
}

/**
 * Verifies an ES256 compact JWS and returns its claims (no time checks).
 *
 * @param publicKey ECDSA P-256 public key
 * @param token compact JWS
 * @returns claims, or null when malformed or the signature is wrong
 */
export async function verifyEs256(
  publicKey: CryptoKey,
  token: string,
): Promise<Claims | null> {
  const decoded = decodeJwt(token);
  if (!decoded || decoded.header.alg !== "ES256") return null;
  const [h, p, s] = token.split(".");
  const ok = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    publicKey,
    unb64url(s!) as BufferSource,
    encoder.encode(h + "." + p),
  ).catch(() => false);
  return ok ? decoded.payload : null;
}

/**
 * Imports an HMAC-SHA256 key from raw bytes.
 *
 * @param secret key bytes
 * @returns a key usable for sign and verify
 */
export function hmacKey(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    secret as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/**
 * Signs claims as an HS256 compact JWS.
 *
 * @param key HMAC key
 * @param claims JWT claims
 * @returns compact JWS
 */
export async function signHs256(
  key: CryptoKey,
  claims: Claims,
): Promise<string> {
  const header = { typ: "JWT", alg: "HS256" };
  const input = b64url(encoder.encode(JSON.stringify(header))) + "." +
    b64url(encoder.encode(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign("HMAC", key, encoder.encode(input));
  return input + "." + b64url(new Uint8Array(sig));
}

/**
 * Verifies an HS256 compact JWS and returns its claims (no time checks).
 *
 * @param key HMAC key
 * @param token compact JWS
 * @returns claims, or null when malformed or the signature is wrong
 */
export async function verifyHs256(
  key: CryptoKey,
  token: string,
): Promise<Claims | null> {
  const decoded = decodeJwt(token);
  if (!decoded || decoded.header.alg !== "HS256") return null;
  const [h, p, s] = token.split(".");
  const ok = await crypto.subtle.verify(
    "HMAC",
    key,
    unb64url(s!) as BufferSource,
    encoder.encode(h + "." + p),
  ).catch(() => false);
  return ok ? decoded.payload : null;
}

/**
 * Current time in whole seconds since the epoch.
 *
 * @returns epoch seconds
 */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
