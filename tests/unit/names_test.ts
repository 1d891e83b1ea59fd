import assert from "node:assert/strict";
import {
  type ApiPath,
  canonicalName,
  isDockerHub,
  isValidDigest,
  isValidName,
  isValidPrefix,
  isValidRegistryHost,
  isValidTag,
  MAX_NAME_LENGTH,
  parseApiPath,
  type Route,
  toClientName,
  toUpstreamName,
} from "../../src/names.ts";

const HUB: Route = { registry: "docker.io", prefix: "hub" };
const HUB_NO_PREFIX: Route = { registry: "docker.io", prefix: "" };
const GHCR: Route = { registry: "ghcr.io", prefix: "ghcr" };
const SHA256 = "sha256:" + "a1".repeat(32);

const VALID_NAMES = [
  "nginx",
  "library/nginx",
  "a/b/c/d",
  "a0",
  "0",
  "my.app",
  "my_app",
  "my__app",
  "my-app",
  "my---app",
  "a.b_c__d-e---f",
  "blobs/manifests",
  "x".repeat(MAX_NAME_LENGTH),
  "a/" + "b".repeat(MAX_NAME_LENGTH - 2),
];

const INVALID_NAMES = [
  "",
  ".",
  "..",
  "a/..",
  "../a",
  "a/../b",
  "a/./b",
  "a//b",
  "/a",
  "a/",
  "Nginx",
  "library/NGINX",
  "a%2e%2e",
  "%2e%2e/a",
  "a%2fb",
  "a\\b",
  "a\\..\\b",
  "a___b",
  "a.-b",
  "a..b",
  "-a",
  "a-",
  "_a",
  "a_",
  ".a",
  "a.",
  "a b",
  "a:b",
  "a@b",
  "a\nb",
  "x".repeat(MAX_NAME_LENGTH + 1),
  "x".repeat(256),
];

Deno.test("isValidName() accepts names in the OCI grammar", () => {
  for (const name of VALID_NAMES) assert.ok(isValidName(name), name);
});

Deno.test("isValidName() refuses names outside the OCI grammar", () => {
  for (const name of INVALID_NAMES) {
    assert.equal(isValidName(name), false, JSON.stringify(name));
  }
});

Deno.test("MAX_NAME_LENGTH is 255", () => {
  assert.equal(MAX_NAME_LENGTH, 255);
});

const TAGS: [string, boolean][] = [
  ["latest", true],
  ["1.36-musl", true],
  ["_private", true],
  ["A_B.c-d", true],
  ["x".repeat(128), true],
  ["x".repeat(129), false],
  ["", false],
  [".hidden", false],
  ["-dash", false],
  ["a/b", false],
  ["a:b", false],
  ["a+b", false],
  ["%2e", false],
  ["sha256:" + "a".repeat(64), false],
];

Deno.test("isValidTag() follows the tag grammar", () => {
  for (const [tag, want] of TAGS) assert.equal(isValidTag(tag), want, tag);
});

const DIGESTS: [string, boolean][] = [
  [SHA256, true],
  ["sha256:" + "0".repeat(64), true],
  ["sha512:" + "f".repeat(128), true],
  ["sha256:" + "a".repeat(63), false],
  ["sha256:" + "a".repeat(65), false],
  ["sha256:" + "A".repeat(64), false],
  ["sha256:" + "g".repeat(64), false],
  ["sha256:abc", false],
  ["sha512:" + "f".repeat(64), false],
  ["sha256", false],
  [":" + "a".repeat(64), false],
  ["sha256:", false],
  ["SHA256:" + "a".repeat(64), false],
  ["sha256:" + "a".repeat(64) + "/x", false],
  ["multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", true],
  ["other:" + "x".repeat(300), false],
  ["latest", false],
];

Deno.test("isValidDigest() follows the digest grammar and sha lengths", () => {
  for (const [digest, want] of DIGESTS) {
    assert.equal(isValidDigest(digest), want, digest);
  }
});

