/**
 * Helpers for the redaction tests: a handler whose request records are
 * formatted into log lines (text and JSON, as the program writes them),
 * token-shaped test secrets, and the scan for secrets in logs and bodies.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { HandlerOptions, ProxyHandler } from "../../src/handler.ts";
import { formatLine, requestLogFields } from "../../src/log.ts";
import { makeProxy, type ProxyUnderTest } from "./proxy.ts";

/** A JWT-shaped string anywhere in a text. */
export const JWT_RE = /eyJ[\w-]+\.[\w-]+\.[\w-]+/;

/**
 * Builds an unsigned JWT-shaped token with the given claims.
 *
 * @param claims The payload.
 * @returns `header.payload.signature`, base64url.
 */
export function fakeJwt(claims: Record<string, unknown>): string {
  const b64 = (v: unknown): string =>
    btoa(JSON.stringify(v)).replace(/\+/g, "-").replace(/\//g, "_")
      .replace(/=+$/, "");
  return `${b64({ alg: "RS256", typ: "JWT" })}.${b64(claims)}.c2lnbmF0dXJl`;
}

/** A proxy whose every finished request becomes a text and a JSON line. */
export interface LoggedProxy extends ProxyUnderTest {
  /** Log lines written so far. */
  lines: string[];
  /** Bodies and headers of every answer with status 400 or more. */
  errors: string[];
  /** Sends a request and collects its error body and log lines. */
  send(request: Request): Promise<Response>;
}

/**
 * Builds a proxy that logs like the program does.
 *
 * @param mode The auth mode.
 * @param extra Options overriding the defaults (for example `tokens`).
 * @returns The proxy with its log.
 */
export function loggedProxy(
  mode: "challenge" | "inject",
  extra: Partial<HandlerOptions> = {},
): LoggedProxy {
  const lines: string[] = [];
  const errors: string[] = [];
  const proxy = makeProxy(mode, {
    ...extra,
    onRequest: (r) => {
      const level = r.status >= 500 ? "warn" : "info";
      for (const format of ["text", "json"] as const) {
        lines.push(
          formatLine(format, level, "request", requestLogFields(r), new Date()),
        );
      }
    },
  });
  const handler: ProxyHandler = proxy.handler;
  return {
    ...proxy,
    lines,
    errors,
    async send(request: Request): Promise<Response> {
      const res = await handler.fetch(request);
      const body = await res.text();
      if (res.status >= 400) {
        errors.push(body);
        for (const [k, v] of res.headers) errors.push(`${k}: ${v}`);
      }
      return new Response(res.status === 204 ? null : body, {
        status: res.status,
        headers: res.headers,
      });
    },
  };
}

/**
 * Asserts no token-shaped string, no `sig=` and none of `secrets` appears
 * in any of `texts`.
 *
 * @param texts Log lines or bodies.
 * @param secrets Exact secrets to look for as well.
 */
export function assertNoSecrets(
  texts: readonly string[],
  secrets: readonly string[],
): void {
  for (const text of texts) {
    assert.doesNotMatch(text, JWT_RE, `JWT in: ${text}`);
    assert.ok(!text.includes("sig="), `SAS signature in: ${text}`);
    for (const secret of secrets) {
      assert.ok(!text.includes(secret), `${secret} in: ${text}`);
    }
  }
}
