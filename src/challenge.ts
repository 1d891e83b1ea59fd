/**
 * `WWW-Authenticate` parsing and formatting after RFC 7235 section 4.1:
 * several challenges may share one header, parameter names are
 * case-insensitive, and quoted strings may hold commas and escaped quotes.
 *
 * @module
 */

/** One authentication challenge. */
export interface Challenge {
  /** The scheme, as sent (compare case-insensitively). */
  scheme: string;
  /** Parameters with lower-cased names. */
  params: Record<string, string>;
  /** A token68 value (as in `Basic abc==`), when the challenge has one. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

/**
 * Parses every challenge in a `WWW-Authenticate` value. Malformed tails are
 * dropped rather than thrown: a header is input from the network.
 *
 * @param header The header value.
 * @returns The challenges in order.
 *
 * @example Read an ACR challenge
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseChallenges } from "./challenge.ts";
 * const [c] = parseChallenges(
 *   'Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io"',
 * );
 * assert(c?.params.service === "r.azurecr.io");
 * ```
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  const s = header;
  let i = 0;

  const skip = (chars: RegExp): void => {
    while (i < s.length && chars.test(s[i]!)) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };

  while (i < s.length) {
    skip(/[\s,]/);
    const scheme = token();
    if (!scheme) break;
    const challenge: Challenge = { scheme, params: {} };
    out.push(challenge);
    skip(/[ \t]/);

    const t68 = tryToken68(s, i);
    if (t68) {
      challenge.token68 = t68.value;
      i = t68.end;
      continue;
    }

    while (i < s.length) {
      skip(/[\s,]/);
      const mark = i;
      const name = token();
      skip(/[ \t]/);
      if (!name || s[i] !== "=") {
        i = mark;
        break;
      }
      i++;
      skip(/[ \t]/);
      let value: string;
      if (s[i] === '"') {
        const q = readQuoted(s, i);
        value = q.value;
        i = q.end;
      } else {
        value = token();
      }
      challenge.params[name.toLowerCase()] = value;
      skip(/[ \t]/);
      if (s[i] !== ",") break;
      const next = peekIsNewChallenge(s, i + 1);
      if (next) {
        i++;
        break;
      }
    }
  }
  return out;
}

/**
 * Formats one challenge with every parameter as a quoted string.
 *
 * @param challenge The challenge.
 * @returns The header value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatChallenge } from "./challenge.ts";
 * const v = formatChallenge({ scheme: "Bearer", params: { realm: "x" } });
 * assert(v === 'Bearer realm="x"');
 * ```
 */
export function formatChallenge(challenge: Challenge): string {
  if (challenge.token68 !== undefined) {
    return `${challenge.scheme} ${challenge.token68}`;
  }
  const params = Object.entries(challenge.params)
    .map(([k, v]) => `${k}="${v.replace(/["\\]/g, "\\$&")}"`)
    .join(",");
  return params ? `${challenge.scheme} ${params}` : challenge.scheme;
}

function readQuoted(s: string, start: number): { value: string; end: number } {
  let i = start + 1;
  let value = "";
  while (i < s.length && s[i] !== '"') {
    if (s[i] === "\\" && i + 1 < s.length) i++;
    value += s[i];
    i++;
  }
  return { value, end: Math.min(i + 1, s.length) };
}

function tryToken68(
  s: string,
  start: number,
): { value: string; end: number } | undefined {
  let i = start;
  while (i < s.length && TOKEN68_CHAR.test(s[i]!)) i++;
  if (i === start) return undefined;
  while (s[i] === "=") i++;
  let j = i;
  while (s[j] === " " || s[j] === "\t") j++;
  if (j < s.length && s[j] !== ",") return undefined;
  return { value: s.slice(start, i), end: j };
}

// After a comma: `name=` continues the parameter list, a bare token
// followed by a space or the end starts the next challenge.
function peekIsNewChallenge(s: string, start: number): boolean {
  let i = start;
  while (i < s.length && /[\s,]/.test(s[i]!)) i++;
  const begin = i;
  while (i < s.length && TCHAR.test(s[i]!)) i++;
  if (i === begin) return false;
  while (s[i] === " " || s[i] === "\t") i++;
  return s[i] !== "=";
}
