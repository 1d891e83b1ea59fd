/**
 * Fake Azure Container Registry front: the ACR token service
 * (`/oauth2/exchange`, `/oauth2/token`), `/v2/` proxied to the real
 * registry, blob GETs answered with a 307 to a separate loopback
 * "storage" origin holding a signed, expiring URL, tag lists paged with
 * `n`/`last` and a relative `Link` as ACR pages them (distribution 2.8
 * ignores both), and a request log.
 *
 * @module
 */

import { ACR_RESOURCE, ARM_RESOURCE, type EntraClaims } from "./fake_entra.ts";
import {
  b64url,
  decodeJwt,
  type Es256Signer,
  hmacKey,
  nowSeconds,
  signEs256,
} from "./jwt.ts";

/** The all-zero user name ACR expects with a refresh token as password. */
export const NULL_GUID = "00000000-0000-0000-0000-000000000000";

/** Which endpoint a recorded request hit. */
export type Endpoint =
  | "exchange"
  | "token"
  | "ping"
  | "manifest"
  | "blob"
  | "upload"
  | "tags"
  | "referrers"
  | "other"
  | "storage";

/** One request seen by the fake ACR or its storage origin. */
export interface RecordedRequest {
  /** Endpoint class. */
  endpoint: Endpoint;
  /** HTTP method. */
  method: string;
  /** Path (no query). */
  path: string;
  /** Query string including `?`, or empty. */
  search: string;
  /** Scheme of the Authorization header, or `none`. */
  auth: "none" | "basic" | "bearer" | "other";
  /** Scopes asked (token endpoint only). */
  scopes: string[];
  /** `grant_type` (token and exchange endpoints). */
  grantType: string | null;
  /** User-Agent. */
  userAgent: string | null;
  /** Range header (storage). */
  range: string | null;
  /** Status answered (0 while in flight). */
  status: number;
  /** Milliseconds since epoch when received. */
  at: number;
}

/** Options for {@linkcode startFakeAcr}. */
export interface FakeAcrOptions {
  /** Signer the registry trusts. */
  signer: Es256Signer;
  /** Token issuer configured in the registry. */
  issuer: string;
  /** Checks an Entra token handed to `/oauth2/exchange`. */
  verifyEntraToken(token: string): Promise<EntraClaims | null>;
  /** Issue tokens to callers with no credentials (default false). */
  anonymous?: boolean;
  /** Refresh token lifetime (default 3 h). */
  refreshTokenTtlSeconds?: number;
  /** Access token lifetime (default 75 min). */
  accessTokenTtlSeconds?: number;
  /** Storage URL lifetime (default 20 min). */
  redirectTtlSeconds?: number;
  /** Answer blob GETs with a 307 to storage (default true). */
  redirectBlobs?: boolean;
  /** Which (repository, action) pairs an identity may get (default pull on all). */
  grants?: (repository: string, action: string) => boolean;
  /** Entra audiences accepted at the exchange (default ACR and ARM). */
  acceptedAudiences?: string[];
}

/** A running fake ACR. */
export interface FakeAcr {
  /** Login server origin, `http://127.0.0.1:<port>`. */
  readonly origin: string;
  /** Token service name (login server host, like ACR). */
  readonly service: string;
  /** Storage origin the blob redirects point at. */
  readonly storageOrigin: string;
  /** Every request so far, oldest first. */
  readonly requests: RecordedRequest[];
  /** Mutable behaviour switches. */
  readonly settings: FakeAcrSettings;
  /** Points `/v2/` at the real registry and storage at its root dir. */
  setUpstream(registryOrigin: string, registryRoot: string): void;
  /** Counts recorded requests matching every given field. */
  count(filter?: Partial<RecordedRequest>): number;
  /** Recorded requests matching every given field. */
  find(filter?: Partial<RecordedRequest>): RecordedRequest[];
  /** Forgets the request log. */
  clearRequests(): void;
  /** Makes every access token issued so far answer 401 at `/v2/`. */
  invalidateAccessTokens(): void;
  /** Makes every refresh token issued so far unknown to `/oauth2/token`. */
  invalidateRefreshTokens(): void;
  /** Mints an access token as `/oauth2/token` would (for direct tests). */
  mintAccessToken(scopes: string[]): Promise<string>;
  /** Mints a refresh token as `/oauth2/exchange` would. */
  mintRefreshToken(): Promise<string>;
  /**
   * Every credential this fake handed out so far: refresh and access
   * tokens, and the `sig` of every storage URL.
   */
  secrets(): string[];
  /** Stops both servers. */
  stop(): Promise<void>;
}