const PREFIXES: [string, boolean][] = [
  ["", true],
  ["hub", true],
  ["cache/hub", true],
  ["my-cache.v2", true],
  ["/hub", false],
  ["hub/", false],
  ["Hub", false],
  ["hub//x", false],
  ["..", false],
  ["hub/..", false],
  ["h ub", false],
  ["x".repeat(MAX_NAME_LENGTH), false],
];

Deno.test("isValidPrefix() accepts empty or slash-joined components", () => {
  for (const [prefix, want] of PREFIXES) {
    assert.equal(isValidPrefix(prefix), want, prefix);
  }
});

const HOSTS: [string, boolean][] = [
  ["docker.io", true],
  ["ghcr.io", true],
  ["registry-1.docker.io", true],
  ["localhost", true],
  ["localhost:5000", true],
  ["127.0.0.1:5000", true],
  ["GHCR.IO", false],
  ["", false],
  ["-bad.io", false],
  ["bad-.io", false],
  ["a..b", false],
  ["ghcr.io/x", false],
  ["ghcr.io:", false],
  ["ghcr.io:123456", false],
  ["user@ghcr.io", false],
  ["[::1]:5000", false],
  ["a".repeat(254), false],
];

Deno.test("isValidRegistryHost() accepts lower-case hosts with a port", () => {
  for (const [host, want] of HOSTS) {
    assert.equal(isValidRegistryHost(host), want, host);
  }
});

Deno.test("isDockerHub() knows Docker Hub's registry names", () => {
  for (
    const registry of ["docker.io", "index.docker.io", "registry-1.docker.io"]
  ) {
    assert.ok(isDockerHub({ registry, prefix: "" }), registry);
  }
  for (
    const registry of ["ghcr.io", "quay.io", "docker.com", "mirror.docker.io"]
  ) {
    assert.equal(isDockerHub({ registry, prefix: "" }), false, registry);
  }
});

const CANONICAL: [Route, string, string | undefined][] = [
  [HUB, "nginx", "library/nginx"],
  [HUB, "library/nginx", "library/nginx"],
  [HUB, "bitnami/redis", "bitnami/redis"],
  [HUB_NO_PREFIX, "nginx", "library/nginx"],
  [{ registry: "index.docker.io", prefix: "hub" }, "nginx", "library/nginx"],
  [GHCR, "nginx", "nginx"],
  [GHCR, "owner/app", "owner/app"],
  [HUB, "NGINX", undefined],
  [HUB, "../x", undefined],
  [GHCR, "a//b", undefined],
];

Deno.test("canonicalName() adds library/ for Docker Hub only", () => {
  for (const [route, name, want] of CANONICAL) {
    assert.equal(canonicalName(route, name), want, `${route.registry} ${name}`);
  }
});

const UPSTREAM: [Route, string, string | undefined][] = [
  [HUB, "nginx", "hub/library/nginx"],
  [HUB, "library/nginx", "hub/library/nginx"],
  [HUB, "bitnami/redis", "hub/bitnami/redis"],
  [HUB_NO_PREFIX, "nginx", "library/nginx"],
  [GHCR, "owner/app", "ghcr/owner/app"],
  [GHCR, "app", "ghcr/app"],
  [{ registry: "quay.io", prefix: "" }, "a/b", "a/b"],
  [{ registry: "quay.io", prefix: "cache/quay" }, "a/b", "cache/quay/a/b"],
  [HUB, "a/../b", undefined],
  [HUB, "A", undefined],
  [HUB, "", undefined],
  [GHCR, "x".repeat(MAX_NAME_LENGTH - 5), "ghcr/" + "x".repeat(250)],
  [GHCR, "x".repeat(MAX_NAME_LENGTH - 4), undefined],
  [HUB, "x".repeat(MAX_NAME_LENGTH - 12), "hub/library/" + "x".repeat(243)],
  [HUB, "x".repeat(MAX_NAME_LENGTH - 11), undefined],
];

Deno.test("toUpstreamName() puts valid names under the prefix", () => {
  for (const [route, name, want] of UPSTREAM) {
    assert.equal(
      toUpstreamName(route, name),
      want,
      `${route.registry}=${route.prefix} ${name}`,
    );
  }
});

