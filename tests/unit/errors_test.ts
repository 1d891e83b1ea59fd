import assert from "node:assert/strict";
import {
  API_VERSION_HEADER,
  registryError,
  type RegistryErrorCode,
} from "../../src/errors.ts";

Deno.test("API_VERSION_HEADER is Docker's registry/2.0 header", () => {
  assert.deepEqual([...API_VERSION_HEADER], [
    "docker-distribution-api-version",
    "registry/2.0",
  ]);
});

const CASES: [number, RegistryErrorCode, string][] = [
  [400, "NAME_INVALID", "invalid repository name"],
  [401, "UNAUTHORIZED", "authentication required"],
  [403, "DENIED", "this mirror grants only pull access"],
  [404, "MANIFEST_UNKNOWN", "manifest unknown"],
  [405, "UNSUPPORTED", "this mirror is read-only"],
  [429, "TOOMANYREQUESTS", "slow down"],
  [502, "UNKNOWN", "could not obtain an upstream token"],
];

for (const [status, code, message] of CASES) {
  Deno.test(`registryError() answers ${status} ${code} in the OCI shape`, async () => {
    const res = registryError(status, code, message);
    assert.equal(res.status, status);
    assert.equal(
      res.headers.get("content-type"),
      "application/json; charset=utf-8",
    );
    assert.equal(res.headers.get(API_VERSION_HEADER[0]), "registry/2.0");
    assert.deepEqual(await res.json(), { errors: [{ code, message }] });
  });
}

Deno.test("registryError() includes a detail when given", async () => {
  const detail = [{ Type: "repository", Name: "library/a", Action: "pull" }];
  const res = registryError(401, "UNAUTHORIZED", "authentication required", {
    detail,
  });
  assert.deepEqual(await res.json(), {
    errors: [{
      code: "UNAUTHORIZED",
      message: "authentication required",
      detail,
    }],
  });
  const nullDetail = registryError(400, "DENIED", "x", { detail: null });
  assert.deepEqual(await nullDetail.json(), {
    errors: [{ code: "DENIED", message: "x", detail: null }],
  });
});

Deno.test("registryError() adds extra headers and keeps its own", () => {
  const res = registryError(405, "UNSUPPORTED", "read-only", {
    headers: {
      allow: "GET, HEAD",
      "www-authenticate": 'Bearer realm="x"',
      "content-type": "text/html",
      "docker-distribution-api-version": "bogus",
    },
  });
  assert.equal(res.headers.get("allow"), "GET, HEAD");
  assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="x"');
  assert.equal(
    res.headers.get("content-type"),
    "application/json; charset=utf-8",
  );
  assert.equal(res.headers.get(API_VERSION_HEADER[0]), "registry/2.0");
});

Deno.test("registryError() answers HEAD without a body but with its length", async () => {
  const message = "manifest unknown: ü";
  const full = registryError(404, "MANIFEST_UNKNOWN", message);
  const bytes = new Uint8Array(await full.arrayBuffer());
  const head = registryError(404, "MANIFEST_UNKNOWN", message, { head: true });
  assert.equal(head.status, 404);
  assert.equal(head.body, null);
  assert.equal(head.headers.get("content-length"), String(bytes.length));
  assert.equal(
    head.headers.get("content-type"),
    "application/json; charset=utf-8",
  );
  assert.equal(head.headers.get(API_VERSION_HEADER[0]), "registry/2.0");
});

Deno.test("registryError() escapes odd messages as JSON", async () => {
  const message = 'quote " backslash \\ newline \n </script>';
  const res = registryError(400, "NAME_INVALID", message);
  const text = await res.text();
  assert.ok(!text.includes("\n"));
  assert.equal(JSON.parse(text).errors[0].message, message);
});
