/**
 * A small Prometheus text-format exposition (version 0.0.4) for the
 * proxy's counters, gauges and one histogram. Hand-written rather than a
 * client library so the handler stays free of runtime-specific packages.
 *
 * @module
 */

type Labels = Record<string, string>;

/** Upper bounds, in seconds, of the upstream latency histogram buckets. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];

/** Every metric name the proxy exposes. */
export const METRIC_NAMES: readonly string[] = [
  "acr_cache_proxy_requests_total",
  "acr_cache_proxy_response_bytes_total",
  "acr_cache_proxy_upstream_request_duration_seconds",
  "acr_cache_proxy_refresh_token_renewals_total",
  "acr_cache_proxy_token_cache_requests_total",
  "acr_cache_proxy_refresh_token_expiry_seconds",
  "acr_cache_proxy_in_flight_requests",
  "acr_cache_proxy_content_cache_requests_total",
  "acr_cache_proxy_content_cache_bytes",
];

/**
 * The proxy's metrics. Callers record; {@link ProxyMetrics.render} writes
 * the exposition.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProxyMetrics } from "./metrics.ts";
 * const m = new ProxyMetrics();
 * m.countRequest("docker.io", "GET", 200);
 * assert(m.render().includes('status="200"'));
 * ```
 */
export class ProxyMetrics {
  #requests = new Map<string, number>();
  #bytes = new Map<string, number>();
  #renewals = new Map<string, number>();
  #tokenCache = new Map<string, number>();
  #contentCache = new Map<string, number>();
  #contentBytes: (() => number) | undefined;
  #latency = new Map<string, { counts: number[]; sum: number; n: number }>();
  #inFlight = 0;
  #refreshExpiry: (() => number | undefined) | undefined;

