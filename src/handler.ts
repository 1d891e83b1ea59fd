/**
 * The proxy as one web-standard `Request -> Response` function: routing,
 * validation, name mapping, upstream authorization, streaming, and
 * response fix-ups. Everything it needs from the outside world (fetch,
 * tokens, clock) arrives as options.
 *
 * @module
 */

import { acceptKey, type ContentCache } from "./cache.ts";
import { formatChallenge } from "./challenge.ts";
import { Deadlines } from "./deadlines.ts";
import { API_VERSION_HEADER, errorReason, registryError } from "./errors.ts";
import { type Grant, GrantSigner } from "./grant.ts";
import type { ProxyMetrics } from "./metrics.ts";
import {
  type ApiPath,
  canonicalName,
  hasUnsafePathSyntax,
  isDockerHub,
  isDockerHubRegistry,
  isValidDigest,
  isValidRegistryHost,
  isValidTag,
  parseApiPath,
  type Route,
  toUpstreamName,
} from "./names.ts";
import {
  asksForPart,
  clientResponseHeaders,
  type RewriteContext,
  rewriteErrorBody,
  upstreamRequestHeaders,
} from "./rewrite.ts";
import { redact } from "./redact.ts";
import {
  clampToPull,
  MAX_SCOPES,
  parseScopes,
  toUpstreamScope,
} from "./scope.ts";
import { type AccessTokenProvider, TokenError } from "./tokens.ts";

/**
 * How clients authenticate to the proxy. `challenge`: clients fetch a
 * pull-only token from the proxy's `/token` first. `inject`: clients send
 * nothing and the proxy authorizes each request itself.
 */
export type AuthMode = "challenge" | "inject";

/** One request as the operator's log line describes it. */
export interface RequestRecord {
  /** HTTP method. */
  method: string;
  /** What was asked: `manifests`, `blobs`, `tags`, `token`, `ping`, ... */
  kind: string;
  /** Client-side repository name, when there is one. */
  name?: string;
  /** The route's registry, when one was chosen. */
  route?: string;
  /** Status sent to the client. */
  status: number;
  /** Body bytes sent to the client. */
  bytes: number;
  /** Milliseconds from request to the end of the body. */
  durationMs: number;
  /** Whether the upstream token came from the cache. */
  cache?: "hit" | "miss";
  /** Whether a by-digest answer came from the content cache. */
  content?: "hit" | "miss";
  /** Status the upstream answered. */
  upstreamStatus?: number;
  /** Why the request failed, without secrets. */
  error?: string;
}

/** Options for {@link createHandler}. */
export interface HandlerOptions {
  /** Upstream origin, e.g. `https://example.azurecr.io`. */
  upstream: string | URL;
  /** Route for requests without `ns` (Docker's mirrors send none). */
  defaultRoute?: Route;
  /** Routes chosen by the `ns` query parameter. */
  routes?: readonly Route[];
  /** Upstream access tokens; omit when the upstream allows anonymous pulls. */
  tokens?: AccessTokenProvider;
  /** How clients authenticate to the proxy. Default `inject`. */
  mode?: AuthMode;
  /** Service name in the proxy's challenges. Default `registry.docker.io`. */
  masqueradeDomain?: string;
  /** Public base URL of the proxy, overriding the request's host. */
  publicUrl?: string;
  /** Trust `X-Forwarded-Proto` and `X-Forwarded-Host`. Default false. */
  trustForwarded?: boolean;
  /** Key for proxy-issued tokens; share it between instances. Random if unset. */
  grantSecret?: Uint8Array;
  /** Lifetime of proxy-issued tokens in seconds. Default 900. */
  grantTtlSeconds?: number;
  /** The fetch used for every upstream request. */
  fetch?: typeof fetch;
  /** The clock, in epoch milliseconds. */
  now?: () => number;
  /** Longest wait for upstream response headers. Default 30 s. */
  headerTimeoutMs?: number;
  /**
   * Longest pause inside a streamed upstream body, and longest read of a
   * body read whole (manifests, error bodies, tag lists). Default 60 s.
   * 0 sets no pause limit: bodies that stream are then handed to the
   * runtime untouched, which Deno pipes natively (faster, and far less
   * memory), but a stalled upstream then holds its client until the client
   * gives up, and the bytes recorded for the request are the declared
   * length. Bodies read whole are then limited by `headerTimeoutMs`.
   */
  idleTimeoutMs?: number;
  /** Longest request URL accepted. Default 8192. */
  maxUrlLength?: number;
  /** Most request header bytes accepted. Default 16384. */
  maxHeaderBytes?: number;
  /** Where to count requests, bytes and latency. */
  metrics?: ProxyMetrics;
  /**
   * Where manifests and small blobs fetched by digest are kept and served
   * from without asking the upstream. Omit to forward every request.
   */
  cache?: ContentCache;
  /** Readiness for `/readyz`. Default always ready. */
  ready?: () => boolean;
  /** Called once per request when its body has been sent. */
  onRequest?: (record: RequestRecord) => void;
}

