/**
 * Repository names, references and cache-rule routes: the OCI distribution
 * grammar, and the mapping between the names clients use and the names
 * under an ACR cache-rule prefix.
 *
 * @module
 */

/** A cache-rule route: requests for `registry` go under `prefix` in ACR. */
export interface Route {
  /** Source registry this route stands for (`docker.io`, `ghcr.io`, ...). */
  readonly registry: string;
  /** The cache rule's target prefix without slashes; empty for none. */
  readonly prefix: string;
}

/** The longest repository name clients accept, per the distribution spec. */
export const MAX_NAME_LENGTH = 255;

const COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+$/;
const PREFIX_RE = new RegExp(`^(?:${COMPONENT}(?:/${COMPONENT})*)?$`);
const HOST_RE =
  /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?$/;

/** Registries whose single-segment names live under `library/`. */
const DOCKER_HUB = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
]);

/**
 * Tells whether a string is a repository name in the OCI grammar and no
 * longer than {@link MAX_NAME_LENGTH}.
 *
 * @param name The candidate name.
 * @returns Whether it is valid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidName } from "./names.ts";
 * assert(isValidName("library/nginx"));
 * assert(!isValidName("library/../etc"));
 * ```
 */
export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

/**
 * Tells whether a string is a tag.
 *
 * @param ref The candidate.
 * @returns Whether it matches the tag grammar.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidTag } from "./names.ts";
 * assert(isValidTag("1.36-musl"));
 * ```
 */
export function isValidTag(ref: string): boolean {
  return TAG_RE.test(ref);
}

/**
 * Tells whether a string is a digest; `sha256` and `sha512` must also have
 * the right length of lower-case hex.
 *
 * @param ref The candidate.
 * @returns Whether it matches the digest grammar.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidDigest } from "./names.ts";
 * assert(isValidDigest("sha256:" + "a".repeat(64)));
 * assert(!isValidDigest("sha256:abc"));
 * ```
 */
export function isValidDigest(ref: string): boolean {
  if (ref.length > 256 || !DIGEST_RE.test(ref)) return false;
  const [alg, hex = ""] = ref.split(":", 2);
  if (alg === "sha256") return /^[a-f0-9]{64}$/.test(hex);
  if (alg === "sha512") return /^[a-f0-9]{128}$/.test(hex);
  return true;
}

/**
 * Tells whether a string is usable as a cache-rule prefix: empty, or name
 * components joined by slashes, with no leading or trailing slash.
 *
 * @param prefix The candidate.
 * @returns Whether it is valid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidPrefix } from "./names.ts";
 * assert(isValidPrefix("hub") && !isValidPrefix("/hub"));
 * ```
 */
export function isValidPrefix(prefix: string): boolean {
  return prefix.length < MAX_NAME_LENGTH && PREFIX_RE.test(prefix);
}

/**
 * Tells whether a string is a registry host as `ns` carries it
 * (lower-case DNS name with an optional port).
 *
 * @param host The candidate.
 * @returns Whether it is valid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidRegistryHost } from "./names.ts";
 * assert(isValidRegistryHost("ghcr.io"));
 * ```
 */
export function isValidRegistryHost(host: string): boolean {
  return host.length <= 253 && HOST_RE.test(host);
}

/**
 * Tells whether a registry host is Docker Hub under one of its names
 * (`docker.io`, `index.docker.io`, `registry-1.docker.io`).
 *
 * @param registry The host, lower case.
 * @returns Whether it is Docker Hub.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isDockerHubRegistry } from "./names.ts";
 * assert(isDockerHubRegistry("registry-1.docker.io"));
 * ```
 */
export function isDockerHubRegistry(registry: string): boolean {
  return DOCKER_HUB.has(registry);
}

/**
 * Tells whether a route stands for Docker Hub, where `nginx` means
 * `library/nginx`.
 *
 * @param route The route.
 * @returns Whether Docker Hub naming applies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isDockerHub } from "./names.ts";
 * assert(isDockerHub({ registry: "docker.io", prefix: "hub" }));
 * ```
 */
export function isDockerHub(route: Route): boolean {
  return isDockerHubRegistry(route.registry);
}

