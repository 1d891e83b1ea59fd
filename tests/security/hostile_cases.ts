/**
 * The table of hostile requests the proxy must survive, as data: what is
 * sent, what each auth mode must answer, and whether the upstream may see
 * anything (and then only a pull inside the prefix). Requests the `Request`
 * constructor would rewrite live in {@link RAW_CASES} and go over a socket.
 *
 * @module
 */

import assert from "node:assert/strict";
import { STORAGE_URL } from "./fakes.ts";
import type { ProxyUnderTest } from "./proxy.ts";

/** What one mode must answer. */
export interface Outcome {
  /** Status the client gets. */
  status: number;
  /** `none`: no upstream request at all; `pull`: at least one, confined. */
  upstream: "none" | "pull";
  /** Registry error code in the body, when checked. */
  code?: string;
}

/** A grant the harness signs and sends as `Authorization: Bearer`. */
export interface GrantSpec {
  /** Client-side names it covers. */
  names: string[];
  /** Sign with another key (a grant of another proxy). */
  secret?: Uint8Array;
  /** Expiry in epoch seconds. */
  exp?: number;
  /** The route registry in the grant. */
  registry?: string;
  /** Damages the signed token. */
  mangle?: (token: string) => string;
}

/** Extra assertions for one row. */
export type CaseCheck = (
  res: Response,
  body: string,
  proxy: ProxyUnderTest,
) => void;

/** One hostile request. */
export interface HostileCase {
  /** What the row attacks. */
  id: string;
  /** HTTP method; GET when absent. */
  method?: string;
  /** Path and query on the proxy, or an absolute URL. */
  url: string;
  /** Request headers. */
  headers?: Record<string, string>;
  /** Request body. */
  body?: string;
  /** A proxy grant to attach. */
  grant?: GrantSpec;
  /** Scope sets the token provider must have been asked, exactly. */
  asked?: string[][];
  /** What the `Request` constructor does to this input, if anything. */
  note?: string;
  /** Outcome in challenge mode. */
  challenge: Outcome;
  /** Outcome in inject mode. */
  inject: Outcome;
  /** Row-specific assertions, run in both modes. */
  check?: CaseCheck;
}

/** A digest in the right shape. */
export const DIGEST = `sha256:${"a".repeat(64)}`;
/** A JWT-shaped client credential that must never travel upstream. */
export const CLIENT_JWT =
  "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjbGllbnQtb3duIn0.Y2xpZW50LXNpZ25hdHVyZQ";
/** Docker Hub login credentials Docker may send to a mirror. */
export const HUB_BASIC = `Basic ${btoa("hubuser:hub-password-42")}`;
/** The password inside {@link HUB_BASIC}. */
export const HUB_PASSWORD = "hub-password-42";
/** A session cookie. */
export const CLIENT_COOKIE = "session=cookie-secret-99";

/** Client-side values no upstream request may carry. */
export const CLIENT_SECRETS: readonly string[] = [
  CLIENT_JWT,
  HUB_BASIC,
  btoa("hubuser:hub-password-42"),
  HUB_PASSWORD,
  "cookie-secret-99",
  "evil.example",
  "proxy-secret-77",
];

const NGINX = ["library/nginx"];
const M = "/v2/library/nginx/manifests/latest";
const NGINX_SCOPE = [["repository:hub/library/nginx:pull"]];

function both(status: number, upstream: Outcome["upstream"], code?: string): {
  challenge: Outcome;
  inject: Outcome;
} {
  const o: Outcome = code ? { status, upstream, code } : { status, upstream };
  return { challenge: o, inject: o };
}

const refused = (code: string, status = 400): {
  challenge: Outcome;
  inject: Outcome;
} => both(status, "none", code);

const served = (status = 200): { challenge: Outcome; inject: Outcome } =>
  both(status, "pull");

/** Challenge mode answers 401 without a grant; inject mode serves. */
const needsGrant = (status = 200): { challenge: Outcome; inject: Outcome } => ({
  challenge: { status: 401, upstream: "none", code: "UNAUTHORIZED" },
  inject: { status, upstream: "pull" },
});

