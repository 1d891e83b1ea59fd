import assert from "node:assert/strict";
import type { Route } from "../../src/names.ts";
import {
  clampToPull,
  formatScope,
  MAX_SCOPES,
  parseScope,
  parseScopes,
  type Scope,
  toClientScope,
  toUpstreamScope,
} from "../../src/scope.ts";

const HUB: Route = { registry: "docker.io", prefix: "hub" };
const GHCR: Route = { registry: "ghcr.io", prefix: "ghcr" };
const BARE: Route = { registry: "quay.io", prefix: "" };

const PARSE: [string, Scope | undefined][] = [
  ["repository:library/nginx:pull", {
    type: "repository",
    name: "library/nginx",
    actions: ["pull"],
  }],
  ["repository:a:pull,push", {
    type: "repository",
    name: "a",
    actions: ["pull", "push"],
  }],
  ["repository:localhost:5000/a/b:pull", {
    type: "repository",
    name: "localhost:5000/a/b",
    actions: ["pull"],
  }],
  ["repository:reg.example:443/a:pull,push", {
    type: "repository",
    name: "reg.example:443/a",
    actions: ["pull", "push"],
  }],
  ["repository(plugin):vieux/sshfs:pull", {
    type: "repository",
    name: "vieux/sshfs",
    actions: ["pull"],
  }],
  ["registry:catalog:*", { type: "registry", name: "catalog", actions: ["*"] }],
  ["repository:a:", { type: "repository", name: "a", actions: [] }],
  ["repository:a:pull,,", { type: "repository", name: "a", actions: ["pull"] }],
  ["repository:a", undefined],
  ["repository", undefined],
  [":a:pull", undefined],
  ["repository::pull", undefined],
  ["", undefined],
];

Deno.test("parseScope() splits type, name (with ports) and actions", () => {
  for (const [item, want] of PARSE) {
    assert.deepEqual(parseScope(item), want, item);
  }
});

Deno.test("parseScopes() reads repeated and space-separated values", () => {
  const out = parseScopes([
    "repository:a:pull repository:b:pull,push",
    "registry:catalog:*",
    "  repository:c:pull  ",
    "bad",
  ]);
  assert.deepEqual(out, [
    { type: "repository", name: "a", actions: ["pull"] },
    { type: "repository", name: "b", actions: ["pull", "push"] },
    { type: "registry", name: "catalog", actions: ["*"] },
    { type: "repository", name: "c", actions: ["pull"] },
    undefined,
  ]);
});

Deno.test("parseScopes() returns nothing for no values", () => {
  assert.deepEqual(parseScopes([]), []);
  assert.deepEqual(parseScopes(["", " "]), []);
});

Deno.test("formatScope() writes type:name:actions", () => {
  assert.equal(
    formatScope({ type: "repository", name: "a/b", actions: ["pull", "push"] }),
    "repository:a/b:pull,push",
  );
  for (const [item, parsed] of PARSE) {
    if (parsed && parsed.actions.length && !item.includes("(")) {
      assert.equal(formatScope(parsed), item.replace(/,+$/, ""), item);
    }
  }
});

Deno.test("MAX_SCOPES is a small positive bound", () => {
  assert.ok(Number.isInteger(MAX_SCOPES) && MAX_SCOPES > 0 && MAX_SCOPES < 100);
});

const CLAMP: [Route, string, Scope | undefined][] = [
  [HUB, "repository:nginx:pull", {
    type: "repository",
    name: "library/nginx",
    actions: ["pull"],
  }],
  [HUB, "repository:library/nginx:push,pull,delete", {
    type: "repository",
    name: "library/nginx",
    actions: ["pull"],
  }],
  [HUB, "repository(plugin):a/b:pull", {
    type: "repository",
    name: "a/b",
    actions: ["pull"],
  }],
  [GHCR, "repository:nginx:pull", {
    type: "repository",
    name: "nginx",
    actions: ["pull"],
  }],
  [HUB, "repository:nginx:push", undefined],
  [HUB, "repository:nginx:delete", undefined],
  [HUB, "repository:nginx:*", undefined],
  [HUB, "repository:nginx:push,*", undefined],
  [HUB, "repository:nginx:pul", undefined],
  [HUB, "repository:nginx:PULL", undefined],
  [HUB, "repository:nginx:", undefined],
  [HUB, "registry:catalog:*", undefined],
  [HUB, "registry:catalog:pull", undefined],
  [HUB, "artifact-repository:nginx:pull", undefined],
  [HUB, "repository:localhost:5000/a:pull", undefined],
  [HUB, "repository:../etc:pull", undefined],
  [HUB, "repository:Nginx:pull", undefined],
  [HUB, "repository:a%2fb:pull", undefined],
  [GHCR, `repository:${"x".repeat(251)}:pull`, undefined],
];

Deno.test("clampToPull() keeps only pull on valid repository names", () => {
  for (const [route, item, want] of CLAMP) {
    const scope = parseScope(item);
    assert.ok(scope, item);
    assert.deepEqual(clampToPull(route, scope), want, item);
  }
});

const TO_UPSTREAM: [Route, string, string][] = [
  [HUB, "library/nginx", "repository:hub/library/nginx:pull"],
  [GHCR, "owner/app", "repository:ghcr/owner/app:pull"],
  [BARE, "a/b", "repository:a/b:pull"],
  [{ registry: "quay.io", prefix: "c/q" }, "a", "repository:c/q/a:pull"],
];

Deno.test("toUpstreamScope() puts clamped scopes under the prefix", () => {
  for (const [route, name, want] of TO_UPSTREAM) {
    const scope = { type: "repository", name, actions: ["pull"] };
    assert.equal(toUpstreamScope(route, scope), want);
  }
});

const TO_CLIENT: [Route, string, string | undefined][] = [
  [HUB, "repository:hub/library/nginx:pull", "repository:library/nginx:pull"],
  [
    HUB,
    "repository:hub/library/nginx:pull,push",
    "repository:library/nginx:pull",
  ],
  [HUB, "repository:hub/library/nginx:push", undefined],
  [HUB, "repository:other/library/nginx:pull", undefined],
  [HUB, "repository:hubx/a:pull", undefined],
  [HUB, "repository:hub:pull", undefined],
  [HUB, "registry:catalog:*", undefined],
  [HUB, "garbage", undefined],
  [GHCR, "repository:ghcr/owner/app:pull", "repository:owner/app:pull"],
  [BARE, "repository:a/b:pull", "repository:a/b:pull"],
];

Deno.test("toClientScope() maps upstream scopes back and drops the rest", () => {
  for (const [route, item, want] of TO_CLIENT) {
    assert.equal(toClientScope(route, item), want, item);
  }
});

Deno.test("toClientScope() inverts toUpstreamScope()", () => {
  for (const route of [HUB, GHCR, BARE]) {
    for (
      const item of ["repository:nginx:pull", "repository:a/b/c:pull,push"]
    ) {
      const clamped = clampToPull(route, parseScope(item)!);
      assert.ok(clamped);
      const up = toUpstreamScope(route, clamped);
      assert.equal(toClientScope(route, up), formatScope(clamped));
    }
  }
});