/**
 * Maps a client's repository name onto the upstream name under the route's
 * prefix, or returns `undefined` when the name is not valid. The result is
 * built from the validated name only.
 *
 * @param route The route the request belongs to.
 * @param name The name the client sent.
 * @returns The upstream name, or `undefined` to refuse.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toUpstreamName } from "./names.ts";
 * const route = { registry: "docker.io", prefix: "hub" };
 * assert(toUpstreamName(route, "nginx") === "hub/library/nginx");
 * ```
 */
export function toUpstreamName(route: Route, name: string): string | undefined {
  const canonical = canonicalName(route, name);
  if (canonical === undefined) return undefined;
  const upstream = route.prefix ? `${route.prefix}/${canonical}` : canonical;
  return upstream.length <= MAX_NAME_LENGTH ? upstream : undefined;
}

/**
 * Maps an upstream name back to the name clients see, or returns
 * `undefined` when it lies outside the route's prefix.
 *
 * @param route The route.
 * @param upstream The upstream repository name.
 * @returns The client-side name, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toClientName } from "./names.ts";
 * const route = { registry: "docker.io", prefix: "hub" };
 * assert(toClientName(route, "hub/library/nginx") === "library/nginx");
 * ```
 */
export function toClientName(
  route: Route,
  upstream: string,
): string | undefined {
  if (!isValidName(upstream)) return undefined;
  if (!route.prefix) return upstream;
  const head = `${route.prefix}/`;
  return upstream.startsWith(head) ? upstream.slice(head.length) : undefined;
}

/**
 * Validates a client name and applies Docker Hub naming (`nginx` becomes
 * `library/nginx` on a Docker Hub route).
 *
 * @param route The route.
 * @param name The name the client sent.
 * @returns The canonical client-side name, or `undefined` when invalid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalName } from "./names.ts";
 * const hub = { registry: "docker.io", prefix: "hub" };
 * assert(canonicalName(hub, "nginx") === "library/nginx");
 * ```
 */
export function canonicalName(route: Route, name: string): string | undefined {
  if (!isValidName(name)) return undefined;
  if (isDockerHub(route) && !name.includes("/")) return `library/${name}`;
  return name;
}

/** What a `/v2/...` path asks for. */
export type ApiPath =
  | { kind: "ping" }
  | { kind: "catalog" }
  | {
    kind: "manifests" | "blobs" | "referrers";
    /** The raw name segment, not yet validated. */
    name: string;
    /** The raw reference, not yet validated. */
    reference: string;
  }
  | { kind: "tags"; name: string }
  | { kind: "unknown" };

const RESOURCE_RE = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TAGS_RE = /^\/v2\/(.+)\/tags\/list$/;

/**
 * Classifies a request path of the registry API. Names and references are
 * returned raw; callers validate them.
 *
 * @param pathname The URL path, still percent-encoded.
 * @returns What the path asks for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseApiPath } from "./names.ts";
 * const p = parseApiPath("/v2/library/nginx/manifests/latest");
 * assert(p.kind === "manifests" && p.name === "library/nginx");
 * ```
 */
export function parseApiPath(pathname: string): ApiPath {
  if (pathname === "/v2" || pathname === "/v2/") return { kind: "ping" };
  if (pathname === "/v2/_catalog") return { kind: "catalog" };
  const resource = RESOURCE_RE.exec(pathname);
  if (resource) {
    return {
      kind: resource[2] as "manifests" | "blobs" | "referrers",
      name: resource[1]!,
      reference: resource[3]!,
    };
  }
  const tags = TAGS_RE.exec(pathname);
  if (tags) return { kind: "tags", name: tags[1]! };
  return { kind: "unknown" };
}

/**
 * Tells whether a raw, still percent-encoded request path holds syntax a
 * URL parser would rewrite or that no valid name needs: backslashes,
 * encoded dots, slashes or backslashes, `.` and `..` segments, and empty
 * segments. Checked before parsing, so a name is judged as the client sent
 * it rather than after normalisation.
 *
 * @param rawPath The path as it arrived.
 * @returns Whether to refuse it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasUnsafePathSyntax } from "./names.ts";
 * assert(hasUnsafePathSyntax("/v2/a/%2e%2e/b/manifests/x"));
 * assert(!hasUnsafePathSyntax("/v2/library/a/manifests/1.36"));
 * ```
 */
export function hasUnsafePathSyntax(rawPath: string): boolean {
  return /\\|%2e|%2f|%5c|\/\.{1,2}(?:\/|$)|\/\//i.test(rawPath);
}