function upstreamQueryIs(expected: string): CaseCheck {
  return (_res, _body, proxy) => {
    for (const call of proxy.upstream.calls) {
      assert.equal(new URL(call.url).search, expected, call.url);
    }
  };
}

function realmExcludes(host: string): CaseCheck {
  return (res) => {
    const challenge = res.headers.get("www-authenticate") ?? "";
    assert.ok(!challenge.includes(host), challenge);
  };
}

function grantedOnly(expectedNames: string[]): CaseCheck {
  return (res, body) => {
    if (res.status !== 200) return;
    const token = JSON.parse(body).token as string;
    assert.ok(token.startsWith("acp1."), "not a proxy grant");
    const payload = token.slice(5).split(".")[0]!;
    const grant = JSON.parse(
      atob(payload.replace(/-/g, "+").replace(/_/g, "/")),
    );
    assert.deepEqual(grant.names, expectedNames);
    assert.equal(grant.registry, "docker.io");
    assert.deepEqual(Object.keys(grant).sort(), ["exp", "names", "registry"]);
  };
}

const tokenOk = (names: string[]): {
  challenge: Outcome;
  inject: Outcome;
  check: CaseCheck;
} => ({ ...both(200, "none"), check: grantedOnly(names) });

/** Hostile requests driven through `handler.fetch`. */
export const HOSTILE_CASES: readonly HostileCase[] = [
  // Methods: read-only.
  {
    id: "POST starts a blob upload",
    method: "POST",
    url: "/v2/library/nginx/blobs/uploads/",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "POST cross-repository mount",
    method: "POST",
    url: `/v2/library/nginx/blobs/uploads/?mount=${DIGEST}&from=library/alpine`,
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "POST monolithic upload with body",
    method: "POST",
    url: `/v2/library/nginx/blobs/uploads/?digest=${DIGEST}`,
    body: "layer-bytes",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "PUT manifest with a granted pull token",
    method: "PUT",
    url: M,
    body: '{"schemaVersion":2}',
    headers: {
      "content-type": "application/vnd.oci.image.manifest.v1+json",
    },
    grant: { names: NGINX },
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "PUT manifest with repeated tag query",
    method: "PUT",
    url: `/v2/library/nginx/manifests/${DIGEST}?tag=a&tag=b`,
    body: "{}",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "PATCH upload chunk",
    method: "PATCH",
    url: "/v2/library/nginx/blobs/uploads/3f1c",
    body: "chunk",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "lower-case patch method (kept as sent)",
    method: "patch",
    url: "/v2/library/nginx/blobs/uploads/3f1c",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "DELETE manifest",
    method: "DELETE",
    url: `/v2/library/nginx/manifests/${DIGEST}`,
    grant: { names: NGINX },
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "DELETE blob",
    method: "DELETE",
    url: `/v2/library/nginx/blobs/${DIGEST}`,
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "lower-case delete (Request upper-cases it)",
    method: "delete",
    note: "the Request constructor normalizes `delete` to DELETE",
    url: M,
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "OPTIONS preflight",
    method: "OPTIONS",
    url: "/v2/",
    headers: { "access-control-request-method": "DELETE" },
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "WebDAV PROPFIND",
    method: "PROPFIND",
    url: "/v2/",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "extension method PURGE",
    method: "PURGE",
    url: M,
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "PUT on the ping path",
    method: "PUT",
    url: "/v2/",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "POST /v2/_catalog",
    method: "POST",
    url: "/v2/_catalog",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "OAuth2 POST token request for push with password",
    method: "POST",
    url: "/token",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body:
      "grant_type=password&username=hubuser&password=hub-password-42&scope=repository:nginx:push&service=registry.docker.io",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "DELETE /token",
    method: "DELETE",
    url: "/token",
    ...refused("UNSUPPORTED", 405),
  },
  {
    id: "POST to an ACR upstream-only path",
    method: "POST",
    url: "/oauth2/exchange",
    body: "grant_type=access_token&access_token=x",
    ...refused("UNSUPPORTED", 405),
  },

  // Bodies on reads.
  {
    id: "GET with Content-Length",
    note: "Request refuses a GET body; the header alone is set here",
    url: M,
    headers: { "content-length": "10" },
    ...refused("SIZE_INVALID", 413),
  },
  {
    id: "GET with Transfer-Encoding: chunked",
    url: M,
    headers: { "transfer-encoding": "chunked" },
    ...refused("SIZE_INVALID", 413),
  },
  {
    id: "HEAD with Content-Length",
    method: "HEAD",
    url: M,
    headers: { "content-length": "5" },
    ...both(413, "none"),
  },

  // Sizes.
  {
    id: "20 KiB query string",
    url: `/v2/library/nginx/tags/list?last=${"a".repeat(20 * 1024)}`,
    ...refused("UNSUPPORTED", 414),
  },
  {
    id: "9000-byte path",
    url: `/v2/${"a".repeat(9000)}/manifests/latest`,
    ...refused("UNSUPPORTED", 414),
  },
  {
    id: "one 20 KiB header",
    url: M,
    headers: { "x-filler": "f".repeat(20 * 1024) },
    ...refused("UNSUPPORTED", 431),
  },
  {
    id: "200 headers of 100 bytes",
    url: M,
    headers: Object.fromEntries(
      Array.from({ length: 200 }, (_, i) => [`x-h${i}`, "h".repeat(100)]),
    ),
    ...refused("UNSUPPORTED", 431),
  },
  {
    id: "HEAD with oversized headers",
    method: "HEAD",
    url: M,
    headers: { "x-filler": "f".repeat(17 * 1024) },
    ...both(431, "none"),
  },

  // Names.
  {
    id: "upper-case name",
    url: "/v2/Library/Nginx/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "percent-encoded slash %2F",
    url: "/v2/library%2Fnginx/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "percent-encoded slash %2f leaving the prefix",
    url: "/v2/..%2f..%2fadmin%2fsecret/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "percent-encoded dot inside a component",
    url: "/v2/library/ng%2einx/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "percent-encoded dot-dot glued to text",
    note: "a whole `%2e%2e` segment is resolved by Request: see RAW_CASES",
    url: "/v2/library/x%2e%2e/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "percent-encoded backslash %5C",
    note: "a literal backslash becomes `/` in Request: see RAW_CASES",
    url: "/v2/library%5C..%5Cnginx/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "empty segment",
    url: "/v2/library//nginx/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "empty leading segment",
    url: "/v2//nginx/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "trailing slash in name",
    url: "/v2/library/nginx//manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "name of 256 characters",
    url: `/v2/${"a".repeat(256)}/manifests/latest`,
    ...refused("NAME_INVALID"),
  },
  {
    id: "name valid alone but over 255 with the prefix",
    url: `/v2/library/${"b".repeat(245)}/manifests/latest`,
    ...refused("NAME_INVALID"),
  },
  {
    id: "registry host with port as name",
    url: "/v2/127.0.0.2:1/hub/x/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "leading underscore (catalog-like)",
    url: "/v2/_catalog/x/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "double dot inside a component",
    url: "/v2/library/a..b/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "component starting with a dot",
    note: "a bare `.` segment is removed by Request: see RAW_CASES",
    url: "/v2/library/.nginx/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "leading dash",
    url: "/v2/-nginx/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "NUL byte",
    url: "/v2/library/nginx%00/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "full-width letters",
    note: "Request percent-encodes them",
    url: "/v2/ｎｇｉｎｘ/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "@ in name",
    url: "/v2/library/nginx@sha256/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "matrix parameter",
    url: "/v2/library/nginx;ns=ghcr.io/manifests/latest",
    ...refused("NAME_INVALID"),
  },
  {
    id: "encoded newline",
    url: "/v2/library/nginx%0d%0aX-Injected:1/manifests/latest",
    ...refused("NAME_INVALID"),
  },

  // References.
  {
    id: "tag starting with a dash",
    url: "/v2/library/nginx/manifests/-latest",
    ...refused("TAG_INVALID"),
  },
  {
    id: "tag of 129 characters",
    url: `/v2/library/nginx/manifests/${"t".repeat(129)}`,
    ...refused("TAG_INVALID"),
  },
  {
    id: "tag with encoded slash",
    url: "/v2/library/nginx/manifests/..%2F..%2Fx",
    ...refused("NAME_INVALID"),
  },
  {
    id: "blob by tag",
    url: "/v2/library/nginx/blobs/latest",
    ...refused("DIGEST_INVALID"),
  },
  {
    id: "short sha256 digest",
    url: "/v2/library/nginx/blobs/sha256:abc",
    ...refused("DIGEST_INVALID"),
  },
  {
    id: "upload session GET",
    url: "/v2/library/nginx/blobs/uploads/3f1c",
    ...refused("UNSUPPORTED", 404),
  },
  {
    id: "blob upload collection GET",
    url: "/v2/library/nginx/blobs/uploads/",
    ...refused("UNSUPPORTED", 404),
  },

  // Catalog and other paths.
  { id: "catalog", url: "/v2/_catalog", ...refused("UNSUPPORTED", 404) },
  {
    id: "catalog with a huge n",
    url: "/v2/_catalog?n=100000000",
    ...refused("UNSUPPORTED", 404),
  },
  {
    id: "HEAD catalog",
    method: "HEAD",
    url: "/v2/_catalog",
    ...both(404, "none"),
  },
  {
    id: "catalog with trailing slash",
    url: "/v2/_catalog/",
    ...refused("UNSUPPORTED", 404),
  },
  {
    id: "tags list with n beyond 10000",
    url: "/v2/library/nginx/tags/list?n=1000000",
    ...refused("PAGINATION_NUMBER_INVALID"),
  },
  {
    id: "the prefix itself",
    url: "/v2/hub",
    ...refused("UNSUPPORTED", 404),
  },
  {
    id: "ACR token endpoint through the mirror",
    url: "/oauth2/token?scope=repository:hub/x:push&service=x",
    ...refused("UNSUPPORTED", 404),
  },
  {
    id: "ACR's own catalog API",
    url: "/acr/v1/_catalog",
    ...refused("UNSUPPORTED", 404),
  },
  {
    id: "metadata address as path",
    url: "/169.254.169.254/metadata/identity/oauth2/token",
    ...refused("UNSUPPORTED", 404),
  },

  // Routes.
  {
    id: "ns naming an unconfigured registry",
    url: `${M}?ns=evil.example`,
    ...refused("NAME_UNKNOWN", 404),
  },
  {
    id: "ns naming the metadata address",
    url: `${M}?ns=169.254.169.254`,
    ...refused("NAME_UNKNOWN", 404),
  },
  {
    id: "ns with a path",
    url: `${M}?ns=docker.io%2F..%2Fevil`,
    ...refused("NAME_UNKNOWN", 404),
  },

  // Reads that reach the upstream: confined and credential-free.
  {
    id: "client's own bearer JWT is not forwarded",
    url: M,
    headers: { authorization: `Bearer ${CLIENT_JWT}` },
    challenge: { status: 401, upstream: "none", code: "UNAUTHORIZED" },
    inject: { status: 200, upstream: "pull" },
    check: (res) => {
      if (res.status !== 401) return;
      assert.match(
        res.headers.get("www-authenticate") ?? "",
        /error="invalid_token"/,
      );
    },
  },
  {
    id: "Docker Hub Basic login on a pull is not forwarded",
    url: M,
    headers: { authorization: HUB_BASIC },
    ...needsGrant(),
  },
  {
    id: "Docker Hub Basic login on the ping",
    url: "/v2/",
    headers: { authorization: HUB_BASIC },
    challenge: { status: 401, upstream: "none", code: "UNAUTHORIZED" },
    inject: { status: 200, upstream: "none" },
  },
  {
    id: "cookies, proxy credentials and forwarding headers stay behind",
    url: M,
    grant: { names: NGINX },
    headers: {
      cookie: CLIENT_COOKIE,
      "proxy-authorization": "Basic proxy-secret-77",
      "x-forwarded-for": "10.0.0.1",
      "x-forwarded-host": "evil.example",
      forwarded: "for=1.2.3.4;host=evil.example",
      "x-ms-client-request-id": "proxy-secret-77",
      range: "bytes=0-9",
    },
    ...served(),
    check: (_res, _body, proxy) => {
      assert.equal(proxy.upstream.calls[0]?.headers.range, "bytes=0-9");
    },
  },
  {
    id: "Host naming another host",
    url: M,
    grant: { names: NGINX },
    headers: { host: "evil.example" },
    ...served(),
  },
  {
    id: "absolute URL naming another host",
    note:
      "Request keeps scheme and host in the URL; raw absolute-form is in RAW_CASES",
    url: "http://evil.example/v2/library/nginx/manifests/latest",
    grant: { names: NGINX },
    ...served(),
  },
  {
    id: "X-Forwarded-Host without the trust flag",
    url: M,
    headers: {
      "x-forwarded-host": "evil.example",
      "x-forwarded-proto": "https",
    },
    ...needsGrant(),
    check: realmExcludes("evil.example"),
  },
  {
    id: "Host with userinfo is not reflected",
    url: M,
    headers: { host: "user@evil.example" },
    ...needsGrant(),
    check: realmExcludes("evil.example"),
  },
  {
    id: "blob 307 to storage is passed on, not followed",
    url: `/v2/library/nginx/blobs/${DIGEST}`,
    grant: { names: NGINX },
    ...served(307),
    check: (res, _body, proxy) => {
      assert.equal(res.headers.get("location"), STORAGE_URL);
      assert.equal(proxy.upstream.calls.length, 1);
    },
  },
  {
    id: "HEAD manifest stays HEAD",
    method: "HEAD",
    url: M,
    grant: { names: NGINX },
    ...served(),
    check: (_res, _body, proxy) => {
      assert.equal(proxy.upstream.calls[0]?.method, "HEAD");
    },
  },
  {
    id: "client names the prefix itself",
    url: "/v2/hub/library/nginx/manifests/latest",
    grant: { names: ["hub/library/nginx"] },
    ...served(),
    check: (_res, _body, proxy) => {
      assert.equal(
        new URL(proxy.upstream.calls[0]!.url).pathname,
        "/v2/hub/hub/library/nginx/manifests/latest",
      );
    },
  },
  {
    id: "query smuggling on a manifest",
    url: `${M}?ns=docker.io&scope=registry:catalog:*&url=http://evil.example/`,
    grant: { names: NGINX },
    ...served(),
    check: upstreamQueryIs(""),
  },
  {
    id: "tags list with a traversal in last",
    url: "/v2/library/nginx/tags/list?n=10&last=..%2F..%2Fx",
    grant: { names: NGINX },
    ...served(),
    check: upstreamQueryIs("?n=10"),
  },
  {
    id: "referrers with extra query parameters",
    url:
      `/v2/library/nginx/referrers/${DIGEST}?artifactType=a/b&sig=x&ns=docker.io`,
    grant: { names: NGINX },
    ...served(),
    check: upstreamQueryIs("?artifactType=a%2Fb"),
  },

  // Proxy grants (challenge mode checks them; inject mode ignores them).
  {
    id: "grant for another repository",
    url: M,
    grant: { names: ["library/alpine"] },
    ...needsGrant(),
    check: (res) => {
      if (res.status !== 401) return;
      assert.match(
        res.headers.get("www-authenticate") ?? "",
        /error="insufficient_scope"/,
      );
    },
  },
  {
    id: "grant signed by another key",
    url: M,
    grant: { names: NGINX, secret: new Uint8Array(32).fill(9) },
    ...needsGrant(),
  },
  {
    id: "expired grant",
    url: M,
    grant: { names: NGINX, exp: Math.floor(Date.now() / 1000) - 5 },
    ...needsGrant(),
  },
  {
    id: "grant for another registry",
    url: M,
    grant: { names: NGINX, registry: "ghcr.io" },
    ...needsGrant(),
  },
  {
    id: "grant with the signature cut off",
    url: M,
    grant: {
      names: NGINX,
      mangle: (t) => `${t.slice(0, t.lastIndexOf("."))}.`,
    },
    ...needsGrant(),
  },
  {
    id: "grant with a rewritten payload",
    url: M,
    grant: {
      names: ["library/alpine"],
      mangle: (t) => {
        const [head, , sig] = t.split(".");
        const payload = btoa(JSON.stringify({
          registry: "docker.io",
          names: ["library/nginx"],
          exp: 4102444800,
        })).replace(/=+$/, "");
        return `${head}.${payload}.${sig}`;
      },
    },
    ...needsGrant(),
  },

  // The token endpoint.
  {
    id: "token: push only",
    url: "/token?scope=repository:nginx:push",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: delete only",
    url: "/token?scope=repository:nginx:delete",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: wildcard action",
    url: "/token?scope=repository:nginx:*",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: catalog",
    url: "/token?scope=registry:catalog:*",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: registry type with a pull action",
    url: "/token?scope=registry:catalog:pull",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: unknown resource type named like a repository",
    url: "/token?scope=repo:nginx:pull",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: upper-case PULL",
    url: "/token?scope=repository:nginx:PULL",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: no actions",
    url: "/token?scope=repository:nginx:",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: traversal in name",
    url: "/token?scope=repository:../../etc:pull",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: encoded traversal after the prefix",
    url: "/token?scope=repository:hub/..%2F..%2Fadmin:pull",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: host and port in the name",
    url: "/token?scope=repository:127.0.0.2:1/hub/x:pull",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: upper-case name",
    url: "/token?scope=repository:Library/Nginx:pull",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: over-long name",
    url: `/token?scope=repository:${"n".repeat(300)}:pull`,
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: newline-joined push scope",
    url: "/token?scope=repository:nginx:pull%0Arepository:nginx:push",
    ...refused("DENIED", 403),
    asked: [],
  },
  {
    id: "token: HEAD for push",
    method: "HEAD",
    url: "/token?scope=repository:nginx:push",
    ...both(403, "none"),
    asked: [],
  },
  {
    id: "token: pull,push,delete,* clamped to pull",
    url: "/token?scope=repository:nginx:pull,push,delete,*",
    ...tokenOk(NGINX),
    asked: NGINX_SCOPE,
  },
  {
    id: "token: mixed scopes, only the pull survives",
    url:
      "/token?scope=repository:nginx:pull,push&scope=registry:catalog:*&scope=repository:alpine:push",
    ...tokenOk(NGINX),
    asked: NGINX_SCOPE,
  },
  {
    id: "token: space-joined scopes in one parameter",
    url:
      "/token?scope=repository:nginx:pull%20registry:catalog:*%20repository:alpine:delete",
    ...tokenOk(NGINX),
    asked: NGINX_SCOPE,
  },
  {
    id: "token: plugin repository type",
    url: "/token?scope=repository(plugin):nginx:pull,push",
    ...tokenOk(NGINX),
    asked: NGINX_SCOPE,
  },
  {
    id: "token: 16 scopes is the limit",
    url: `/token?${
      Array.from({ length: 16 }, (_, i) => `scope=repository:r${i}:pull`)
        .join("&")
    }`,
    ...tokenOk(Array.from({ length: 16 }, (_, i) => `library/r${i}`)),
    asked: [
      Array.from({ length: 16 }, (_, i) => `repository:hub/library/r${i}:pull`),
    ],
  },
  {
    id: "token: 17 scopes",
    url: `/token?${
      Array.from({ length: 17 }, (_, i) => `scope=repository:r${i}:pull`)
        .join("&")
    }`,
    ...refused("DENIED"),
    asked: [],
  },
  {
    id: "token: 17 scopes in one space-joined parameter",
    url: `/token?scope=${
      Array.from({ length: 17 }, (_, i) => `repository:r${i}:pull`).join("%20")
    }`,
    ...refused("DENIED"),
    asked: [],
  },
  {
    id: "token: Docker Hub Basic login goes nowhere",
    url:
      "/token?account=hubuser&scope=repository:nginx:pull&service=registry.docker.io",
    headers: { authorization: HUB_BASIC },
    ...tokenOk(NGINX),
    asked: NGINX_SCOPE,
  },
  {
    id: "token: service naming another registry is ignored",
    url: "/token?scope=repository:nginx:pull&service=evil.example",
    ...tokenOk(NGINX),
    asked: NGINX_SCOPE,
  },
  {
    id: "token: unconfigured registry route",
    url: "/token/evil.example?scope=repository:nginx:pull",
    ...refused("NAME_UNKNOWN", 404),
    asked: [],
  },
  {
    id: "token: metadata address as route",
    url: "/token/169.254.169.254?scope=repository:nginx:pull",
    ...refused("NAME_UNKNOWN", 404),
    asked: [],
  },
];

