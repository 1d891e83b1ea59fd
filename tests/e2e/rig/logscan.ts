/**
 * Reading the proxy's log (text `key=value` or JSON lines) and scanning
 * it for anything that must never be logged: JWT-shaped strings, SAS
 * query parameters, `Bearer`/`Basic` credentials, proxy-issued tokens,
 * any exact credential the fakes handed out, and upstream repository
 * names (`hub/...`) in fields that describe the client's side.
 *
 * @module
 */

/** One line of a proxy log. */
export interface LogLine {
  /** The line as printed. */
  raw: string;
  /** How it parsed: `text`, `json`, or `other` (not a log line). */
  format: "text" | "json" | "other";
  /** Its fields (values as strings), empty for `other`. */
  fields: Record<string, string>;
}

/** One `msg=request` line. */
export interface LoggedRequest {
  /** `method` */
  method: string;
  /** `kind` (`manifests`, `blobs`, `token`, `ping`, ...) */
  kind: string;
  /** `name` (client-side repository) */
  name: string;
  /** `route` (registry of the route) */
  route: string;
  /** `status` */
  status: number;
  /** The raw line. */
  line: string;
}

const TEXT_FIELD = /([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)/g;

/**
 * Parses one log line in either format.
 *
 * @param raw the line
 * @returns its fields
 */
export function parseLogLine(raw: string): LogLine {
  const trimmed = raw.trim();
  if (trimmed.startsWith("{")) {
    try {
      const value = JSON.parse(trimmed);
      if (value && typeof value === "object" && !Array.isArray(value)) {
        const fields: Record<string, string> = {};
        for (const [k, v] of Object.entries(value)) {
          fields[k] = typeof v === "string" ? v : JSON.stringify(v);
        }
        return { raw, format: "json", fields };
      }
    } catch {
      // not JSON after all
    }
  }
  if (/^ts=\S+ level=/.test(trimmed)) {
    const fields: Record<string, string> = {};
    for (const m of trimmed.matchAll(TEXT_FIELD)) {
      const v = m[2]!;
      fields[m[1]!] = v.startsWith('"') ? JSON.parse(v) : v;
    }
    return { raw, format: "text", fields };
  }
  return { raw, format: "other", fields: {} };
}

/**
 * Parses every non-empty line of a log.
 *
 * @param log the whole log
 * @returns the lines
 */
export function parseLog(log: string): LogLine[] {
  return log.split("\n").filter((l) => l.trim() !== "").map(parseLogLine);
}

/**
 * The request lines of a proxy log, text or JSON.
 *
 * @param log log text
 * @returns one entry per request line
 */
export function loggedRequests(log: string): LoggedRequest[] {
  return parseLog(log).filter((l) => l.fields.msg === "request").map((l) => ({
    method: l.fields.method ?? "",
    kind: l.fields.kind ?? "",
    name: l.fields.name ?? "",
    route: l.fields.route ?? "",
    status: Number(l.fields.status),
    line: l.raw,
  }));
}

/** What a leak scan looks for besides the fixed patterns. */
export interface LeakScanOptions {
  /** Exact credentials handed out during the run. */
  secrets: readonly string[];
  /** Upstream cache-rule prefixes (`hub`, `ghcr`). */
  prefixes: readonly string[];
  /**
   * Prefix of each route (`docker.io` -> `hub`). A request line's `name`
   * is what the client asked for; it is a leak only when it carries its
   * own route's prefix (a client may well ask for `ghcr/org/app` on the
   * Docker Hub route). Lines without a known route check every prefix.
   */
  routePrefixes?: Readonly<Record<string, string>>;
  /**
   * Fields documented as upstream detail, where a prefix may appear
   * (the start-up line's `default_route` and `routes`).
   */
  upstreamFields?: readonly string[];
}

/** Fields of the start-up line that describe the upstream side. */
export const UPSTREAM_FIELDS: readonly string[] = [
  "upstream",
  "default_route",
  "routes",
];

/** The routes the e2e rig configures and their cache-rule prefixes. */
export const ROUTE_PREFIXES: Readonly<Record<string, string>> = {
  "docker.io": "hub",
  "ghcr.io": "ghcr",
};

const PATTERNS: readonly [string, RegExp][] = [
  ["JWT", /eyJ[\w-]+\.[\w-]+\.[\w-]+/],
  ["SAS query", /\b(?:sig|se)=[^&\s"]/],
  ["credential", /\b(?:Bearer|Basic)\s+(?![a-z_]+=")[\w.~+/-]{8,}/i],
  ["proxy token", /\bacp1\.[\w-]{8,}/],
];

/**
 * Finds every line of a proxy log that leaks a credential or an upstream
 * name. Each finding names the rule and quotes the line.
 *
 * @param log the whole log
 * @param options secrets and prefixes to look for
 * @returns findings, empty when the log is clean
 */
export function findLeaks(log: string, options: LeakScanOptions): string[] {
  const pieces = new Set<string>();
  for (const secret of options.secrets) {
    if (secret.length >= 16) pieces.add(secret);
    // each part of a JWT is a leak on its own (a truncated token still
    // gives its claims or its signature away)
    for (const part of secret.split(".")) {
      if (part.length >= 16) pieces.add(part);
    }
  }
  const secretRe = pieces.size
    ? new RegExp([...pieces].map(escapeRegExp).join("|"))
    : null;
  const upstreamFields = new Set(options.upstreamFields ?? UPSTREAM_FIELDS);
  const prefixPattern = (prefixes: readonly string[]): RegExp | null =>
    prefixes.length
      ? new RegExp(
        `(?:^|[^a-z0-9._/-])(?:${
          prefixes.map(escapeRegExp).join("|")
        })/[a-z0-9]`,
      )
      : null;
  const prefixRe = prefixPattern(options.prefixes);
  const routePrefixes = options.routePrefixes ?? ROUTE_PREFIXES;
  const out: string[] = [];
  const show = (raw: string): string =>
    raw.length > 240 ? `${raw.slice(0, 240)}...` : raw;
  for (const line of parseLog(log)) {
    for (const [rule, re] of PATTERNS) {
      if (re.test(line.raw)) out.push(`${rule}: ${show(line.raw)}`);
    }
    const piece = secretRe?.exec(line.raw)?.[0];
    if (piece) {
      out.push(`issued credential ${piece.slice(0, 12)}...: ${show(line.raw)}`);
    }
    if (!prefixRe) continue;
    if (line.format === "other") {
      if (prefixRe.test(line.raw)) out.push(`upstream name: ${show(line.raw)}`);
      continue;
    }
    const own = routePrefixes[line.fields.route ?? ""];
    const nameRe = own === undefined ? prefixRe : prefixPattern([own]);
    for (const [k, v] of Object.entries(line.fields)) {
      const re = k === "name" ? nameRe : prefixRe;
      if (!upstreamFields.has(k) && re?.test(v)) {
        out.push(`upstream name in ${k}: ${show(line.raw)}`);
      }
    }
  }
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
