/**
 * Log line formatting for operators: `key=value` text or one JSON object
 * per line. Formatting only; where lines go is the caller's business.
 *
 * @module
 */

import type { LogFormat, LogLevel } from "./config.ts";
import type { RequestRecord } from "./handler.ts";

const LEVELS: Record<LogLevel, number> = {
  debug: 0,
  info: 1,
  warn: 2,
  error: 3,
};

/** Fields of one log line. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/**
 * Tells whether a level is logged under a threshold.
 *
 * @param level The line's level.
 * @param threshold The configured level.
 * @returns Whether to write the line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { enabled } from "./log.ts";
 * assert(!enabled("debug", "info"));
 * ```
 */
export function enabled(level: LogLevel, threshold: LogLevel): boolean {
  return LEVELS[level] >= LEVELS[threshold];
}

/**
 * Formats one log line.
 *
 * @param format `text` or `json`.
 * @param level The line's level.
 * @param msg A short message.
 * @param fields Extra fields; `undefined` values are left out.
 * @param time The timestamp.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatLine } from "./log.ts";
 * const line = formatLine("text", "info", "request", { status: 200 }, new Date(0));
 * assert(line === 'ts=1970-01-01T00:00:00.000Z level=info msg=request status=200');
 * ```
 */
export function formatLine(
  format: LogFormat,
  level: LogLevel,
  msg: string,
  fields: LogFields,
  time: Date,
): string {
  if (format === "json") {
    return JSON.stringify({ ts: time.toISOString(), level, msg, ...fields });
  }
  // One line per request: built by concatenation, the cheapest way here.
  let line = `ts=${time.toISOString()} level=${level} msg=${textValue(msg)}`;
  for (const k in fields) {
    const v = fields[k];
    if (v === undefined) continue;
    line += ` ${k}=${typeof v === "string" ? textValue(v) : v}`;
  }
  return line;
}

const BARE = /^[\w.:/@+\-]+$/;

function textValue(s: string): string {
  return BARE.test(s) ? s : JSON.stringify(s);
}

/**
 * The fields of one request's log line: method, what was asked, the
 * client-side name, route, status, bytes, duration, token cache and
 * content cache results, upstream status and error.
 *
 * @param r The request record.
 * @returns Fields for {@link formatLine}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestLogFields } from "./log.ts";
 * const f = requestLogFields({
 *   method: "GET",
 *   kind: "blobs",
 *   status: 200,
 *   bytes: 5,
 *   durationMs: 1.4,
 * });
 * assert.equal(f.duration_ms, 1);
 * ```
 */
export function requestLogFields(r: RequestRecord): LogFields {
  return {
    method: r.method,
    kind: r.kind,
    name: r.name,
    route: r.route,
    status: r.status,
    bytes: r.bytes,
    duration_ms: Math.round(r.durationMs),
    token_cache: r.cache,
    content_cache: r.content,
    upstream_status: r.upstreamStatus,
    error: r.error,
  };
}
