/**
 * Building upstream requests and fixing up upstream responses so the client
 * only ever sees the proxy: header filtering, and `WWW-Authenticate`,
 * `Location` and `Link` rewriting onto the client-side names.
 *
 * @module
 */

import { formatChallenge, parseChallenges } from "./challenge.ts";
import { parseApiPath, type Route, toClientName } from "./names.ts";
import { toClientScope } from "./scope.ts";

/** Where a response is rewritten to. */
export interface RewriteContext {
  /** The upstream origin, e.g. `https://example.azurecr.io`. */
  upstreamOrigin: string;
  /** The route of the request. */
  route: Route;
  /** The proxy's public base URL, e.g. `http://127.0.0.1:8080`. */
  publicBase: string;
  /** The `ns` the client sent, kept on rewritten URLs. */
  ns: string | undefined;
  /** The service name clients see in challenges. */
  service: string;
  /** The proxy's token realm for this route. */
  realm: string;
  /** For a tag list, the client-side repository name it must carry. */
  tagList?: string;
}

// Request headers that ask for part of an answer, or for it only under a
// condition.
const PARTIAL_REQUEST_HEADERS = [
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "range",
];

// Request headers worth passing upstream. Everything else (cookies,
// forwarding headers, the client's own Authorization) stays behind.
const FORWARDED_REQUEST_HEADERS = [
  "accept",
  ...PARTIAL_REQUEST_HEADERS,
  "user-agent",
];

/**
 * Tells whether a request asks for part of an answer (`Range`) or for it
 * only under a condition (`If-*`), rather than for the whole answer.
 *
 * @param headers The client's request headers.
 * @returns Whether any such header is present.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { asksForPart } from "./rewrite.ts";
 * assert(asksForPart(new Headers({ range: "bytes=0-9" })));
 * assert(!asksForPart(new Headers({ accept: "*\/*" })));
 * ```
 */
export function asksForPart(headers: Headers): boolean {
  return PARTIAL_REQUEST_HEADERS.some((name) => headers.has(name));
}

// RFC 9110 section 7.6.1 hop-by-hop headers, plus ones the proxy sets.
const DROPPED_RESPONSE_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-connection",
  "set-cookie",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "strict-transport-security",
  "alt-svc",
]);

/**
 * Picks the request headers to send upstream.
 *
 * @param headers The client's request headers.
 * @returns A new record (lower-case names) holding only the forwarded ones,
 * asking for an identity encoding so the bytes and `Content-Length` stay as
 * stored. A record, not a `Headers`: fetch takes it in about half the time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { upstreamRequestHeaders } from "./rewrite.ts";
 * const h = upstreamRequestHeaders(
 *   new Headers({ range: "bytes=0-9", cookie: "x" }),
 * );
 * assert(h.range === "bytes=0-9" && !("cookie" in h));
 * ```
 */
export function upstreamRequestHeaders(
  headers: Headers,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = headers.get(name);
    if (value !== null) out[name] = value;
  }
  out["accept-encoding"] = "identity";
  return out;
}

/**
 * Copies upstream response headers for the client, dropping hop-by-hop
 * headers and the ones `Connection` lists, and rewriting
 * `WWW-Authenticate`, `Location` and `Link`.
 *
 * @param upstream The upstream response headers.
 * @param ctx Where to rewrite to.
 * @returns The client's header set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clientResponseHeaders } from "./rewrite.ts";
 * const h = clientResponseHeaders(new Headers({ connection: "close" }), {
 *   upstreamOrigin: "https://r.azurecr.io",
 *   route: { registry: "docker.io", prefix: "hub" },
 *   publicBase: "http://127.0.0.1:8080",
 *   ns: undefined,
 *   service: "registry.docker.io",
 *   realm: "http://127.0.0.1:8080/token",
 * });
 * assert(!h.has("connection"));
 * ```
 */
export function clientResponseHeaders(
  upstream: Headers,
  ctx: RewriteContext,
): Headers {
  const out = new Headers();
  const listed = new Set(
    (upstream.get("connection") ?? "").toLowerCase().split(",").map((s) =>
      s.trim()
    ),
  );
  // forEach, not for-of: Deno's Headers iterator costs ten times as much,
  // and this runs on every upstream answer.
  upstream.forEach((value, name) => {
    if (DROPPED_RESPONSE_HEADERS.has(name) || listed.has(name)) return;
    if (name === "www-authenticate") {
      out.append(name, rewriteChallenge(value, ctx));
    } else if (name === "location") {
      const location = rewriteLocation(value, ctx);
      if (location !== undefined) out.set(name, location);
    } else if (name === "link") {
      const link = rewriteLink(value, ctx);
      if (link) out.set(name, link);
    } else {
      out.append(name, value);
    }
  });
  return out;
}

/**
 * Rewrites an upstream challenge to point at the proxy: the realm becomes
 * the proxy's token endpoint, the service the masquerade name, and each
 * scope is mapped back to client names (scopes outside the prefix are
 * dropped). Non-Bearer challenges are removed.
 *
 * @param value The upstream `WWW-Authenticate` value.
 * @param ctx Where to rewrite to.
 * @returns The client's `WWW-Authenticate` value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rewriteChallenge } from "./rewrite.ts";
 * const v = rewriteChallenge(
 *   'Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io",scope="repository:hub/library/a:pull"',
 *   {
 *     upstreamOrigin: "https://r.azurecr.io",
 *     route: { registry: "docker.io", prefix: "hub" },
 *     publicBase: "http://p",
 *     ns: undefined,
 *     service: "registry.docker.io",
 *     realm: "http://p/token",
 *   },
 * );
 * assert(v.includes('scope="repository:library/a:pull"'));
 * ```
 */