  /** Creates the metrics with every result series present at zero. */
  constructor() {
    for (const result of ["success", "failure"]) {
      bump(this.#renewals, { result }, 0);
    }
    for (const result of ["hit", "miss"]) {
      bump(this.#tokenCache, { result }, 0);
      bump(this.#contentCache, { result }, 0);
    }
  }

  /**
   * Counts one answered request.
   *
   * @param route The route's registry, or `-` for none.
   * @param method The HTTP method.
   * @param status The status sent.
   */
  countRequest(route: string, method: string, status: number): void {
    bump(this.#requests, {
      route,
      method: methodClass(method),
      status: String(status),
    });
  }

  /**
   * Adds bytes streamed to clients.
   *
   * @param route The route's registry.
   * @param bytes The number of body bytes sent.
   */
  addBytes(route: string, bytes: number): void {
    bump(this.#bytes, { route }, bytes);
  }

  /**
   * Records how long the upstream took to answer with headers.
   *
   * @param route The route's registry.
   * @param seconds The latency.
   */
  observeUpstream(route: string, seconds: number): void {
    const key = labelKey({ route });
    let h = this.#latency.get(key);
    if (!h) {
      h = { counts: LATENCY_BUCKETS.map(() => 0), sum: 0, n: 0 };
      this.#latency.set(key, h);
    }
    LATENCY_BUCKETS.forEach((le, i) => {
      if (seconds <= le) h.counts[i]!++;
    });
    h.sum += seconds;
    h.n++;
  }

  /**
   * Counts a refresh-token renewal attempt.
   *
   * @param ok Whether it succeeded.
   */
  countRenewal(ok: boolean): void {
    bump(this.#renewals, { result: ok ? "success" : "failure" });
  }

  /**
   * Counts an access-token cache lookup.
   *
   * @param hit Whether it was served from the cache.
   */
  countTokenLookup(hit: boolean): void {
    bump(this.#tokenCache, { result: hit ? "hit" : "miss" });
  }

  /**
   * Counts a content-cache lookup (a fetch by digest).
   *
   * @param hit Whether it was answered from the cache.
   */
  countContentLookup(hit: boolean): void {
    bump(this.#contentCache, { result: hit ? "hit" : "miss" });
  }

  /**
   * Sets how to read the bytes the content cache holds.
   *
   * @param read Returns the bytes held now.
   */
  watchContentBytes(read: () => number): void {
    this.#contentBytes = read;
  }

  /**
   * Changes the number of requests in flight.
   *
   * @param delta +1 when one starts, -1 when it ends.
   */
  trackInFlight(delta: number): void {
    this.#inFlight += delta;
  }

  /**
   * Sets how to read the seconds left on the refresh token.
   *
   * @param read Returns the seconds left, or `undefined` when none is held.
   */
  watchRefreshExpiry(read: () => number | undefined): void {
    this.#refreshExpiry = read;
  }

  /**
   * Writes the exposition.
   *
   * @returns Prometheus text format.
   */
  render(): string {
    const lines: string[] = [];
    family(
      lines,
      METRIC_NAMES[0]!,
      "counter",
      "Requests answered, by route, method class and status.",
      this.#requests,
    );
    family(
      lines,
      METRIC_NAMES[1]!,
      "counter",
      "Response body bytes streamed to clients.",
      this.#bytes,
    );

    const hist = METRIC_NAMES[2]!;
    lines.push(`# HELP ${hist} Time until the upstream answered with headers.`);
    lines.push(`# TYPE ${hist} histogram`);
    for (const [key, h] of this.#latency) {
      const sep = key ? "," : "";
      LATENCY_BUCKETS.forEach((le, i) => {
        lines.push(`${hist}_bucket{${key}${sep}le="${le}"} ${h.counts[i]}`);
      });
      lines.push(`${hist}_bucket{${key}${sep}le="+Inf"} ${h.n}`);
      lines.push(`${hist}_sum{${key}} ${Math.round(h.sum * 1e6) / 1e6}`);
      lines.push(`${hist}_count{${key}} ${h.n}`);
    }

    family(
      lines,
      METRIC_NAMES[3]!,
      "counter",
      "Refresh-token renewal attempts by result.",
      this.#renewals,
    );
    family(
      lines,
      METRIC_NAMES[4]!,
      "counter",
      "Access-token cache lookups by result.",
      this.#tokenCache,
    );

    const expiry = this.#refreshExpiry?.();
    lines.push(
      `# HELP ${METRIC_NAMES[5]} Seconds until the ACR refresh token expires.`,
    );
    lines.push(`# TYPE ${METRIC_NAMES[5]} gauge`);
    if (expiry !== undefined) lines.push(`${METRIC_NAMES[5]} ${expiry}`);

    lines.push(`# HELP ${METRIC_NAMES[6]} Requests being answered now.`);
    lines.push(`# TYPE ${METRIC_NAMES[6]} gauge`);
    lines.push(`${METRIC_NAMES[6]} ${this.#inFlight}`);

    family(
      lines,
      METRIC_NAMES[7]!,
      "counter",
      "Fetches by digest, by whether the content cache answered them.",
      this.#contentCache,
    );

    lines.push(
      `# HELP ${
        METRIC_NAMES[8]
      } Bytes held by the content cache (bodies, keys, headers).`,
    );
    lines.push(`# TYPE ${METRIC_NAMES[8]} gauge`);
    lines.push(`${METRIC_NAMES[8]} ${this.#contentBytes?.() ?? 0}`);
    return lines.join("\n") + "\n";
  }
}

function methodClass(method: string): string {
  return method === "GET" || method === "HEAD" ? method : "other";
}

// Label sets repeat on every request; their formatted form is memoised
// (bounded: label values come from configuration and status codes).
const formattedKeys = new Map<string, string>();

function labelKey(labels: Labels): string {
  let raw = "";
  for (const k in labels) raw += `${k}\u0000${labels[k]}\u0001`;
  let key = formattedKeys.get(raw);
  if (key === undefined) {
    key = Object.entries(labels)
      .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
      .join(",");
    if (formattedKeys.size < 4096) formattedKeys.set(raw, key);
  }
  return key;
}

// Label values escape backslash, double quote and newline.
function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(
    /\n/g,
    "\\n",
  );
}

function bump(map: Map<string, number>, labels: Labels, by = 1): void {
  const key = labelKey(labels);
  map.set(key, (map.get(key) ?? 0) + by);
}

function family(
  lines: string[],
  name: string,
  type: string,
  help: string,
  values: Map<string, number>,
): void {
  lines.push(`# HELP ${name} ${help}`);
  lines.push(`# TYPE ${name} ${type}`);
  for (const [key, value] of values) {
    lines.push(key ? `${name}{${key}} ${value}` : `${name} ${value}`);
  }
}
