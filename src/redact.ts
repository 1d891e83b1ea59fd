/**
 * Scrubbing secrets out of text that may reach a log line or a client:
 * JWTs (Entra, ACR and anything shaped like them), SAS signatures and
 * `Bearer`/`Basic` credentials.
 *
 * @module
 */

const PATTERNS: readonly [RegExp, string][] = [
  [/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, "[redacted-jwt]"],
  [/\b(sig|signature|refresh_token|access_token)=[^&\s"']+/gi, "$1=[redacted]"],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, "$1 [redacted]"],
];

/**
 * Replaces secret-shaped substrings with placeholders.
 *
 * @param text Any text.
 * @param secrets Exact strings to remove as well (tokens the caller sent).
 * @returns The text without them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redact } from "./redact.ts";
 * assert.equal(redact("x?se=1&sig=abc"), "x?se=1&sig=[redacted]");
 * ```
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 8) out = out.split(secret).join("[redacted]");
  }
  for (const [re, to] of PATTERNS) out = out.replace(re, to);
  return out;
}