/** The handler: a `fetch`-shaped function, as `Deno.serve` and workers take. */
export interface ProxyHandler {
  /**
   * Answers one request.
   *
   * @param request The client's request.
   * @returns The response, its body streamed.
   */
  fetch(request: Request): Promise<Response>;
}

const ALLOW = "GET, HEAD";
const MAX_ERROR_BODY = 64 * 1024;
const MAX_BUFFERED_BODY = 256 * 1024;
const MAX_TAG_LIST = 4 * 1024 * 1024;
// Longer Accept headers are answered but not cached.
const MAX_ACCEPT_KEY = 1024;
// Streamed bodies are read in chunks of at most this size. Every chunk is
// a fresh buffer that only garbage collection frees; small chunks make
// collections come sooner, which halves peak memory while streaming for
// about a fifth more CPU per GiB.
const STREAM_CHUNK = 16 * 1024;

/**
 * Creates the proxy handler. Options are validated once here; a bad option
 * throws a `TypeError` or `RangeError`.
 *
 * @param options The upstream, routes, tokens and policies.
 * @returns The handler.
 *
 * @example Serve a pull-through mirror of an anonymous registry
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHandler } from "./handler.ts";
 * const upstream = (req: Request | URL | string) =>
 *   Promise.resolve(new Response("{}", { status: 200 }));
 * const handler = createHandler({
 *   upstream: "https://example.azurecr.io",
 *   defaultRoute: { registry: "docker.io", prefix: "hub" },
 *   mode: "inject",
 *   fetch: upstream as typeof fetch,
 * });
 * const res = await handler.fetch(new Request("http://localhost/v2/"));
 * assert(res.status === 200);
 * ```
 */
