/**
 * Token scopes (`repository:library/nginx:pull`): parsing, clamping to
 * pull-only access, and mapping names between client and upstream.
 *
 * @module
 */

import {
  canonicalName,
  type Route,
  toClientName,
  toUpstreamName,
} from "./names.ts";

/** One resource scope. */
export interface Scope {
  /** Resource type, for example `repository` or `registry`. */
  type: string;
  /** Resource name; may itself hold a `:` (a host port). */
  name: string;
  /** Requested actions. */
  actions: string[];
}

/** The most scopes one token request may carry; more are refused. */
export const MAX_SCOPES = 16;

/**
 * Parses scope strings as they arrive in repeated `scope` parameters, each
 * possibly holding several space-separated scopes. Unparseable items come
 * back as `undefined` so callers can count what they drop.
 *
 * @param values The raw `scope` values.
 * @returns One entry per item.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseScopes } from "./scope.ts";
 * const [s] = parseScopes(["repository:library/nginx:pull,push"]);
 * assert(s?.actions.length === 2);
 * ```
 */
export function parseScopes(values: readonly string[]): (Scope | undefined)[] {
  const out: (Scope | undefined)[] = [];
  for (const value of values) {
    for (const item of value.split(" ")) {
      if (item) out.push(parseScope(item));
    }
  }
  return out;
}

/**
 * Parses one scope. The type is up to the first `:`, the actions after the
 * last one; the name is everything between (it may carry a port).
 *
 * @param item The scope string.
 * @returns The scope, or `undefined` when malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseScope } from "./scope.ts";
 * assert(parseScope("registry:catalog:*")?.type === "registry");
 * ```
 */
export function parseScope(item: string): Scope | undefined {
  const first = item.indexOf(":");
  const last = item.lastIndexOf(":");
  if (first <= 0 || last === first) return undefined;
  let type = item.slice(0, first);
  if (type === "repository(plugin)") type = "repository";
  const name = item.slice(first + 1, last);
  const actions = item.slice(last + 1).split(",").filter((a) => a !== "");
  if (!name) return undefined;
  return { type, name, actions };
}

/**
 * Formats a scope as `type:name:action[,action]`.
 *
 * @param scope The scope.
 * @returns Its string form.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatScope } from "./scope.ts";
 * const s = formatScope({ type: "repository", name: "a", actions: ["pull"] });
 * assert(s === "repository:a:pull");
 * ```
 */
export function formatScope(scope: Scope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(",")}`;
}

/**
 * Clamps a client-side scope to what a read-only mirror grants: repository
 * scopes with the `pull` action on a valid name, canonicalised for the
 * route. Everything else (`push`, `delete`, `*`, unknown actions, other
 * resource types, invalid names) is dropped.
 *
 * @param route The route the token is for.
 * @param scope The requested scope.
 * @returns The pull-only scope, or `undefined` when nothing is left.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clampToPull } from "./scope.ts";
 * const hub = { registry: "docker.io", prefix: "hub" };
 * const s = clampToPull(hub, {
 *   type: "repository",
 *   name: "nginx",
 *   actions: ["push", "pull"],
 * });
 * assert(s?.name === "library/nginx" && s.actions.join() === "pull");
 * ```
 */
export function clampToPull(route: Route, scope: Scope): Scope | undefined {
  if (scope.type !== "repository") return undefined;
  if (!scope.actions.includes("pull")) return undefined;
  const name = canonicalName(route, scope.name);
  if (name === undefined || toUpstreamName(route, name) === undefined) {
    return undefined;
  }
  return { type: "repository", name, actions: ["pull"] };
}

/**
 * Maps a clamped client scope onto the upstream prefix.
 *
 * @param route The route.
 * @param scope A scope returned by {@link clampToPull}.
 * @returns The upstream scope string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toUpstreamScope } from "./scope.ts";
 * const hub = { registry: "docker.io", prefix: "hub" };
 * const s = toUpstreamScope(hub, {
 *   type: "repository",
 *   name: "library/nginx",
 *   actions: ["pull"],
 * });
 * assert(s === "repository:hub/library/nginx:pull");
 * ```
 */
export function toUpstreamScope(route: Route, scope: Scope): string {
  const name = toUpstreamName(route, scope.name) ?? scope.name;
  return formatScope({ ...scope, name });
}

/**
 * Maps an upstream scope string (from a challenge) back to the client's
 * view, clamped to pull; scopes outside the prefix are dropped.
 *
 * @param route The route.
 * @param item The upstream scope string.
 * @returns The client scope string, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toClientScope } from "./scope.ts";
 * const hub = { registry: "docker.io", prefix: "hub" };
 * const s = toClientScope(hub, "repository:hub/library/nginx:pull");
 * assert(s === "repository:library/nginx:pull");
 * ```
 */
export function toClientScope(route: Route, item: string): string | undefined {
  const scope = parseScope(item);
  if (!scope || scope.type !== "repository") return undefined;
  const name = toClientName(route, scope.name);
  if (name === undefined || !scope.actions.includes("pull")) return undefined;
  return formatScope({ type: "repository", name, actions: ["pull"] });
}