/** What one mode must answer to a raw request. */
export interface RawOutcome {
  /** Status the client gets. */
  status: number;
  /** `none`: no upstream request; `pull`: at least one, confined. */
  upstream: "none" | "pull";
}

/** A request sent as raw bytes, for what `Request` would normalize. */
export interface RawCase {
  /** What the row attacks. */
  id: string;
  /** Why it cannot be a `new Request(...)` row. */
  note: string;
  /** The request line and headers (no trailing blank line), then body. */
  head: string;
  /** The body, if any. */
  body?: string;
  /** Outcome in challenge mode. */
  challenge: RawOutcome;
  /** Outcome in inject mode. */
  inject: RawOutcome;
  /** Client-side names of a proxy grant to send along. */
  grant?: string[];
  /** Upstream path the proxy must have used, when it reached upstream. */
  upstreamPath?: string;
  /** A host the challenge realm must not name. */
  realmExcludes?: string;
}

const rawBoth = (status: number, upstream: RawOutcome["upstream"]): {
  challenge: RawOutcome;
  inject: RawOutcome;
} => ({ challenge: { status, upstream }, inject: { status, upstream } });

const rawNeedsGrant: { challenge: RawOutcome; inject: RawOutcome } = {
  challenge: { status: 401, upstream: "none" },
  inject: { status: 200, upstream: "pull" },
};

