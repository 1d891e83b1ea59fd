/**
 * Property tests: name mapping never leaves the prefix, the handler never
 * builds an upstream URL outside `/v2/hub/`, scope clamping never widens
 * access, and response rewriting never hands clients the upstream host.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  canonicalName,
  isValidName,
  parseApiPath,
  type Route,
  toClientName,
  toUpstreamName,
} from "../../src/names.ts";
import {
  rewriteChallenge,
  type RewriteContext,
  rewriteLink,
  rewriteLocation,
} from "../../src/rewrite.ts";
import {
  clampToPull,
  parseScope,
  parseScopes,
  toUpstreamScope,
} from "../../src/scope.ts";
import {
  anyName,
  apiPath,
  nameish,
  scopeString,
  validName,
} from "./arbitraries.ts";
import {
  assertConfined,
  BASE,
  makeProxy,
  PULL_SCOPE_RE,
  signGrant,
} from "./proxy.ts";
import { rawRequest } from "./raw_http.ts";

const HUB: Route = { registry: "docker.io", prefix: "hub" };
const GHCR: Route = { registry: "ghcr.io", prefix: "ghcr/mirror" };
const UP_HOST = "fakeacr.azurecr.io";
const CTX: RewriteContext = {
  upstreamOrigin: `https://${UP_HOST}`,
  route: HUB,
  publicBase: "http://127.0.0.1:8080",
  ns: undefined,
  service: "registry.docker.io",
  realm: "http://127.0.0.1:8080/token",
};
const DIGEST = `sha256:${"c".repeat(64)}`;

function checkMapping(route: Route, name: string): void {
  const canonical = canonicalName(route, name);
  const upstream = toUpstreamName(route, name);
  if (upstream === undefined) return;
  assert.ok(canonical !== undefined, `mapped an invalid name: ${name}`);
  assert.ok(upstream.startsWith(`${route.prefix}/`), upstream);
  assert.ok(isValidName(upstream), upstream);
  assert.equal(toClientName(route, upstream), canonical);
  for (const bad of ["..", "%", "\\", "//", " ", ":"]) {
    assert.ok(!name.includes(bad), `accepted ${JSON.stringify(name)}`);
  }
  assert.equal(name, name.toLowerCase());
  assert.ok(name.length <= 255);
}

Deno.test("names: mapped names stay under the prefix and map back", () => {
  for (const route of [HUB, GHCR]) {
    fc.assert(
      fc.property(anyName, (name) => checkMapping(route, name)),
      { numRuns: 3000 },
    );
  }
});

Deno.test("names: every grammar name within the length limit is accepted", () => {
  fc.assert(
    fc.property(validName, (name) => {
      const upstream = toUpstreamName(HUB, name);
      const canonical = canonicalName(HUB, name)!;
      if (`hub/${canonical}`.length <= 255) {
        assert.equal(upstream, `hub/${canonical}`);
      } else {
        assert.equal(upstream, undefined);
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("names: over-long names are refused on any route", () => {
  const long = fc.array(validName, { minLength: 8, maxLength: 30 })
    .map((parts) => parts.join("/"))
    .filter((n) => n.length > 255);
  const bare: Route = { registry: "quay.io", prefix: "" };
  fc.assert(
    fc.property(long, (name) => {
      assert.equal(isValidName(name), false);
      for (const route of [HUB, GHCR, bare]) {
        assert.equal(toUpstreamName(route, name), undefined);
        assert.equal(canonicalName(route, name), undefined);
      }
    }),
    { numRuns: 200 },
  );
});

Deno.test("names: client names never reach outside the prefix", () => {
  fc.assert(
    fc.property(anyName, (upstream) => {
      const client = toClientName(HUB, upstream);
      if (client === undefined) return;
      assert.equal(
        toUpstreamName({ ...HUB, registry: "ghcr.io" }, client),
        upstream,
      );
    }),
    { numRuns: 2000 },
  );
});

async function grantFor(path: string): Promise<string | undefined> {
  const api = parseApiPath(new URL(path, BASE).pathname);
  if (!("name" in api)) return undefined;
  const name = canonicalName(HUB, api.name);
  return name === undefined ? undefined : await signGrant([name]);
}

Deno.test("handler: generated paths never yield an upstream URL outside /v2/hub/", async () => {
  const proxies = [makeProxy("inject"), makeProxy("challenge")];
  let reached = 0;
  await fc.assert(
    fc.asyncProperty(
      apiPath,
      fc.constantFrom("GET", "HEAD"),
      async (path, method) => {
        let request: Request;
        try {
          request = new Request(`${BASE}${path}`, { method });
        } catch {
          return;
        }
        const grant = await grantFor(request.url);
        for (const proxy of proxies) {
          proxy.upstream.reset();
          proxy.tokens.reset();
          const headers = new Headers();
          if (grant) headers.set("authorization", `Bearer ${grant}`);
          const res = await proxy.handler.fetch(
            new Request(request.url, { method, headers }),
          );
          await res.body?.cancel();
          reached += proxy.upstream.calls.length;
          assertConfined(proxy);
        }
      },
    ),
    { numRuns: 500 },
  );
  assert.ok(
    reached > 50,
    `only ${reached} generated requests reached upstream`,
  );
});

Deno.test("handler: raw socket targets never yield an upstream URL outside /v2/hub/", async () => {
  const proxy = makeProxy("inject");
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    proxy.handler.fetch,
  );
  const target = fc.tuple(
    fc.array(fc.constantFrom(...RAW_PIECES), { minLength: 1, maxLength: 8 }),
    fc.constantFrom("manifests/latest", `blobs/${DIGEST}`, "tags/list"),
  ).map(([parts, tail]) => `/v2/${parts.join("/")}/${tail}`);
  let reached = 0;
  try {
    await fc.assert(
      fc.asyncProperty(target, async (path) => {
        proxy.upstream.reset();
        proxy.tokens.reset();
        await rawRequest(
          server.addr.port,
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1`,
        );
        reached += proxy.upstream.calls.length;
        assertConfined(proxy);
      }),
      { numRuns: 150 },
    );
    // Most generated targets are hostile and refused; some clean ones must
    // still get through, or the property would hold vacuously.
    assert.ok(reached > 2, `only ${reached} raw requests reached upstream`);
  } finally {
    await server.shutdown();
  }
});

const RAW_PIECES = [
  "library",
  "nginx",
  "hub",
  "..",
  ".",
  "%2e%2e",
  "%2E%2e",
  ".%2e",
  "%2e",
  "a\\..\\..",
  "\\",
  "%2f",
  "%5c",
  "",
  "_catalog",
  "v2",
];

Deno.test("scopes: clamping keeps only pull on valid repository names", () => {
  fc.assert(
    fc.property(scopeString, (raw) => {
      for (const scope of parseScopes([raw])) {
        if (!scope) continue;
        for (const route of [HUB, GHCR]) {
          const clamped = clampToPull(route, scope);
          if (!clamped) continue;
          assert.equal(clamped.type, "repository");
          assert.equal(scope.type, "repository", `clamped ${raw}`);
          assert.deepEqual(clamped.actions, ["pull"]);
          assert.ok(scope.actions.includes("pull"), raw);
          assert.ok(isValidName(clamped.name), clamped.name);
          const up = toUpstreamScope(route, clamped);
          if (route === HUB) assert.match(up, PULL_SCOPE_RE);
          const parsed = parseScope(up)!;
          assert.ok(parsed.name.startsWith(`${route.prefix}/`), up);
          for (const a of parsed.actions) {
            assert.ok(scope.actions.includes(a), `${up} gained ${a}`);
          }
        }
      }
    }),
    { numRuns: 3000 },
  );
});

Deno.test("scopes: /token never asks upstream for more than pull", async () => {
  for (const mode of ["challenge", "inject"] as const) {
    const proxy = makeProxy(mode);
    await fc.assert(
      fc.asyncProperty(
        fc.array(scopeString, { minLength: 0, maxLength: 20 }),
        async (scopes) => {
          proxy.tokens.reset();
          const query = new URLSearchParams();
          for (const s of scopes) query.append("scope", s);
          const res = await proxy.handler.fetch(
            new Request(`${BASE}/token?${query}`),
          );
          const body = await res.text();
          assertConfined(proxy);
          assert.deepEqual(proxy.upstream.calls, []);
          if (res.status !== 200) return;
          const { token } = JSON.parse(body);
          const grant = JSON.parse(
            atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")),
          );
          assert.ok(grant.names.length <= 16);
          for (const n of grant.names) assert.ok(isValidName(n), n);
        },
      ),
      { numRuns: 300 },
    );
  }
});

const insidePrefixUrl: fc.Arbitrary<string> = fc.tuple(
  validName.filter((n) => n.length < 200),
  fc.constantFrom(
    `blobs/${DIGEST}`,
    "manifests/latest",
    "tags/list",
    `referrers/${DIGEST}`,
  ),
  fc.constantFrom("", "?n=10&last=a", "?_state=abc&digest=x"),
  fc.boolean(),
).map(([name, tail, q, absolute]) =>
  `${absolute ? `https://${UP_HOST}` : ""}/v2/hub/${name}/${tail}${q}`
);

Deno.test("rewrite: prefix URLs on the upstream map onto the proxy", () => {
  fc.assert(
    fc.property(insidePrefixUrl, (url) => {
      const loc = rewriteLocation(url, CTX);
      assert.ok(loc !== undefined, url);
      assert.ok(!loc.includes(UP_HOST), loc);
      assert.ok(loc.startsWith(`${CTX.publicBase}/v2/`), loc);
      assert.ok(!loc.includes("/v2/hub/"), loc);
      const link = rewriteLink(`<${url}>; rel="next"`, CTX);
      assert.ok(!link.includes(UP_HOST), link);
    }),
    { numRuns: 1000 },
  );
});

const upstreamScope: fc.Arbitrary<string> = fc.tuple(
  fc.constantFrom("repository", "registry", "repository(plugin)"),
  fc.oneof(
    validName.map((n) => `hub/${n}`),
    validName,
    nameish,
    fc.constant(UP_HOST),
  ),
  fc.constantFrom("pull", "pull,push", "push", "*", "delete,pull"),
).map(([t, n, a]) => `${t}:${n}:${a}`);

Deno.test("rewrite: challenges name only the proxy and pull scopes", () => {
  fc.assert(
    fc.property(
      fc.array(upstreamScope, { maxLength: 4 }),
      fc.oneof(fc.constant(undefined), fc.string({ maxLength: 20 })),
      fc.constantFrom("Bearer", "bearer", "Basic"),
      (scopes, error, scheme) => {
        const params = [
          `realm="https://${UP_HOST}/oauth2/token"`,
          `service="${UP_HOST}"`,
        ];
        if (scopes.length) params.push(`scope="${scopes.join(" ")}"`);
        if (error !== undefined) {
          params.push(`error="${error.replace(/["\\]/g, "")}"`);
        }
        const out = rewriteChallenge(`${scheme} ${params.join(",")}`, CTX);
        assert.ok(!out.includes(`${UP_HOST}/`), out);
        assert.ok(!out.includes(`"${UP_HOST}"`), out);
        assert.ok(out.startsWith(`Bearer realm="${CTX.realm}"`), out);
        const scope = /scope="([^"]*)"/.exec(out)?.[1];
        const got = scope?.split(" ") ?? [];
        for (const s of got) {
          assert.match(s, /^repository:[a-z0-9._\/-]+:pull$/);
        }
        const expected = scheme === "Basic" ? [] : scopes.flatMap((s) => {
          const p = parseScope(s);
          const ok = p?.type === "repository" && p.actions.includes("pull") &&
            p.name.startsWith("hub/") && isValidName(p.name);
          return ok ? [`repository:${p.name.slice(4)}:pull`] : [];
        });
        assert.deepEqual(got, expected);
      },
    ),
    { numRuns: 1000 },
  );
});

const anyUpstreamApiUrl: fc.Arbitrary<string> = fc.tuple(
  validName.filter((n) => n.length < 200),
  fc.constantFrom(`blobs/${DIGEST}`, "manifests/latest", "tags/list"),
).map(([name, tail]) => `https://${UP_HOST}/v2/${name}/${tail}`);

// A Location or Link on the upstream's own host whose repository lies
// outside the prefix (or is not an API path) is withheld, never emitted.
Deno.test({
  name: "rewrite: upstream URLs outside the prefix never reach clients",
  fn: () => {
    fc.assert(
      fc.property(anyUpstreamApiUrl, (url) => {
        assert.ok(!(rewriteLocation(url, CTX) ?? "").includes(UP_HOST), url);
        assert.ok(!rewriteLink(`<${url}>`, CTX).includes(UP_HOST), url);
      }),
      { numRuns: 300 },
    );
  },
});
