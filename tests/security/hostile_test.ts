/**
 * Hostile requests against the real handler in both auth modes, with a
 * recording upstream and token provider: every row checks the status and
 * that the upstream saw nothing, or only pull-scoped GET/HEAD requests
 * under `/v2/hub/` carrying the proxy's own token. A second part sends raw
 * HTTP/1.1 bytes to `Deno.serve` on 127.0.0.1 for what `Request` would
 * normalize.
 */

import assert from "node:assert/strict";
import type { AuthMode } from "../../src/handler.ts";
import { MARKER_TOKEN, STORAGE_URL, UPSTREAM } from "./fakes.ts";
import {
  CLIENT_SECRETS,
  DIGEST,
  HOSTILE_CASES,
  type HostileCase,
  type Outcome,
  RAW_CASES,
  RAW_NORMALIZED_NAMES,
  type RawCase,
} from "./hostile_cases.ts";
import {
  assertConfined,
  BASE,
  makeProxy,
  type ProxyUnderTest,
  signGrant,
} from "./proxy.ts";
import { rawRequest } from "./raw_http.ts";

const MODES: readonly AuthMode[] = ["challenge", "inject"];
const UPSTREAM_HOST = new URL(UPSTREAM).host;

async function buildRequest(
  row: HostileCase,
): Promise<{ request: Request; grant?: string }> {
  const headers = new Headers(row.headers);
  let grant: string | undefined;
  if (row.grant) {
    grant = await signGrant(row.grant.names, row.grant);
    if (row.grant.mangle) grant = row.grant.mangle(grant);
    headers.set("authorization", `Bearer ${grant}`);
  }
  const url = /^https?:/.test(row.url) ? row.url : `${BASE}${row.url}`;
  const request = new Request(url, {
    method: row.method ?? "GET",
    headers,
    ...(row.body !== undefined ? { body: row.body } : {}),
  });
  return grant === undefined ? { request } : { request, grant };
}

function assertClientSafe(res: Response, body: string): void {
  const seen = [body, ...[...res.headers].map(([k, v]) => `${k}: ${v}`)];
  for (const text of seen) {
    assert.ok(!text.includes(MARKER_TOKEN), `upstream token leaked: ${text}`);
    assert.ok(!text.includes(UPSTREAM_HOST), `upstream host leaked: ${text}`);
  }
}

function assertOutcome(
  row: HostileCase,
  outcome: Outcome,
  proxy: ProxyUnderTest,
  res: Response,
  body: string,
): void {
  assert.equal(res.status, outcome.status, `status; body: ${body}`);
  const head = (row.method ?? "GET").toUpperCase() === "HEAD";
  if (res.status >= 400 && !head) {
    const json = JSON.parse(body);
    const error = json.errors?.[0];
    assert.match(error?.code ?? "", /^[A-Z_]+$/, "registry-style error");
    assert.equal(typeof error?.message, "string");
    if (outcome.code) assert.equal(error.code, outcome.code);
  }
  if (res.status === 405) assert.equal(res.headers.get("allow"), "GET, HEAD");
  const isToken = new URL(row.url, BASE).pathname.startsWith("/token");
  if (outcome.upstream === "none") {
    assert.deepEqual(proxy.upstream.calls, [], "the upstream saw a request");
    if (!isToken) assert.deepEqual(proxy.tokens.asked, [], "tokens asked");
  } else {
    assert.ok(proxy.upstream.calls.length >= 1, "the upstream saw nothing");
  }
  if (row.asked) assert.deepEqual(proxy.tokens.asked, row.asked);
}

Deno.test("the hostile table holds at least 60 distinct requests", () => {
  const ids = new Set(HOSTILE_CASES.map((c) => c.id));
  assert.equal(ids.size, HOSTILE_CASES.length, "duplicate ids");
  assert.ok(ids.size >= 60, `only ${ids.size} rows`);
});

for (const mode of MODES) {
  for (const row of HOSTILE_CASES) {
    Deno.test(`hostile [${mode}] ${row.id}`, async () => {
      const proxy = makeProxy(mode);
      const { request, grant } = await buildRequest(row);
      const res = await proxy.handler.fetch(request);
      const body = await res.text();
      assertOutcome(row, row[mode], proxy, res, body);
      assertConfined(
        proxy,
        grant ? [...CLIENT_SECRETS, grant] : CLIENT_SECRETS,
      );
      assertClientSafe(res, body);
      row.check?.(res, body, proxy);
    });
  }
}