const rawServed = (names: string[]): {
  challenge: RawOutcome;
  inject: RawOutcome;
  grant: string[];
} => ({ ...rawBoth(200, "pull"), grant: names });

/** Raw HTTP/1.1 requests sent over a socket to `Deno.serve`. */
export const RAW_CASES: readonly RawCase[] = [
  {
    id: "absolute-form request target naming another host",
    note: "Request cannot carry a request-target apart from its URL",
    head:
      "GET http://evil.example/v2/library/nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawServed(["library/nginx"]),
    upstreamPath: "/v2/hub/library/nginx/manifests/latest",
  },
  {
    id: "absolute-form naming the upstream with another repository",
    note: "Request cannot carry a request-target apart from its URL",
    head:
      "GET http://127.0.0.2:1/v2/other/x/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawServed(["other/x"]),
    upstreamPath: "/v2/hub/other/x/manifests/latest",
  },
  {
    id: "absolute-form with userinfo and no Host",
    note: "Request cannot carry a request-target apart from its URL",
    head:
      "GET http://user:proxy-secret-77@evil.example/v2/nginx/manifests/latest HTTP/1.1",
    ...rawServed(["library/nginx"]),
    upstreamPath: "/v2/hub/library/nginx/manifests/latest",
  },
  {
    id: "%2e%2e segments climbing out of /v2/",
    note: "Request resolves %2e%2e before the handler sees it",
    head:
      "GET /v2/library/%2e%2e/%2e%2e/%2e%2e/admin/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawBoth(404, "none"),
  },
  {
    id: "%2F inside the name",
    note: "kept as sent",
    head:
      "GET /v2/library%2F..%2F..%2Fadmin/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawBoth(400, "none"),
  },
  {
    id: "backslashes climbing out of /v2/",
    note: "Request turns backslashes into slashes",
    head: "GET /v2/a\\..\\..\\..\\oauth2\\token HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawBoth(404, "none"),
  },
  {
    id: "Host header naming another host",
    note: "raw Host line, as a client on the network sends it",
    head:
      "GET /v2/library/nginx/manifests/latest HTTP/1.1\r\nHost: evil.example",
    ...rawServed(["library/nginx"]),
    upstreamPath: "/v2/hub/library/nginx/manifests/latest",
  },
  {
    id: "X-Forwarded-Host without the trust flag",
    note: "raw header lines",
    head:
      "GET /v2/library/nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https",
    ...rawNeedsGrant,
    realmExcludes: "evil.example",
  },
  {
    id: "32 KiB header",
    note: "reaches the handler's limit",
    head: `GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${
      "a".repeat(32 * 1024)
    }`,
    ...rawBoth(431, "none"),
  },
  {
    id: "64 KiB header",
    note: "Deno's HTTP layer refuses it (400) before the handler runs",
    head:
      `GET /v2/library/nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${
        "a".repeat(64 * 1024)
      }`,
    ...rawBoth(400, "none"),
  },
  {
    id: "20 KiB URL",
    note: "reaches the handler's limit",
    head: `GET /v2/library/nginx/tags/list?last=${
      "a".repeat(20 * 1024)
    } HTTP/1.1\r\nHost: 127.0.0.1`,
    ...rawBoth(414, "none"),
  },
  {
    id: "POST with a body",
    note: "a real upload body on the wire",
    head:
      "POST /v2/library/nginx/blobs/uploads/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 11",
    body: "layer-bytes",
    ...rawBoth(405, "none"),
  },
  {
    id: "GET with Content-Length: 10 and a body",
    note: "Request refuses a GET body",
    head:
      "GET /v2/library/nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10",
    body: "0123456789",
    ...rawBoth(413, "none"),
  },
  {
    id: "GET with a chunked body",
    note: "Request refuses a GET body",
    head:
      "GET /v2/library/nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked",
    body: "5\r\nhello\r\n0\r\n\r\n",
    ...rawBoth(413, "none"),
  },
  {
    id: "TRACE",
    note: "Request forbids TRACE",
    head: "TRACE /v2/ HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawBoth(405, "none"),
  },
  {
    id: "CONNECT to another host",
    note: "Request forbids CONNECT",
    head: "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443",
    ...rawBoth(405, "none"),
  },
  {
    id: "lower-case get method",
    note: "Request upper-cases get",
    head: "get /v2/library/nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawBoth(405, "none"),
  },
  {
    id: "OPTIONS *",
    note: "asterisk-form has no URL",
    head: "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawBoth(405, "none"),
  },
];