export function createHandler(options: HandlerOptions): ProxyHandler {
  const upstream = new URL(options.upstream);
  if (upstream.protocol !== "https:" && upstream.protocol !== "http:") {
    throw new TypeError(`the upstream must be an http(s) URL: ${upstream}`);
  }
  const upstreamOrigin = upstream.origin;
  const defaultRoute = options.defaultRoute ??
    { registry: "docker.io", prefix: "" };
  const routes = new Map(options.routes?.map((r) => [r.registry, r]));
  const mode = options.mode ?? "inject";
  const service = options.masqueradeDomain ?? "registry.docker.io";
  const publicUrl = options.publicUrl?.replace(/\/+$/, "");
  const fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
  const now = options.now ?? Date.now;
  const headerTimeoutMs = options.headerTimeoutMs ?? 30_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const maxUrlLength = options.maxUrlLength ?? 8192;
  const maxHeaderBytes = options.maxHeaderBytes ?? 16384;
  const grantTtl = options.grantTtlSeconds ?? 900;
  const signer = new GrantSigner(
    options.grantSecret ?? crypto.getRandomValues(new Uint8Array(32)),
  );
  // Checked a few times per timeout: a timeout fires at most an eighth of
  // itself (and never more than a second) late.
  const shortest = Math.min(headerTimeoutMs, idleTimeoutMs || Infinity);
  const deadlines = new Deadlines(Math.min(1000, Math.max(5, shortest / 8)));
  const metrics = options.metrics;
  const cache = options.cache;
  // GETs under way of answers the cache may store, by cache key; each
  // settles with why it failed, if it did.
  const fetching = new Map<string, Promise<string | undefined>>();

  return { fetch: handle };

  async function handle(request: Request): Promise<Response> {
    const started = now();
    const record: RequestRecord = {
      method: request.method,
      kind: "other",
      status: 0,
      bytes: 0,
      durationMs: 0,
    };
    metrics?.trackInFlight(1);

    let response: Response;
    let upstreamAbort: AbortController | undefined;
    try {
      const routed = await dispatch(request, record);
      response = routed.response;
      upstreamAbort = routed.abort;
    } catch (e) {
      record.error = e instanceof Error ? e.name : "error";
      response = registryError(500, "UNKNOWN", "internal proxy error", {
        head: request.method === "HEAD",
      });
    }
    record.status = response.status;
    const reason = record.error ?? errorReason(response);
    if (reason) record.error = reason;

    const done = (bytes: number, error?: string): void => {
      record.bytes = bytes;
      record.durationMs = now() - started;
      if (error) record.error ??= error;
      metrics?.trackInFlight(-1);
      metrics?.countRequest(record.route ?? "-", record.method, record.status);
      if (bytes) metrics?.addBytes(record.route ?? "-", bytes);
      options.onRequest?.(record);
    };
    // Only bodies that stream under an idle limit are watched; everything
    // else is complete, or handed on untouched when there is no limit.
    // Reading `response.body` of those would turn their bytes into a stream
    // that Deno then pumps through JavaScript, so it is not touched.
    if (!upstreamAbort) {
      const length = Number(response.headers.get("content-length"));
      done(request.method === "HEAD" ? 0 : length || 0);
      return response;
    }
    if (!response.body) {
      done(0);
      return response;
    }
    const body = watchBody(response.body, idleTimeoutMs, done, upstreamAbort);
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }

  async function dispatch(
    request: Request,
    record: RequestRecord,
  ): Promise<{ response: Response; abort?: AbortController }> {
    const head = request.method === "HEAD";
    const url = new URL(request.url);
    const path = url.pathname;

    if (request.url.length > maxUrlLength) {
      return reply(
        registryError(414, "UNSUPPORTED", "the request URL is too long", {
          head,
        }),
      );
    }
    if (headerBytes(request.headers) > maxHeaderBytes) {
      return reply(
        registryError(431, "UNSUPPORTED", "the request headers are too large", {
          head,
        }),
      );
    }
    if (request.method !== "GET" && !head) {
      record.kind = "refused";
      return reply(
        registryError(
          405,
          "UNSUPPORTED",
          "this mirror is read-only: only GET and HEAD are served",
          {
            headers: { allow: ALLOW },
          },
        ),
      );
    }
    if (hasBody(request)) {
      await request.body?.cancel();
      return reply(
        registryError(
          413,
          "SIZE_INVALID",
          "GET and HEAD requests must not carry a body",
          { head },
        ),
      );
    }

    if (path === "/healthz") return reply(plain(200, "ok\n", head));
    if (path === "/readyz") {
      const ready = options.ready?.() ?? true;
      return reply(
        plain(ready ? 200 : 503, ready ? "ready\n" : "not ready\n", head),
      );
    }
    if (path === "/metrics") {
      const text = metrics?.render() ?? "";
      return reply(
        plain(200, text, head, "text/plain; version=0.0.4; charset=utf-8"),
      );
    }
    if (path === "/token" || path.startsWith("/token/")) {
      record.kind = "token";
      return reply(await serveToken(request, url, record));
    }
    if (path !== "/v2" && !path.startsWith("/v2/")) {
      return reply(
        registryError(
          404,
          "UNSUPPORTED",
          "not a registry API path: this mirror serves /v2/",
          { head },
        ),
      );
    }

    const ns = url.searchParams.get("ns") ?? undefined;
    const route = selectRoute(ns);
    if (!route) {
      record.kind = parseApiPath(path).kind;
      record.error = `no route for registry ${JSON.stringify(ns)}`;
      return reply(
        registryError(
          404,
          "NAME_UNKNOWN",
          `this mirror has no route for registry ${JSON.stringify(ns)}`,
          {
            head,
            detail: { registry: ns },
          },
        ),
      );
    }
    record.route = route.registry;

    if (hasUnsafePathSyntax(rawPath(request.url))) {
      record.kind = "refused";
      return reply(
        registryError(400, "NAME_INVALID", "invalid repository name", { head }),
      );
    }
    const api = parseApiPath(path);
    record.kind = api.kind;
    if (api.kind === "ping") return reply(await servePing(request, route, url));
    if (api.kind === "catalog" || api.kind === "unknown") {
      return reply(
        registryError(
          404,
          "UNSUPPORTED",
          "this mirror serves manifests, blobs, tags and referrers only",
          { head },
        ),
      );
    }

    const name = canonicalName(route, api.name);
    const upstreamName = name === undefined
      ? undefined
      : toUpstreamName(route, name);
    if (name === undefined || upstreamName === undefined) {
      return reply(
        registryError(400, "NAME_INVALID", "invalid repository name", { head }),
      );
    }
    record.name = name;

    if (api.kind !== "tags") {
      const ok = api.kind === "manifests"
        ? isValidTag(api.reference) || isValidDigest(api.reference)
        : isValidDigest(api.reference);
      if (!ok) {
        const code = api.kind === "manifests"
          ? "TAG_INVALID"
          : "DIGEST_INVALID";
        return reply(
          registryError(400, code, "invalid tag or digest", { head }),
        );
      }
    }

    const query = upstreamQuery(api.kind, url.searchParams);
    if (query === undefined) {
      return reply(
        registryError(
          400,
          "PAGINATION_NUMBER_INVALID",
          "n must be an integer from 0 to 10000",
          { head },
        ),
      );
    }

    const base = publicBase(request, url);
    const ctx: RewriteContext = {
      upstreamOrigin,
      route,
      publicBase: base,
      ns,
      service,
      realm: realmFor(base, ns === undefined ? undefined : route),
    };
    if (api.kind === "tags") ctx.tagList = name;

    if (mode === "challenge") {
      const denied = await checkGrant(request, route, name, ctx);
      if (denied) return reply(denied);
    }

    // What a digest names never changes: such answers are served from
    // the cache when they can be, once the client is known to be allowed.
    const stored = cache ? contentKey(request, api, upstreamName) : undefined;
    if (cache && stored) {
      let hit = cache.get(stored.key);
      const pending = hit ? undefined : fetching.get(stored.key);
      const shared = pending && await pending;
      if (pending) hit = cache.get(stored.key);
      metrics?.countContentLookup(hit !== undefined);
      record.content = hit ? "hit" : "miss";
      if (hit) {
        return reply(
          new Response(head ? null : hit.body.slice(), {
            status: 200,
            headers: new Headers(hit.headers as [string, string][]),
          }),
        );
      }
      // The upstream did not answer the fetch this request waited for in
      // time; asking again would double the wait for the same answer.
      if (shared === UPSTREAM_TIMEOUT) {
        record.error = `${shared} (waited on the same fetch)`;
        return reply(upstreamFailure(shared, head));
      }
    }

    // Every part was validated above: the URL is built as one string,
    // which costs one parse (in fetch) instead of three.
    const tail = api.kind === "tags"
      ? "tags/list"
      : `${api.kind}/${api.reference}`;
    const target = `${upstreamOrigin}/v2/${upstreamName}/${tail}${query}`;
    if (!stored || head) {
      return await forward(request, target, upstreamName, ctx, record, stored);
    }

    // Misses for one answer that arrive while a GET fetches it wait for
    // that fetch and are then served from the cache: a node starting many
    // pods of one image asks for the same manifests at once. The wait is
    // bounded because every step of a fetch is (token requests, header
    // timeout, and a deadline on every body read whole). When the answer
    // was not stored, each asks the upstream itself, unless the upstream
    // did not answer in time.
    let settle = (_failure: string | undefined): void => {};
    const pending = new Promise<string | undefined>((resolve) =>
      settle = resolve
    );
    fetching.set(stored.key, pending);
    try {
      return await forward(request, target, upstreamName, ctx, record, stored);
    } finally {
      if (fetching.get(stored.key) === pending) fetching.delete(stored.key);
      settle(record.error);
    }
  }

  function reply(response: Response): { response: Response } {
    return { response };
  }

  function selectRoute(ns: string | undefined): Route | undefined {
    if (ns === undefined) return defaultRoute;
    const host = ns.toLowerCase();
    if (!isValidRegistryHost(host)) return undefined;
    const explicit = routes.get(host);
    if (explicit) return explicit;
    // containerd names Docker Hub `docker.io` on every mirror request;
    // the default route is the Docker Hub route unless one was configured.
    return isDockerHubRegistry(host) && isDockerHub(defaultRoute)
      ? defaultRoute
      : undefined;
  }

  function publicBase(request: Request, url: URL): string {
    if (publicUrl) return publicUrl;
    let proto = url.protocol.slice(0, -1);
    let host = request.headers.get("host") ?? url.host;
    if (options.trustForwarded) {
      const fProto = firstValue(request.headers.get("x-forwarded-proto"));
      const fHost = firstValue(request.headers.get("x-forwarded-host"));
      if (fProto === "http" || fProto === "https") proto = fProto;
      if (fHost) host = fHost;
    }
    if (
      !/^[A-Za-z0-9.\-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(
        host,
      )
    ) {
      host = url.host;
    }
    return `${proto}://${host}`;
  }

  function realmFor(base: string, route: Route | undefined): string {
    return route ? `${base}/token/${route.registry}` : `${base}/token`;
  }

  async function servePing(
    request: Request,
    route: Route,
    url: URL,
  ): Promise<Response> {
    const head = request.method === "HEAD";
    if (mode === "challenge" && !(await readGrant(request))) {
      const ns = url.searchParams.get("ns");
      const realm = realmFor(
        publicBase(request, url),
        ns === null ? undefined : route,
      );
      return challengeResponse(realm, undefined, undefined, head);
    }
    return json(200, {}, head);
  }

  async function readGrant(
    request: Request,
  ): Promise<Grant | undefined> {
    const auth = request.headers.get("authorization");
    if (!auth || !/^bearer /i.test(auth)) return undefined;
    return await signer.verify(auth.slice(7).trim(), Math.floor(now() / 1000));
  }

  async function checkGrant(
    request: Request,
    route: Route,
    name: string,
    ctx: RewriteContext,
  ): Promise<Response | undefined> {
    const grant = await readGrant(request);
    if (
      grant && grant.registry === route.registry && grant.names.includes(name)
    ) {
      return undefined;
    }
    const error = request.headers.has("authorization")
      ? (grant ? "insufficient_scope" : "invalid_token")
      : undefined;
    return challengeResponse(
      ctx.realm,
      `repository:${name}:pull`,
      error,
      request.method === "HEAD",
    );
  }

  function challengeResponse(
    realm: string,
    scope: string | undefined,
    error: string | undefined,
    head: boolean,
  ): Response {
    const params: Record<string, string> = { realm, service };
    if (scope) params.scope = scope;
    if (error) params.error = error;
    const detail = scope
      ? [{ Type: "repository", Name: scope.split(":")[1], Action: "pull" }]
      : undefined;
    return registryError(401, "UNAUTHORIZED", "authentication required", {
      head,
      detail,
      headers: {
        "www-authenticate": formatChallenge({ scheme: "Bearer", params }),
      },
    });
  }

  async function serveToken(
    request: Request,
    url: URL,
    record: RequestRecord,
  ): Promise<Response> {
    const head = request.method === "HEAD";
    const registry = url.pathname === "/token"
      ? undefined
      : url.pathname.slice("/token/".length);
    const route = registry === undefined ? defaultRoute : selectRoute(registry);
    if (!route) {
      return registryError(
        404,
        "NAME_UNKNOWN",
        `this mirror has no route for registry ${JSON.stringify(registry)}`,
        { head },
      );
    }
    record.route = route.registry;

    const raw = url.searchParams.getAll("scope");
    const parsed = parseScopes(raw);
    if (parsed.length > MAX_SCOPES) {
      return registryError(
        400,
        "DENIED",
        `at most ${MAX_SCOPES} scopes may be requested at once`,
        { head },
      );
    }
    const granted = parsed
      .map((s) => (s ? clampToPull(route, s) : undefined))
      .filter((s) => s !== undefined);
    if (parsed.length > 0 && granted.length === 0) {
      return registryError(
        403,
        "DENIED",
        "this mirror grants only pull access to repositories with valid names",
        { head },
      );
    }
    const names = [...new Set(granted.map((s) => s.name))];
    if (names.length === 1) record.name = names[0]!;

    // Fetching the upstream token now surfaces upstream refusals at the
    // token step and warms the cache for the requests that follow.
    if (options.tokens && granted.length > 0) {
      const scopes = granted.map((s) => toUpstreamScope(route, s));
      try {
        const { cached } = await options.tokens.get(scopes);
        record.cache = cached ? "hit" : "miss";
      } catch (e) {
        return tokenFailure(e, record, head);
      }
    }

    // Expiry is rounded to a 60-second step so that identical requests in
    // that step share one signed token (signing is memoised).
    const issuedAt = Math.floor(now() / 1000);
    const exp = Math.ceil((issuedAt + grantTtl) / 60) * 60;
    const token = await signer.sign({ registry: route.registry, names, exp });
    return json(200, {
      token,
      access_token: token,
      expires_in: exp - issuedAt,
      issued_at: new Date(issuedAt * 1000).toISOString(),
    }, head);
  }

  async function forward(
    request: Request,
    target: string,
    upstreamName: string,
    ctx: RewriteContext,
    record: RequestRecord,
    stored?: StoredKey,
  ): Promise<{ response: Response; abort?: AbortController }> {
    const head = request.method === "HEAD";
    const scopes = [`repository:${upstreamName}:pull`];
    const headers = upstreamRequestHeaders(request.headers);

    let token: string | undefined;
    const authorize = async (): Promise<Response | undefined> => {
      if (!options.tokens) return undefined;
      try {
        const got = await options.tokens.get(scopes);
        token = got.token;
        record.cache ??= got.cached ? "hit" : "miss";
        headers.authorization = `Bearer ${got.token}`;
      } catch (e) {
        return tokenFailure(e, record, head);
      }
      return undefined;
    };

    const failed = await authorize();
    if (failed) return { response: failed };

    let attempt = await send(request, target, headers, ctx.route.registry);
    if ("response" in attempt && attempt.response.status === 401 && token) {
      await attempt.response.body?.cancel();
      options.tokens?.invalidate(scopes, token);
      const again = await authorize();
      if (again) return { response: again };
      attempt = await send(request, target, headers, ctx.route.registry);
    }
    if ("failure" in attempt) {
      record.error = attempt.failure;
      return { response: upstreamFailure(attempt.failure, head) };
    }

    const up = attempt.response;
    record.upstreamStatus = up.status;
    // Bodies read whole (errors, tag lists, manifests) are read under one
    // limit on the whole read: the idle timeout, or the header timeout when
    // there is no idle limit. Others may be waiting for this answer.
    const upstreamAbort = attempt.abort;
    const readWhole = <T>(read: Promise<T>): Promise<T> => {
      const cancel = deadlines.after(
        idleTimeoutMs || headerTimeoutMs,
        () => upstreamAbort.abort(),
      );
      return read.finally(cancel);
    };
    const out = clientResponseHeaders(up.headers, ctx);
    out.set(...API_VERSION_HEADER);
    if (up.headers.has("content-encoding") && up.body) {
      // fetch decoded the body; the encoding headers no longer describe it.
      out.delete("content-encoding");
      out.delete("content-length");
    }

    if (
      up.status >= 300 && up.status < 400 && up.headers.has("location") &&
      !out.has("location")
    ) {
      await up.body?.cancel();
      record.error = "upstream redirected outside the mirror";
      return {
        response: registryError(
          502,
          "UNKNOWN",
          "the upstream redirected to a location this mirror does not serve",
          { head },
        ),
      };
    }

    if (up.status >= 400 && !head && up.body) {
      // Error bodies are small; they are rewritten onto client names and
      // scrubbed of anything credential-shaped the upstream may echo.
      // An error body that breaks off keeps its status with a body of the
      // proxy's own: the status is what clients act on.
      const text = await readWhole(readLimited(up.body, MAX_ERROR_BODY)).catch(
        () => {
          record.error = "upstream error body unreadable";
          return JSON.stringify({
            errors: [{
              code: "UNKNOWN",
              message: "the upstream's error body could not be read",
            }],
          });
        },
      );
      if (text === undefined) {
        return {
          response: registryError(
            502,
            "UNKNOWN",
            "the upstream sent an oversized error body",
          ),
        };
      }
      const body = redact(
        rewriteErrorBody(text, ctx.route),
        token ? [token] : [],
      );
      return { response: rewritten(up.status, out, body) };
    }

    // A tag list names its repository: the upstream name becomes the
    // client's. Lists are read whole (bounded) to rewrite that one field.
    if (ctx.tagList && up.ok && !head && up.body) {
      const text = await readWhole(readLimited(up.body, MAX_TAG_LIST))
        .catch(() => "");
      let list: Record<string, unknown> | undefined;
      try {
        list = text ? JSON.parse(text) : undefined;
      } catch {
        list = undefined;
      }
      if (!list || typeof list !== "object") {
        record.error = "upstream tag list unreadable";
        return {
          response: registryError(
            502,
            "UNKNOWN",
            "the upstream sent a tag list this mirror cannot read",
          ),
        };
      }
      list.name = ctx.tagList;
      return { response: rewritten(up.status, out, JSON.stringify(list)) };
    }

    // Small bodies with a declared length (manifests) are read whole:
    // cheaper than streaming them. Anything larger or of unknown length
    // streams.
    const declared = Number(out.get("content-length") ?? NaN);
    if (!head && up.body && declared <= MAX_BUFFERED_BODY) {
      try {
        const bytes = new Uint8Array(await readWhole(up.arrayBuffer()));
        if (bytes.length !== declared) throw new Error("short body");
        if (stored && up.status === 200 && !hasClientLinks(out)) {
          // Storing is best effort: it never changes the client's answer.
          // A stored answer gets a fresh Date from the server when served.
          await cache?.put(stored.key, stored.digest, {
            headers: [...out].filter(([name]) => name !== "date"),
            body: bytes.slice(),
          }).catch(() => false);
        }
        return {
          response: new Response(bytes, { status: up.status, headers: out }),
        };
      } catch {
        record.error = "upstream body failed";
        return {
          response: registryError(
            502,
            "UNKNOWN",
            "the upstream registry broke off its answer",
          ),
        };
      }
    }

    // Without an idle limit nothing needs to see the chunks: the body goes
    // to the runtime as it came, and the request counts as done now.
    return {
      response: new Response(head ? null : up.body, {
        status: up.status,
        headers: out,
      }),
      ...(idleTimeoutMs ? { abort: attempt.abort } : {}),
    };
  }

  async function send(
    request: Request,
    target: string,
    headers: Record<string, string>,
    route: string,
  ): Promise<
    { response: Response; abort: AbortController } | { failure: string }
  > {
    // A client that goes away while the body streams cancels it, which
    // aborts this controller (see watchBody). One that goes away before the
    // upstream's headers arrive is not watched: following the client's
    // signal costs every request, and the header timeout bounds the wait.
    const abort = new AbortController();
    let timedOut = false;
    const cancel = deadlines.after(headerTimeoutMs, () => {
      timedOut = true;
      abort.abort(new DOMException(UPSTREAM_TIMEOUT, "TimeoutError"));
    });
    const started = now();
    try {
      const response = await fetchFn(target, {
        method: request.method,
        headers,
        redirect: "manual",
        signal: abort.signal,
      });
      metrics?.observeUpstream(route, (now() - started) / 1000);
      return { response, abort };
    } catch {
      return {
        failure: timedOut ? UPSTREAM_TIMEOUT : "upstream unreachable",
      };
    } finally {
      cancel();
    }
  }
}

/** Where a by-digest answer goes in the content cache. */
interface StoredKey {
  key: string;
  digest: string;
}

// Only plain fetches of manifests and blobs by digest are cached: a range
// or a condition asks for something other than the whole stored answer, a
// referrers list changes as artifacts are pushed, and an overlong Accept is
// not worth its memory. The key names the upstream repository (prefix
// included), so two routes never share an entry.
function contentKey(
  request: Request,
  api: ApiPath,
  upstreamName: string,
): StoredKey | undefined {
  if (api.kind !== "manifests" && api.kind !== "blobs") return undefined;
  if (!isValidDigest(api.reference)) return undefined;

  if (asksForPart(request.headers)) return undefined;

  const accept = acceptKey(request.headers.get("accept"));
  if (accept.length > MAX_ACCEPT_KEY) return undefined;
  return {
    key: `${upstreamName}\n${api.kind}\n${api.reference}\n${accept}`,
    digest: api.reference,
  };
}

// Answers that point somewhere depend on the host the client used; they
// are never stored.
function hasClientLinks(headers: Headers): boolean {
  return headers.has("location") || headers.has("link") ||
    headers.has("www-authenticate");
}

// Why a request failed when the upstream sent no headers in time.
const UPSTREAM_TIMEOUT = "upstream timeout";

function upstreamFailure(failure: string, head: boolean): Response {
  const timeout = failure === UPSTREAM_TIMEOUT;
  return registryError(
    timeout ? 504 : 502,
    "UNKNOWN",
    timeout
      ? "the upstream registry did not answer in time"
      : "the upstream registry could not be reached",
    { head },
  );
}

function tokenFailure(
  e: unknown,
  record: RequestRecord,
  head: boolean,
): Response {
  const status = e instanceof TokenError ? e.status : undefined;
  record.error = e instanceof Error ? e.message : "token failure";
  if (status === 429) {
    return registryError(
      429,
      "TOOMANYREQUESTS",
      "the upstream registry is throttling token requests",
      { head },
    );
  }
  return registryError(502, "UNKNOWN", "could not obtain an upstream token", {
    head,
  });
}

function upstreamQuery(
  kind: string,
  params: URLSearchParams,
): string | undefined {
  const out = new URLSearchParams();
  if (kind === "tags") {
    const n = params.get("n");
    if (n !== null) {
      if (!/^\d{1,5}$/.test(n) || Number(n) > 10000) return undefined;
      out.set("n", n);
    }
    const last = params.get("last");
    if (last !== null && isValidTag(last)) out.set("last", last);
  }
  if (kind === "referrers") {
    const type = params.get("artifactType");
    if (type !== null && /^[\w.+\-/]{1,255}$/.test(type)) {
      out.set("artifactType", type);
    }
  }
  return out.size ? `?${out}` : "";
}

function watchBody(
  body: ReadableStream<Uint8Array>,
  idleMs: number,
  done: (bytes: number, error?: string) => void,
  upstreamAbort: AbortController,
): ReadableStream<Uint8Array> {
  const reader = chunkReader(body);
  let bytes = 0;
  let finished = false;
  let waitingSince = 0;

  // One watchdog per stream rather than a timer per chunk: it aborts the
  // upstream when a read has been pending longer than the idle timeout.
  const watchdog = setInterval(() => {
    if (waitingSince && Date.now() - waitingSince > idleMs) {
      upstreamAbort.abort();
      reader.cancel().catch(() => {});
    }
  }, Math.max(100, Math.min(idleMs / 4, 5_000)));
  const finish = (error?: string): void => {
    if (finished) return;
    finished = true;
    clearInterval(watchdog);
    done(bytes, error);
  };

  return new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      waitingSince = Date.now();
      try {
        const { value, done: end } = await reader.read();
        waitingSince = 0;
        if (end) {
          // The watchdog's cancel also ends a pending read as "done": that
          // is a cut body, which must reach the client as an error.
          if (upstreamAbort.signal.aborted) throw new Error("cut off");
          controller.close();
          finish();
          return;
        }
        bytes += value.byteLength;
        controller.enqueue(value);
      } catch {
        waitingSince = 0;
        const why = upstreamAbort.signal.aborted
          ? "upstream idle timeout"
          : "upstream body failed";
        controller.error(new Error(why));
        finish(why);
      }
    },
    cancel(reason): Promise<void> {
      finish("client went away");
      upstreamAbort.abort();
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}

/** Reads a body in chunks of at most {@link STREAM_CHUNK} bytes. */
interface ChunkReader {
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  cancel(reason?: unknown): Promise<void>;
}

// Byte streams (fetch bodies) are read into fresh small buffers; other
// streams (bodies built in JavaScript) are read as they come.
function chunkReader(body: ReadableStream<Uint8Array>): ChunkReader {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    return body.getReader();
  }
  const reader = byob;
  return {
    read: () => reader.read(new Uint8Array(STREAM_CHUNK)),
    cancel: (reason) => reader.cancel(reason),
  };
}