Deno.test("a token from /token pulls only its names and never writes", async () => {
  const proxy = makeProxy("challenge");
  const res = await proxy.handler.fetch(
    new Request(`${BASE}/token?scope=repository:nginx:pull,push,delete`),
  );
  const { token } = await res.json();
  const auth = { authorization: `Bearer ${token}` };
  const m = `${BASE}/v2/library/nginx/manifests/latest`;

  const pulled = await proxy.handler.fetch(new Request(m, { headers: auth }));
  assert.equal(pulled.status, 200);
  await pulled.body?.cancel();
  for (const method of ["PUT", "DELETE", "POST", "PATCH"]) {
    const res = await proxy.handler.fetch(
      new Request(m, { method, headers: auth, body: "x" }),
    );
    assert.equal(res.status, 405, method);
    await res.body?.cancel();
  }
  const other = await proxy.handler.fetch(
    new Request(`${BASE}/v2/library/alpine/manifests/latest`, {
      headers: auth,
    }),
  );
  assert.equal(other.status, 401);
  await other.body?.cancel();
  assert.equal(proxy.upstream.calls.length, 1);
  assertConfined(proxy, [token]);
});

Deno.test("an upstream redirect to another host is passed on, never followed", async () => {
  for (const mode of MODES) {
    const proxy = makeProxy(mode);
    const target = "http://169.254.169.254/metadata/identity/oauth2/token";
    proxy.upstream.responder = () =>
      new Response(null, { status: 302, headers: { location: target } });
    const headers = { authorization: `Bearer ${await signGrant(["a/b"])}` };
    const res = await proxy.handler.fetch(
      new Request(`${BASE}/v2/a/b/manifests/latest`, { headers }),
    );
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("location"), target);
    assert.equal(proxy.upstream.calls.length, 1);
    assertConfined(proxy);
  }
});

Deno.test("a storage redirect keeps its SAS query for the client only", async () => {
  const proxy = makeProxy("inject");
  const res = await proxy.handler.fetch(
    new Request(`${BASE}/v2/library/nginx/blobs/${DIGEST}`),
  );
  assert.equal(res.status, 307);
  assert.equal(res.headers.get("location"), STORAGE_URL);
  assert.deepEqual(
    proxy.upstream.calls.map((c) => new URL(c.url).host),
    [UPSTREAM_HOST],
  );
  assertConfined(proxy);
});

// A Location on the upstream's own host that is not an API URL under the
// prefix would name the upstream and point the client straight at it: the
// proxy answers 502 instead.
Deno.test({
  name: "a Location on the upstream outside the prefix is not handed out",
  fn: async () => {
    for (const path of [`/v2/other/x/blobs/${DIGEST}`, "/oauth2/token"]) {
      const proxy = makeProxy("inject");
      proxy.upstream.responder = () =>
        new Response(null, {
          status: 307,
          headers: { location: `${UPSTREAM}${path}` },
        });
      const res = await proxy.handler.fetch(
        new Request(`${BASE}/v2/library/nginx/blobs/${DIGEST}`),
      );
      assert.equal(res.status, 502);
      assertClientSafe(res, await res.text());
    }
  },
});

Deno.test("an upstream 401 is retried once with the same pull scope", async () => {
  const proxy = makeProxy("inject");
  proxy.upstream.responder = () =>
    new Response('{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}', {
      status: 401,
      headers: {
        "content-type": "application/json",
        "www-authenticate":
          `Bearer realm="${UPSTREAM}/oauth2/token",service="127.0.0.2",scope="repository:hub/library/nginx:pull,push"`,
      },
    });
  const res = await proxy.handler.fetch(
    new Request(`${BASE}/v2/library/nginx/manifests/latest`),
  );
  const body = await res.text();
  assert.equal(res.status, 401);
  assert.equal(proxy.upstream.calls.length, 2);
  assert.deepEqual(proxy.tokens.invalidated, [MARKER_TOKEN]);
  const challenge = res.headers.get("www-authenticate") ?? "";
  assert.match(challenge, /realm="http:\/\/proxy\.test\/token"/);
  assert.match(challenge, /scope="repository:library\/nginx:pull"/);
  assertConfined(proxy);
  assertClientSafe(res, body);
});