/**
 * Raw paths the issue says must get 400 NAME_INVALID but that the handler
 * resolves first (its `new URL(request.url)` applies WHATWG dot-segment
 * and backslash rules to the raw target Deno.serve hands over).
 */
export const RAW_NORMALIZED_NAMES: readonly RawCase[] = [
  {
    id: "%2e%2e segment inside the name",
    note: "resolved to /v2/nginx/... before validation",
    head:
      "GET /v2/evil/%2e%2e/nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawServed(["library/nginx"]),
    upstreamPath: "/v2/hub/library/nginx/manifests/latest",
  },
  {
    id: "literal .. segment inside the name",
    note: "resolved to /v2/nginx/... before validation",
    head: "GET /v2/evil/../nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawServed(["library/nginx"]),
    upstreamPath: "/v2/hub/library/nginx/manifests/latest",
  },
  {
    id: "%2e segment inside the name",
    note: "resolved to /v2/library/nginx/... before validation",
    head:
      "GET /v2/library/%2e/nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawServed(["library/nginx"]),
    upstreamPath: "/v2/hub/library/nginx/manifests/latest",
  },
  {
    id: "backslash as name separator",
    note: "turned into / before validation",
    head: "GET /v2/library\\nginx/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1",
    ...rawServed(["library/nginx"]),
    upstreamPath: "/v2/hub/library/nginx/manifests/latest",
  },
];