/** Behaviour switches that tests may flip while the fake runs. */
export interface FakeAcrSettings {
  /** Issue tokens to callers with no credentials. */
  anonymous: boolean;
  /** Refresh token lifetime in seconds. */
  refreshTokenTtlSeconds: number;
  /** Access token lifetime in seconds. */
  accessTokenTtlSeconds: number;
  /** Storage URL lifetime in seconds. */
  redirectTtlSeconds: number;
  /** Answer blob GETs with a 307 to storage; false serves them inline. */
  redirectBlobs: boolean;
}

interface ParsedScope {
  type: string;
  name: string;
  actions: string[];
}

/**
 * Splits scope parameters (`repository:name:pull,push`, possibly several
 * space-separated per parameter) into parts.
 *
 * @param values raw `scope` parameter values
 * @returns parsed scopes (malformed items dropped)
 */
export function parseScopes(values: string[]): ParsedScope[] {
  const out: ParsedScope[] = [];
  for (const value of values) {
    for (const item of value.split(" ")) {
      const first = item.indexOf(":");
      const last = item.lastIndexOf(":");
      if (first <= 0 || last === first) continue;
      out.push({
        type: item.slice(0, first),
        name: item.slice(first + 1, last),
        actions: item.slice(last + 1).split(",").filter((a) => a !== ""),
      });
    }
  }
  return out;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

function copyHeaders(from: Headers): Headers {
  const out = new Headers();
  for (const [k, v] of from) if (!HOP_BY_HOP.has(k)) out.append(k, v);
  return out;
}

function jsonResponse(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function classify(path: string): Endpoint {
  if (path === "/oauth2/exchange") return "exchange";
  if (path === "/oauth2/token") return "token";
  if (path === "/v2/" || path === "/v2") return "ping";
  if (/\/blobs\/uploads\//.test(path)) return "upload";
  if (/^\/v2\/.+\/manifests\/[^/]+$/.test(path)) return "manifest";
  if (/^\/v2\/.+\/blobs\/[^/]+$/.test(path)) return "blob";
  if (/^\/v2\/.+\/tags\/list$/.test(path)) return "tags";
  if (/^\/v2\/.+\/referrers\/[^/]+$/.test(path)) return "referrers";
  return "other";
}

function authScheme(header: string | null): RecordedRequest["auth"] {
  if (!header) return "none";
  const scheme = header.split(" ")[0]!.toLowerCase();
  return scheme === "basic"
    ? "basic"
    : scheme === "bearer"
    ? "bearer"
    : "other";
}

function matches(
  r: RecordedRequest,
  filter: Partial<RecordedRequest>,
): boolean {
  for (const [k, v] of Object.entries(filter)) {
    const have = r[k as keyof RecordedRequest];
    if (Array.isArray(v)) {
      if (JSON.stringify(have) !== JSON.stringify(v)) return false;
    } else if (have !== v) return false;
  }
  return true;
}

function repoOf(path: string): string | null {
  const m = path.match(/^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\//);
  return m ? m[1]! : null;
}

/**
 * Starts the fake ACR login server and its storage origin on loopback.
 * Call {@linkcode FakeAcr.setUpstream} once the real registry runs.
 *
 * @param options signer, Entra check and behaviour
 * @returns the running fake
 */
export async function startFakeAcr(options: FakeAcrOptions): Promise<FakeAcr> {
  const settings: FakeAcrSettings = {
    anonymous: options.anonymous ?? false,
    refreshTokenTtlSeconds: options.refreshTokenTtlSeconds ?? 3 * 3600,
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 4500,
    redirectTtlSeconds: options.redirectTtlSeconds ?? 1200,
    redirectBlobs: options.redirectBlobs ?? true,
  };
  const grants = options.grants ?? ((_r: string, a: string) => a === "pull");
  const audiences = options.acceptedAudiences ?? [ACR_RESOURCE, ARM_RESOURCE];
  const storageKey = await hmacKey(crypto.getRandomValues(new Uint8Array(32)));
  const requests: RecordedRequest[] = [];
  // jti -> expiry (epoch s) of tokens this fake issued and still honours
  const refreshTokens = new Map<string, number>();
  const accessTokens = new Map<string, number>();
  const revoked = new Set<string>();
  const issued: string[] = [];
  let registryOrigin = "";
  let registryRoot = "";

  const acrServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => handleAcr(req),
  );
  const storageServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => handleStorage(req),
  );
  const origin = `http://127.0.0.1:${acrServer.addr.port}`;
  const service = `127.0.0.1:${acrServer.addr.port}`;
  const storageOrigin = `http://127.0.0.1:${storageServer.addr.port}`;
  const realm = `${origin}/oauth2/token`;

  function record(req: Request, endpoint: Endpoint): RecordedRequest {
    const url = new URL(req.url);
    const r: RecordedRequest = {
      endpoint,
      method: req.method,
      path: url.pathname,
      search: url.search,
      auth: authScheme(req.headers.get("authorization")),
      scopes: [],
      grantType: null,
      userAgent: req.headers.get("user-agent"),
      range: req.headers.get("range"),
      status: 0,
      at: Date.now(),
    };
    requests.push(r);
    return r;
  }

  async function mintRefreshToken(tenant: string): Promise<string> {
    const now = nowSeconds();
    const jti = crypto.randomUUID();
    const exp = now + settings.refreshTokenTtlSeconds;
    refreshTokens.set(jti, exp);
    return remember(
      await signEs256(options.signer, {
        jti,
        sub: "e2e-identity",
        nbf: now - 5,
        exp,
        iat: now,
        iss: "Azure Container Registry",
        aud: service,
        version: "1.0",
        grant_type: "refresh_token",
        tenant,
        permissions: { actions: ["read"], notActions: [] },
        roles: [],
      }),
    );
  }

  function remember(secret: string): string {
    issued.push(secret);
    return secret;
  }

  async function mintAccessToken(scopes: ParsedScope[]): Promise<string> {
    const now = nowSeconds();
    const jti = crypto.randomUUID();
    const exp = now + settings.accessTokenTtlSeconds;
    accessTokens.set(jti, exp);
    const access = [];
    for (const s of scopes) {
      const actions = s.actions.filter((a) => grants(s.name, a));
      if (actions.length > 0) {
        access.push({ type: s.type, name: s.name, actions });
      }
    }
    return remember(
      await signEs256(options.signer, {
        jti,
        sub: "e2e-identity",
        nbf: now - 5,
        exp,
        iat: now,
        iss: options.issuer,
        aud: service,
        version: "1.0",
        grant_type: "access_token",
        access,
      }),
    );
  }

  /** Returns the refresh token's jti when this fake issued it and it lives. */
  function liveRefreshToken(token: string): boolean {
    const jwt = decodeJwt(token);
    const jti = jwt?.payload.jti;
    if (typeof jti !== "string") return false;
    const exp = refreshTokens.get(jti);
    return exp !== undefined && exp >= nowSeconds() &&
      jwt!.payload.aud === service;
  }

  function tokenError(status: number, code: string, message: string): Response {
    return jsonResponse(status, { errors: [{ code, message, detail: null }] }, {
      "www-authenticate":
        `Bearer realm="${realm}",service="${service}",error="invalid_token"`,
    });
  }

  async function handleExchange(
    req: Request,
    r: RecordedRequest,
  ): Promise<Response> {
    if (req.method !== "POST") {
      return tokenError(405, "UNSUPPORTED", "method not allowed");
    }
    const form = new URLSearchParams(await req.text());
    r.grantType = form.get("grant_type");
    if (r.grantType !== "access_token") {
      return tokenError(
        400,
        "UNSUPPORTED",
        `unsupported grant_type ${r.grantType}`,
      );
    }
    if (form.get("service") !== service) {
      return tokenError(
        400,
        "INVALID_SERVICE",
        "service does not match the login server",
      );
    }
    const claims = await options.verifyEntraToken(
      form.get("access_token") ?? "",
    );
    if (!claims || !audiences.includes(claims.aud)) {
      return tokenError(
        401,
        "UNAUTHORIZED",
        "the access token is invalid or expired",
      );
    }
    const tenant = form.get("tenant");
    if (tenant !== null && tenant !== claims.tid) {
      return tokenError(
        401,
        "UNAUTHORIZED",
        "the access token is for another tenant",
      );
    }
    return jsonResponse(200, {
      refresh_token: await mintRefreshToken(claims.tid),
    });
  }

  async function handleToken(
    req: Request,
    r: RecordedRequest,
  ): Promise<Response> {
    let params: URLSearchParams;
    let refreshToken: string | null = null;
    if (req.method === "POST") {
      params = new URLSearchParams(await req.text());
      r.grantType = params.get("grant_type");
      if (r.grantType !== "refresh_token") {
        return tokenError(
          400,
          "UNSUPPORTED",
          `unsupported grant_type ${r.grantType}`,
        );
      }
      refreshToken = params.get("refresh_token") ?? "";
    } else if (req.method === "GET") {
      params = new URL(req.url).searchParams;
      const auth = req.headers.get("authorization");
      if (auth?.toLowerCase().startsWith("basic ")) {
        let decoded = "";
        try {
          decoded = atob(auth.slice(6).trim());
        } catch {
          // treated as bad credentials below
        }
        const colon = decoded.indexOf(":");
        const user = decoded.slice(0, colon);
        if (colon < 0 || user !== NULL_GUID) {
          return tokenError(
            401,
            "UNAUTHORIZED",
            "invalid username or password",
          );
        }
        refreshToken = decoded.slice(colon + 1);
      } else if (auth) {
        return tokenError(401, "UNAUTHORIZED", "unsupported authorization");
      } else if (!settings.anonymous) {
        return tokenError(401, "UNAUTHORIZED", "authentication required");
      }
    } else {
      return tokenError(405, "UNSUPPORTED", "method not allowed");
    }
    r.scopes = params.getAll("scope");
    if (params.get("service") !== service) {
      return tokenError(
        400,
        "INVALID_SERVICE",
        "service does not match the login server",
      );
    }
    if (refreshToken !== null && !liveRefreshToken(refreshToken)) {
      return tokenError(
        401,
        "UNAUTHORIZED",
        "the refresh token is invalid or expired",
      );
    }
    return jsonResponse(200, {
      access_token: await mintAccessToken(parseScopes(r.scopes)),
    });
  }

  /** True for access tokens this fake issued that expired or were revoked. */
  function staleBearer(req: Request): boolean {
    const auth = req.headers.get("authorization");
    if (!auth?.toLowerCase().startsWith("bearer ")) return false;
    const jti = decodeJwt(auth.slice(7).trim())?.payload.jti;
    if (typeof jti !== "string") return false;
    if (revoked.has(jti)) return true;
    const exp = accessTokens.get(jti);
    return exp !== undefined && exp < nowSeconds();
  }

  function unauthorized(path: string, method: string): Response {
    const repo = repoOf(path);
    const action = method === "GET" || method === "HEAD" ? "pull" : "pull,push";
    const scope = repo ? `,scope="repository:${repo}:${action}"` : "";
    const headers = {
      "www-authenticate":
        `Bearer realm="${realm}",service="${service}"${scope},error="invalid_token"`,
      "docker-distribution-api-version": "registry/2.0",
    };
    const body = {
      errors: [{
        code: "UNAUTHORIZED",
        message:
          "authentication required, visit https://aka.ms/acr/authorization for more information.",
        detail: repo
          ? [{ Type: "repository", Name: repo, Action: "pull" }]
          : null,
      }],
    };
    if (method === "HEAD") return new Response(null, { status: 401, headers });
    return jsonResponse(401, body, headers);
  }

  async function forward(req: Request, method = req.method): Promise<Response> {
    const url = new URL(req.url);
    const headers = copyHeaders(req.headers);
    // the existence check before a redirect asks for the whole blob
    if (method !== req.method) headers.delete("range");
    const hasBody = method !== "GET" && method !== "HEAD";
    const res = await fetch(`${registryOrigin}${url.pathname}${url.search}`, {
      method,
      headers,
      redirect: "manual",
      ...(hasBody ? { body: req.body } : {}),
    });
    const out = copyHeaders(res.headers);
    if (method === "HEAD") {
      await res.body?.cancel();
      return new Response(null, { status: res.status, headers: out });
    }
    return new Response(res.body, { status: res.status, headers: out });
  }

  async function signedStorageUrl(hex: string): Promise<string> {
    const se = nowSeconds() + settings.redirectTtlSeconds;
    const sig = await crypto.subtle.sign(
      "HMAC",
      storageKey,
      new TextEncoder().encode(`${hex}\n${se}`),
    );
    const signature = remember(b64url(new Uint8Array(sig)));
    return `${storageOrigin}/blobs/sha256/${hex}/data?sp=r&se=${se}&sig=${signature}`;
  }

  async function handleV2(req: Request, r: RecordedRequest): Promise<Response> {
    if (!registryOrigin) {
      return jsonResponse(503, { errors: [{ code: "UNAVAILABLE" }] });
    }
    const path = new URL(req.url).pathname;
    if (staleBearer(req)) return unauthorized(path, req.method);
    const tags = path.match(/^\/v2\/(.+)\/tags\/list$/);
    if (tags && req.method === "GET") return await pagedTags(req, tags[1]!);
    const blob = path.match(/^\/v2\/.+\/blobs\/sha256:([a-f0-9]{64})$/);
    if (blob && req.method === "GET" && settings.redirectBlobs) {
      const check = await forward(req, "HEAD");
      if (check.status === 200) {
        return new Response(null, {
          status: 307,
          headers: {
            location: await signedStorageUrl(blob[1]!),
            "docker-content-digest": `sha256:${blob[1]}`,
            "docker-distribution-api-version": "registry/2.0",
          },
        });
      }
    }
    void r;
    return await forward(req);
  }

  // ACR honours n and last on tag lists and links the next page with a
  // relative URL holding the upstream name and an empty orderby.
  async function pagedTags(req: Request, repo: string): Promise<Response> {
    const url = new URL(req.url);
    const full = await fetch(`${registryOrigin}${url.pathname}`, {
      headers: copyHeaders(req.headers),
    });
    if (full.status !== 200) {
      return new Response(full.body, {
        status: full.status,
        headers: copyHeaders(full.headers),
      });
    }
    const body = await full.json() as { name: string; tags: string[] | null };
    const last = url.searchParams.get("last");
    const nRaw = url.searchParams.get("n");
    let tags = [...(body.tags ?? [])].sort();
    if (last !== null) tags = tags.filter((t) => t > last);
    const headers: Record<string, string> = {
      "docker-distribution-api-version": "registry/2.0",
    };
    if (nRaw !== null) {
      const n = Number(nRaw);
      if (!/^\d+$/.test(nRaw)) {
        return jsonResponse(400, {
          errors: [{
            code: "PAGINATION_NUMBER_INVALID",
            message: "invalid number of results requested",
          }],
        });
      }
      if (tags.length > n && n > 0) {
        const next = new URLSearchParams({ last: tags[n - 1]!, n: nRaw });
        headers.link = `</v2/${repo}/tags/list?${next}&orderby=>; rel="next"`;
      }
      tags = tags.slice(0, n);
    }
    return jsonResponse(200, { name: body.name, tags }, headers);
  }

  async function handleAcr(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const r = record(req, classify(path));
    let res: Response;
    try {
      if (r.endpoint === "exchange") res = await handleExchange(req, r);
      else if (r.endpoint === "token") res = await handleToken(req, r);
      else if (path === "/v2" || path.startsWith("/v2/")) {
        res = await handleV2(req, r);
      } else {res = jsonResponse(404, {
          errors: [{ code: "NOT_FOUND", message: "not found" }],
        });}
    } catch (err) {
      res = jsonResponse(500, {
        errors: [{ code: "UNKNOWN", message: String(err) }],
      });
    }
    r.status = res.status;
    return res;
  }

  function storageError(
    status: number,
    code: string,
    message: string,
  ): Response {
    return new Response(
      `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
      {
        status,
        headers: { "content-type": "application/xml", "x-ms-error-code": code },
      },
    );
  }

  async function storageResponse(req: Request): Promise<Response> {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return storageError(
        405,
        "UnsupportedHttpVerb",
        "The resource doesn't support the specified HTTP verb.",
      );
    }
    if (req.headers.has("authorization")) {
      return storageError(
        400,
        "InvalidAuthenticationInfo",
        "Authentication information is not given in the correct format.",
      );
    }
    const url = new URL(req.url);
    const m = url.pathname.match(/^\/blobs\/sha256\/([a-f0-9]{64})\/data$/);
    if (!m) {
      return storageError(
        404,
        "ResourceNotFound",
        "The specified resource does not exist.",
      );
    }
    const hex = m[1]!;
    const se = url.searchParams.get("se") ?? "";
    const sig = url.searchParams.get("sig") ?? "";
    const want = b64url(
      new Uint8Array(
        await crypto.subtle.sign(
          "HMAC",
          storageKey,
          new TextEncoder().encode(`${hex}\n${se}`),
        ),
      ),
    );
    if (sig !== want) {
      return storageError(
        403,
        "AuthenticationFailed",
        "Signature did not match.",
      );
    }
    if (!/^\d+$/.test(se) || Number(se) < nowSeconds()) {
      return storageError(
        403,
        "AuthenticationFailed",
        "Signed expiry time has passed.",
      );
    }
    const file = `${registryRoot}/docker/registry/v2/blobs/sha256/${
      hex.slice(0, 2)
    }/${hex}/data`;
    let size: number;
    try {
      size = (await Deno.stat(file)).size;
    } catch {
      return storageError(
        404,
        "BlobNotFound",
        "The specified blob does not exist.",
      );
    }
    const headers = new Headers({
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      etag: `"${hex.slice(0, 16)}"`,
      "x-ms-blob-type": "BlockBlob",
    });
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = req.headers.get("range");
    if (range) {
      const rm = range.match(/^bytes=(\d*)-(\d*)$/);
      if (!rm || (rm[1] === "" && rm[2] === "")) {
        headers.set("content-range", `bytes */${size}`);
        return new Response(null, { status: 416, headers });
      }
      if (rm[1] === "") {
        start = Math.max(0, size - Number(rm[2]));
      } else {
        start = Number(rm[1]);
        if (rm[2] !== "") end = Math.min(end, Number(rm[2]));
      }
      if (start > end || start >= size) {
        headers.set("content-range", `bytes */${size}`);
        return new Response(null, { status: 416, headers });
      }
      status = 206;
      headers.set("content-range", `bytes ${start}-${end}/${size}`);
    }
    const length = end - start + 1;
    headers.set("content-length", String(length));
    if (req.method === "HEAD") return new Response(null, { status, headers });
    return new Response(fileSlice(file, start, length), { status, headers });
  }

  async function handleStorage(req: Request): Promise<Response> {
    const r = record(req, "storage");
    let res: Response;
    try {
      res = await storageResponse(req);
    } catch (err) {
      res = storageError(500, "InternalError", String(err));
    }
    r.status = res.status;
    return res;
  }

  const find = (filter: Partial<RecordedRequest> = {}): RecordedRequest[] =>
    requests.filter((r) => matches(r, filter));

  return {
    origin,
    service,
    storageOrigin,
    requests,
    settings,
    setUpstream(o: string, root: string) {
      registryOrigin = o;
      registryRoot = root;
    },
    count: (filter = {}) => find(filter).length,
    find,
    clearRequests() {
      requests.length = 0;
    },
    invalidateAccessTokens() {
      for (const jti of accessTokens.keys()) revoked.add(jti);
      accessTokens.clear();
    },
    invalidateRefreshTokens() {
      refreshTokens.clear();
    },
    mintAccessToken: (scopes) => mintAccessToken(parseScopes(scopes)),
    mintRefreshToken: () => mintRefreshToken("e2e-tenant"),
    secrets: () => [...issued],
    async stop() {
      await Promise.all([acrServer.shutdown(), storageServer.shutdown()]);
    },
  };
}

function fileSlice(
  path: string,
  start: number,
  length: number,
): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | null = null;
  let remaining = length;
  return new ReadableStream<Uint8Array>({
    type: "bytes",
    async start() {
      file = await Deno.open(path);
      await file.seek(start, Deno.SeekMode.Start);
    },
    async pull(controller) {
      if (remaining <= 0) {
        file?.close();
        file = null;
        controller.close();
        return;
      }
      const buf = new Uint8Array(Math.min(remaining, 256 * 1024));
      const n = await file!.read(buf);
      if (n === null) {
        file?.close();
        file = null;
        controller.error(new Error("blob file ended early"));
        return;
      }
      remaining -= n;
      controller.enqueue(buf.subarray(0, n));
    },
    cancel() {
      file?.close();
      file = null;
    },
  });
}