const CLIENT: [Route, string, string | undefined][] = [
  [HUB, "hub/library/nginx", "library/nginx"],
  [HUB, "hub/hub/x", "hub/x"],
  [HUB, "other/library/nginx", undefined],
  [HUB, "hubx/library/nginx", undefined],
  [HUB, "hub", undefined],
  [HUB, "hub/", undefined],
  [HUB, "hub/../x", undefined],
  [HUB_NO_PREFIX, "library/nginx", "library/nginx"],
  [GHCR, "ghcr/owner/app", "owner/app"],
  [{ registry: "quay.io", prefix: "cache/quay" }, "cache/quay/a", "a"],
  [{ registry: "quay.io", prefix: "cache/quay" }, "cache/a", undefined],
];

Deno.test("toClientName() strips the prefix and refuses names outside it", () => {
  for (const [route, upstream, want] of CLIENT) {
    assert.equal(toClientName(route, upstream), want, upstream);
  }
});

Deno.test("toClientName() inverts toUpstreamName() on canonical names", () => {
  const routes = [HUB, HUB_NO_PREFIX, GHCR, {
    registry: "quay.io",
    prefix: "a/b",
  }];
  for (const route of routes) {
    for (const name of VALID_NAMES) {
      const upstream = toUpstreamName(route, name);
      if (upstream === undefined) continue;
      assert.equal(
        toClientName(route, upstream),
        canonicalName(route, name),
        `${route.prefix} ${name}`,
      );
    }
  }
});

const PATHS: [string, ApiPath][] = [
  ["/v2", { kind: "ping" }],
  ["/v2/", { kind: "ping" }],
  ["/v2/_catalog", { kind: "catalog" }],
  ["/v2/library/nginx/manifests/latest", {
    kind: "manifests",
    name: "library/nginx",
    reference: "latest",
  }],
  [`/v2/nginx/manifests/${SHA256}`, {
    kind: "manifests",
    name: "nginx",
    reference: SHA256,
  }],
  [`/v2/a/b/c/blobs/${SHA256}`, {
    kind: "blobs",
    name: "a/b/c",
    reference: SHA256,
  }],
  [`/v2/a/referrers/${SHA256}`, {
    kind: "referrers",
    name: "a",
    reference: SHA256,
  }],
  ["/v2/library/nginx/tags/list", { kind: "tags", name: "library/nginx" }],
  ["/v2/a/blobs/b/manifests/latest", {
    kind: "manifests",
    name: "a/blobs/b",
    reference: "latest",
  }],
  ["/v2/manifests/manifests/latest", {
    kind: "manifests",
    name: "manifests",
    reference: "latest",
  }],
  [`/v2/blobs/blobs/${SHA256}`, {
    kind: "blobs",
    name: "blobs",
    reference: SHA256,
  }],
  ["/v2/a/manifests/tags/list", { kind: "tags", name: "a/manifests" }],
  ["/v2/tags/tags/list", { kind: "tags", name: "tags" }],
  ["/v2/a%2fb/manifests/x", {
    kind: "manifests",
    name: "a%2fb",
    reference: "x",
  }],
  ["/v2/a/blobs/uploads/", { kind: "unknown" }],
  ["/v2/a/blobs/uploads/0b5c-uuid", { kind: "unknown" }],
  ["/v2/a/manifests/", { kind: "unknown" }],
  ["/v2/a/manifests", { kind: "unknown" }],
  ["/v2/a/tags/list/", { kind: "unknown" }],
  ["/v2/a/tags", { kind: "unknown" }],
  ["/v2//manifests/x", { kind: "unknown" }],
  ["/v2/_catalog/", { kind: "unknown" }],
  ["/v2/a", { kind: "unknown" }],
  ["/v3/a/manifests/x", { kind: "unknown" }],
  ["/", { kind: "unknown" }],
  ["", { kind: "unknown" }],
];

for (const [path, want] of PATHS) {
  Deno.test(`parseApiPath() reads ${JSON.stringify(path)}`, () => {
    assert.deepEqual(parseApiPath(path), want);
  });
}