export function rewriteChallenge(value: string, ctx: RewriteContext): string {
  const bearer = parseChallenges(value).find((c) =>
    c.scheme.toLowerCase() === "bearer"
  );
  const params: Record<string, string> = {
    realm: ctx.realm,
    service: ctx.service,
  };
  const scopes = (bearer?.params.scope ?? "").split(" ")
    .map((s) => toClientScope(ctx.route, s))
    .filter((s): s is string => s !== undefined);
  if (scopes.length) params.scope = scopes.join(" ");
  const error = bearer?.params.error;
  if (error && /^[a-z_]{1,40}$/.test(error)) params.error = error;
  return formatChallenge({ scheme: "Bearer", params });
}

/**
 * Rewrites a `Location`: one on the upstream's own host becomes the proxy's
 * URL with the client-side name; one on any other host (blob storage, a
 * data endpoint) passes untouched. A `Location` on the upstream's host that
 * does not map onto a client name is withheld, so clients never learn the
 * upstream's address.
 *
 * @param value The upstream `Location` value.
 * @param ctx Where to rewrite to.
 * @returns The client's `Location` value, or `undefined` to withhold it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rewriteLocation } from "./rewrite.ts";
 * const ctx = {
 *   upstreamOrigin: "https://r.azurecr.io",
 *   route: { registry: "docker.io", prefix: "hub" },
 *   publicBase: "http://p",
 *   ns: undefined,
 *   service: "registry.docker.io",
 *   realm: "http://p/token",
 * };
 * const sas = "https://x.blob.core.windows.net/d?sig=1";
 * assert(rewriteLocation(sas, ctx) === sas);
 * ```
 */
export function rewriteLocation(
  value: string,
  ctx: RewriteContext,
): string | undefined {
  let url: URL;
  try {
    url = new URL(value, ctx.upstreamOrigin);
  } catch {
    return undefined;
  }
  if (url.origin !== ctx.upstreamOrigin) return value;
  return toPublicUrl(url, ctx);
}

/**
 * Rewrites every URI reference in a `Link` header (RFC 8288) that points at
 * the upstream API onto the proxy; links on the upstream's host that do not
 * map onto a client name are dropped.
 *
 * @param value The upstream `Link` value.
 * @param ctx Where to rewrite to.
 * @returns The client's `Link` value, empty when nothing is left.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rewriteLink } from "./rewrite.ts";
 * const v = rewriteLink('</v2/hub/library/a/tags/list?last=b&n=1>; rel="next"', {
 *   upstreamOrigin: "https://r.azurecr.io",
 *   route: { registry: "docker.io", prefix: "hub" },
 *   publicBase: "http://p",
 *   ns: undefined,
 *   service: "registry.docker.io",
 *   realm: "http://p/token",
 * });
 * assert(v === '</v2/library/a/tags/list?last=b&n=1>; rel="next"');
 * ```
 */
export function rewriteLink(value: string, ctx: RewriteContext): string {
  const kept: string[] = [];
  for (const entry of value.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/s.exec(entry);
    if (!m) continue;
    const [, ref = "", params = ""] = m;
    let url: URL;
    try {
      url = new URL(ref, ctx.upstreamOrigin);
    } catch {
      continue;
    }
    if (url.origin !== ctx.upstreamOrigin) {
      kept.push(`<${ref}>${params}`);
      continue;
    }
    const mapped = toPublicUrl(url, ctx);
    if (mapped === undefined) continue;
    // Keep relative references relative, as the upstream sent them.
    const target = ref.startsWith("/")
      ? mapped.slice(ctx.publicBase.length)
      : mapped;
    kept.push(`<${target}>${params}`);
  }
  return kept.join(", ");
}

/**
 * Replaces upstream repository names in an error body with client names,
 * so registry messages do not reveal the prefix.
 *
 * @param text The upstream body.
 * @param route The route.
 * @returns The body with `<prefix>/` removed before names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rewriteErrorBody } from "./rewrite.ts";
 * const out = rewriteErrorBody('{"Name":"hub/library/a"}', {
 *   registry: "docker.io",
 *   prefix: "hub",
 * });
 * assert(out === '{"Name":"library/a"}');
 * ```
 */
export function rewriteErrorBody(text: string, route: Route): string {
  if (!route.prefix) return text;
  const escaped = route.prefix.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  const re = new RegExp(`(^|[^a-z0-9._/-])${escaped}/(?=[a-z0-9])`, "g");
  return text.replace(re, "$1");
}

function toPublicUrl(url: URL, ctx: RewriteContext): string | undefined {
  const api = parseApiPath(url.pathname);
  if (!("name" in api)) return undefined;
  const name = toClientName(ctx.route, api.name);
  if (name === undefined) return undefined;

  const tail = url.pathname.slice(`/v2/${api.name}`.length);
  const query = new URLSearchParams(url.search);
  if (ctx.ns !== undefined) query.set("ns", ctx.ns);
  const search = query.size ? `?${query}` : "";
  return `${ctx.publicBase}/v2/${name}${tail}${search}`;
}