async function readLimited(
  body: ReadableStream<Uint8Array>,
  limit: number,
): Promise<string | undefined> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

// An upstream answer whose body the proxy read and rewrote: the length is
// the new body's, and no content encoding applies any more.
function rewritten(status: number, headers: Headers, body: string): Response {
  const bytes = new TextEncoder().encode(body);
  headers.delete("content-encoding");
  headers.set("content-length", String(bytes.length));
  return new Response(bytes, { status, headers });
}

// The path exactly as the client sent it, before URL parsing normalises
// dot segments and backslashes.
function rawPath(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const end = url.search(/[?#]/);
  return url.slice(start, end < 0 ? undefined : end);
}

function headerBytes(headers: Headers): number {
  let n = 0;
  // forEach: Deno's Headers iterator costs ten times as much.
  headers.forEach((v, k) => n += k.length + v.length + 4);
  return n;
}

function hasBody(request: Request): boolean {
  const length = request.headers.get("content-length");
  return (length !== null && length !== "0") ||
    request.headers.has("transfer-encoding");
}

function firstValue(value: string | null): string | undefined {
  const first = value?.split(",")[0]?.trim();
  return first || undefined;
}

function plain(
  status: number,
  text: string,
  head: boolean,
  type = "text/plain; charset=utf-8",
): Response {
  return complete(status, text, head, type);
}

function json(status: number, value: unknown, head: boolean): Response {
  const res = complete(
    status,
    JSON.stringify(value),
    head,
    "application/json; charset=utf-8",
  );
  res.headers.set(...API_VERSION_HEADER);
  return res;
}

function complete(
  status: number,
  text: string,
  head: boolean,
  type: string,
): Response {
  const bytes = new TextEncoder().encode(text);
  const headers = new Headers({
    "content-type": type,
    "content-length": String(bytes.length),
    "cache-control": "no-store",
  });
  return new Response(head ? null : bytes, { status, headers });
}
