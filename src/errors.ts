/**
 * Registry-style error responses, shaped as the OCI distribution
 * specification describes: `{"errors":[{"code","message","detail"}]}`.
 *
 * @module
 */

/** Error codes this proxy may answer with, from the OCI and Docker specs. */
export type RegistryErrorCode =
  | "BLOB_UNKNOWN"
  | "DENIED"
  | "DIGEST_INVALID"
  | "MANIFEST_UNKNOWN"
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "PAGINATION_NUMBER_INVALID"
  | "SIZE_INVALID"
  | "TAG_INVALID"
  | "TOOMANYREQUESTS"
  | "UNAUTHORIZED"
  | "UNKNOWN"
  | "UNSUPPORTED";

/** The parts of a registry error a caller chooses. */
export interface RegistryErrorInit {
  /** Extra response headers (for example `Allow` or `WWW-Authenticate`). */
  headers?: HeadersInit;
  /** A JSON value giving more context; never holds a secret. */
  detail?: unknown;
  /** Answer without a body, as a `HEAD` response must. */
  head?: boolean;
}

/** The header every registry answer carries so clients know the API. */
export const API_VERSION_HEADER: readonly [string, string] = [
  "docker-distribution-api-version",
  "registry/2.0",
];

/**
 * Builds a registry-style JSON error response.
 *
 * @param status The HTTP status.
 * @param code The registry error code.
 * @param message One sentence a user can act on.
 * @param init Extra headers, detail, or `head` for a body-less answer.
 * @returns The response.
 *
 * @example Refuse a write
 * ```ts
 * import assert from "node:assert/strict";
 * import { registryError } from "./errors.ts";
 * const res = registryError(405, "UNSUPPORTED", "this mirror is read-only", {
 *   headers: { allow: "GET, HEAD" },
 * });
 * assert(res.status === 405);
 * ```
 */
export function registryError(
  status: number,
  code: RegistryErrorCode,
  message: string,
  init: RegistryErrorInit = {},
): Response {
  const headers = new Headers(init.headers);
  headers.set(...API_VERSION_HEADER);
  headers.set("content-type", "application/json; charset=utf-8");

  const error: Record<string, unknown> = { code, message };
  if (init.detail !== undefined) error.detail = init.detail;
  const body = JSON.stringify({ errors: [error] });

  const bytes = new TextEncoder().encode(body);
  headers.set("content-length", String(bytes.length));
  const response = new Response(init.head ? null : bytes, { status, headers });
  reasons.set(response, `${code}: ${message}`);
  return response;
}

// Why the proxy answered with an error, for its own log line.
const reasons = new WeakMap<Response, string>();

/**
 * Tells why a response made by {@link registryError} was sent.
 *
 * @param response A response.
 * @returns `CODE: message`, or `undefined` for other responses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { errorReason, registryError } from "./errors.ts";
 * const res = registryError(400, "NAME_INVALID", "invalid repository name");
 * assert.equal(errorReason(res), "NAME_INVALID: invalid repository name");
 * ```
 */
export function errorReason(response: Response): string | undefined {
  return reasons.get(response);
}