Deno.test("trusted forwarding headers move the realm, never the upstream", async () => {
  const proxy = makeProxy("challenge", { trustForwarded: true });
  const res = await proxy.handler.fetch(
    new Request(`${BASE}/v2/library/nginx/manifests/latest`, {
      headers: {
        "x-forwarded-host": "mirror.example",
        "x-forwarded-proto": "https",
      },
    }),
  );
  await res.body?.cancel();
  assert.equal(res.status, 401);
  assert.match(
    res.headers.get("www-authenticate") ?? "",
    /realm="https:\/\/mirror\.example\/token"/,
  );
  assert.equal(proxy.upstream.calls.length, 0);
});

async function withServer(
  mode: AuthMode,
  run: (port: number, proxy: ProxyUnderTest) => Promise<void>,
): Promise<void> {
  const proxy = makeProxy(mode);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    proxy.handler.fetch,
  );
  try {
    await run(server.addr.port, proxy);
  } finally {
    await server.shutdown();
  }
}

async function sendRaw(
  port: number,
  row: RawCase,
): Promise<{ status: number; challenge: string }> {
  let head = row.head;
  if (row.grant) {
    head += `\r\nAuthorization: Bearer ${await signGrant(row.grant)}`;
  }
  const res = await rawRequest(port, head, row.body ?? "");
  return {
    status: res.status,
    challenge: res.headers.get("www-authenticate") ?? "",
  };
}

function assertRawConfined(
  row: RawCase,
  mode: AuthMode,
  proxy: ProxyUnderTest,
): void {
  const outcome = row[mode];
  if (outcome.upstream === "none") {
    assert.deepEqual(proxy.upstream.calls, [], "the upstream saw a request");
  } else {
    assert.ok(proxy.upstream.calls.length >= 1, "the upstream saw nothing");
  }
  if (row.upstreamPath) {
    for (const call of proxy.upstream.calls) {
      assert.equal(new URL(call.url).pathname, row.upstreamPath);
    }
  }
  assertConfined(proxy, CLIENT_SECRETS);
}

for (const mode of MODES) {
  Deno.test(`raw socket [${mode}]: requests Request would normalize`, async (t) => {
    await withServer(mode, async (port, proxy) => {
      for (const row of RAW_CASES) {
        await t.step(`${row.id} (${row.note})`, async () => {
          proxy.upstream.reset();
          proxy.tokens.reset();
          const res = await sendRaw(port, row);
          assert.equal(res.status, row[mode].status);
          if (row.realmExcludes) {
            assert.ok(
              !res.challenge.includes(row.realmExcludes),
              res.challenge,
            );
          }
          assertRawConfined(row, mode, proxy);
        });
      }
    });
  });

  Deno.test(`raw socket [${mode}]: dot and backslash names stay in the prefix`, async (t) => {
    await withServer(mode, async (port, proxy) => {
      for (const row of RAW_NORMALIZED_NAMES) {
        await t.step(row.id, async () => {
          proxy.upstream.reset();
          proxy.tokens.reset();
          await sendRaw(port, row);
          assertConfined(proxy, CLIENT_SECRETS);
          for (const call of proxy.upstream.calls) {
            assert.equal(new URL(call.url).pathname, row.upstreamPath);
          }
        });
      }
    });
  });

  // Finding: the issue requires `..`, `.`, `%2e%2e` and backslashes in a
  // name to be refused with 400 NAME_INVALID. The handler parses
  // `new URL(request.url)`, which resolves dot segments and turns `\` into
  // `/` before the name is validated, so these raw targets are served as
  // `library/nginx` (200). They stay inside the prefix (test above); the
  // refusal the issue asks for does not happen.
  Deno.test({
    name: `raw socket [${mode}]: dot and backslash names get 400 NAME_INVALID`,
    fn: async (t) => {
      await withServer(mode, async (port, proxy) => {
        for (const row of RAW_NORMALIZED_NAMES) {
          await t.step(row.id, async () => {
            proxy.upstream.reset();
            const res = await sendRaw(port, row);
            assert.equal(res.status, 400);
            assert.deepEqual(proxy.upstream.calls, []);
          });
        }
      });
    },
  });
}
