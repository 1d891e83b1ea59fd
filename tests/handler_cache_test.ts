import assert from "node:assert/strict";
import { ContentCache } from "../src/cache.ts";
import { createHandler, type RequestRecord } from "../src/handler.ts";
import type { Route } from "../src/names.ts";
import { digestOf, makeRig } from "./_fixtures.ts";

const PROXY = "http://127.0.0.1:8080";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** A handler over a scripted upstream that counts what reaches it. */
function scripted(
  answer: (url: URL, req: Request) => Response,
  routes: Route[] = [],
) {
  const seen: string[] = [];
  const records: RequestRecord[] = [];
  const cache = new ContentCache();
  const handler = createHandler({
    upstream: "https://fakeacr.azurecr.io",
    defaultRoute: { registry: "docker.io", prefix: "hub" },
    routes,
    mode: "inject",
    cache,
    fetch: ((input: Request | URL | string, init?: RequestInit) => {
      const req = new Request(input, init);
      const url = new URL(req.url);
      seen.push(`${req.method} ${url.pathname}`);
      const res = answer(url, req);
      return res.arrayBuffer().then((body) => {
        // As a real upstream would, declare the length of what it sends.
        const headers = new Headers(res.headers);
        if (body.byteLength) {
          headers.set("content-length", String(body.byteLength));
        }
        return new Response(body.byteLength ? body : null, {
          status: res.status,
          headers,
        });
      });
    }) as typeof fetch,
    onRequest: (r) => records.push(r),
  });
  return { handler, seen, records, cache };
}

async function get(
  handler: { fetch(r: Request): Promise<Response> },
  path: string,
  init: RequestInit = {},
): Promise<{ res: Response; body: Uint8Array }> {
  const res = await handler.fetch(new Request(`${PROXY}${path}`, init));
  return { res, body: new Uint8Array(await res.arrayBuffer()) };
}

Deno.test("a manifest by digest is fetched once and then served from memory", async () => {
  const { acr, handler } = await makeRig({
    mode: "inject",
    cache: new ContentCache(),
  });
  const image = await acr.pushSampleImage("hub/library/hello", "1");
  const path = `/v2/library/hello/manifests/${image.manifest}`;
  const accept = { accept: OCI_MANIFEST };
  const upstreamGets = () =>
    acr.seen.filter((s) => s.path.includes("/manifests/")).length;

  const first = await get(handler, path, { headers: accept });
  const second = await get(handler, path, { headers: accept });
  const head = await handler.fetch(
    new Request(`${PROXY}${path}`, { method: "HEAD", headers: accept }),
  );

  assert.equal(upstreamGets(), 1);
  for (const { res, body } of [first, second]) {
    assert.equal(res.status, 200);
    assert.equal(await digestOf(body), image.manifest);
    assert.equal(res.headers.get("docker-content-digest"), image.manifest);
    assert.equal(res.headers.get("content-type"), OCI_MANIFEST);
  }
  assert.deepEqual([...second.res.headers], [...first.res.headers]);
  assert.equal(head.status, 200);
  assert.equal(head.body, null);
  assert.equal(
    head.headers.get("content-length"),
    String(first.body.length),
  );

  const byTag = `/v2/library/hello/manifests/1`;
  await get(handler, byTag, { headers: accept });
  await get(handler, byTag, { headers: accept });
  assert.equal(upstreamGets(), 3, "tags are asked upstream every time");
});

Deno.test("a cached answer still needs the client's grant in challenge mode", async () => {
  const { acr, handler } = await makeRig({ cache: new ContentCache() });
  const image = await acr.pushSampleImage("hub/library/hello", "1");
  const path = `/v2/library/hello/manifests/${image.manifest}`;
  const tokenFor = async (repo: string) => {
    const res = await handler.fetch(
      new Request(`${PROXY}/token?scope=repository:${repo}:pull`),
    );
    return (await res.json()).token as string;
  };

  const allowed = await get(handler, path, {
    headers: { authorization: `Bearer ${await tokenFor("library/hello")}` },
  });
  assert.equal(allowed.res.status, 200);

  const anonymous = await get(handler, path);
  assert.equal(anonymous.res.status, 401);
  const other = await get(handler, path, {
    headers: { authorization: `Bearer ${await tokenFor("library/other")}` },
  });
  assert.equal(other.res.status, 401);
  assert.equal(
    acr.seen.filter((s) => s.path.includes("/manifests/")).length,
    1,
  );
});

Deno.test("bytes that do not match the digest are passed on but never stored", async () => {
  const real = new TextEncoder().encode('{"schemaVersion":2}');
  const digest = await digestOf(real);
  const forged = new TextEncoder().encode('{"schemaVersion":3}');
  const { handler, seen, records } = scripted(() =>
    new Response(forged, {
      headers: {
        "content-type": OCI_MANIFEST,
        "docker-content-digest": digest,
      },
    })
  );

  for (let i = 0; i < 2; i++) {
    const { res } = await get(handler, `/v2/x/manifests/${digest}`);
    assert.equal(res.status, 200);
  }
  assert.equal(seen.length, 2);
  assert.deepEqual(records.map((r) => r.content), ["miss", "miss"]);
});

Deno.test("ranges, conditions, other Accept values and errors bypass the cache", async () => {
  const body = new TextEncoder().encode('{"schemaVersion":2}');
  const digest = await digestOf(body);
  let status = 200;
  const { handler, seen, records, cache } = scripted(() =>
    new Response(status === 200 ? body : '{"errors":[]}', {
      status,
      headers: { "content-type": OCI_MANIFEST },
    })
  );
  const path = `/v2/x/manifests/${digest}`;

  status = 404;
  await get(handler, path);
  status = 200;
  await get(handler, path, { headers: { range: "bytes=0-3" } });
  await get(handler, path, { headers: { "if-none-match": `"${digest}"` } });
  assert.equal(cache.size, 0, "errors, ranges and conditions are not kept");

  await get(handler, path, { headers: { accept: OCI_MANIFEST } });
  await get(handler, path, { headers: { accept: OCI_MANIFEST } });
  await get(handler, path, { headers: { accept: "application/json" } });
  await get(handler, `/v2/y/manifests/${digest}`, {
    headers: { accept: OCI_MANIFEST },
  });
  assert.equal(seen.length, 6);
  assert.deepEqual(records.map((r) => r.content), [
    "miss",
    undefined,
    undefined,
    "miss",
    "hit",
    "miss",
    "miss",
  ]);
});

Deno.test("small blobs by digest are cached; redirected blobs are not", async () => {
  const config = new TextEncoder().encode('{"os":"linux"}');
  const digest = await digestOf(config);
  let redirect = false;
  const { handler, seen } = scripted(() =>
    redirect
      ? new Response(null, {
        status: 307,
        headers: { location: "https://fakeacr.blob.core.windows.net/x?sig=1" },
      })
      : new Response(config, {
        headers: { "content-type": "application/octet-stream" },
      })
  );

  const a = await get(handler, `/v2/x/blobs/${digest}`);
  const b = await get(handler, `/v2/x/blobs/${digest}`);
  assert.equal(await digestOf(a.body), digest);
  assert.equal(await digestOf(b.body), digest);
  assert.equal(seen.length, 1);

  redirect = true;
  const other = "sha256:" + "0".repeat(64);
  for (let i = 0; i < 2; i++) {
    const { res } = await get(handler, `/v2/x/blobs/${other}`, {
      redirect: "manual",
    });
    assert.equal(res.status, 307);
  }
  assert.equal(seen.length, 3);
});

Deno.test("routes that share a registry name never share cached answers", async () => {
  const body = new TextEncoder().encode('{"schemaVersion":2}');
  const digest = await digestOf(body);
  // `hub` has the manifest, `team` does not.
  const { handler, seen } = scripted(
    (url) =>
      url.pathname.startsWith("/v2/hub/")
        ? new Response(body, { headers: { "content-type": OCI_MANIFEST } })
        : new Response('{"errors":[]}', { status: 404 }),
    [{ registry: "docker.io", prefix: "team" }],
  );
  const viaDefault = `/v2/library/app/manifests/${digest}`;
  const viaNs = `${viaDefault}?ns=docker.io`;

  assert.equal((await get(handler, viaDefault)).res.status, 200);
  assert.equal((await get(handler, viaNs)).res.status, 404);
  assert.equal((await get(handler, viaDefault)).res.status, 200);
  assert.equal((await get(handler, viaNs)).res.status, 404);
  assert.deepEqual(seen, [
    `GET /v2/hub/library/app/manifests/${digest}`,
    `GET /v2/team/library/app/manifests/${digest}`,
    `GET /v2/team/library/app/manifests/${digest}`,
  ]);
});

Deno.test("referrers, long Accept values and unknown digest algorithms are answered but not cached", async () => {
  const body = new TextEncoder().encode('{"schemaVersion":2}');
  const digest = await digestOf(body);
  const { handler, seen, cache } = scripted(() =>
    new Response(body, { headers: { "content-type": OCI_MANIFEST } })
  );
  const long = {
    accept: Array(80).fill(OCI_MANIFEST).map((t, i) => `${t}${i}`).join(","),
  };
  const odd = `constructor:${"a".repeat(64)}`;

  for (let i = 0; i < 2; i++) {
    assert.equal(
      (await get(handler, `/v2/x/referrers/${digest}`)).res.status,
      200,
    );
    assert.equal(
      (await get(handler, `/v2/x/manifests/${digest}`, { headers: long })).res
        .status,
      200,
    );
    assert.equal((await get(handler, `/v2/x/blobs/${odd}`)).res.status, 200);
  }
  assert.equal(seen.length, 6);
  assert.equal(cache.size, 0);
});

Deno.test("concurrent misses for one digest reach the upstream once; answers not stored are not shared", async () => {
  const manifest = new TextEncoder().encode('{"schemaVersion":2}');
  const digest = await digestOf(manifest);
  const missing = "sha256:" + "9".repeat(64);
  let calls = 0;
  let held = true;
  let release = (): void => {};
  const open = (): void => {
    held = false;
    release();
  };
  const handler = createHandler({
    upstream: "https://fakeacr.azurecr.io",
    defaultRoute: { registry: "docker.io", prefix: "hub" },
    cache: new ContentCache(),
    fetch: (async (url: string) => {
      calls++;
      // Held answers all go out at once, when the test opens the gate.
      if (held) {
        await new Promise<void>((resolve) => {
          const before = release;
          release = () => (before(), resolve());
        });
      }
      return url.endsWith(digest)
        ? new Response(manifest.slice(), {
          headers: {
            "content-type": OCI_MANIFEST,
            "content-length": String(manifest.length),
            "docker-content-digest": digest,
          },
        })
        : new Response(null, { status: 404 });
    }) as typeof fetch,
  });
  const many = async (reference: string, n: number) => {
    const answers = Array.from(
      { length: n },
      () => get(handler, `/v2/library/a/manifests/${reference}`),
    );
    // Let every request reach the point where it fetches or waits.
    held = true;
    await new Promise((resolve) => setTimeout(resolve, 20));
    open();
    return await Promise.all(answers);
  };

  const found = await many(digest, 5);
  assert.equal(calls, 1);
  for (const { res, body } of found) {
    assert.equal(res.status, 200);
    assert.deepEqual(body, manifest);
  }

  calls = 0;
  const notFound = await many(missing, 3);
  for (const { res } of notFound) assert.equal(res.status, 404);
  // The first 404 is not stored: those waiting on it ask for themselves.
  assert.equal(calls, 3);
});

/**
 * A handler with a content cache over an upstream scripted per call: the
 * n-th upstream request gets `script[n]`'s answer ("stall" never answers,
 * "stall-body" sends headers and a manifest body that never ends,
 * "stall-404" a 404 whose error body never ends). With `tokenDelayMs`,
 * every upstream token takes that long to come.
 */
function scriptedCalls(
  script: ("ok" | "stall" | "stall-body" | "stall-404")[],
  manifest: Uint8Array,
  options: {
    headerTimeoutMs: number;
    idleTimeoutMs: number;
    tokenDelayMs?: number;
  },
) {
  const calls: string[] = [];
  const records: RequestRecord[] = [];
  const { tokenDelayMs, ...timeouts } = options;
  const handler = createHandler({
    upstream: "https://fakeacr.azurecr.io",
    cache: new ContentCache(),
    onRequest: (r) => records.push(r),
    ...timeouts,
    ...tokenDelayMs === undefined ? {} : {
      tokens: {
        get: async () => {
          await new Promise((resolve) => setTimeout(resolve, tokenDelayMs));
          return { token: "upstream-token", cached: false };
        },
        invalidate: () => {},
      },
    },
    fetch: ((_url: string, init: RequestInit) => {
      const what = script[calls.length] ?? "ok";
      calls.push(`${init.method} ${what}`);
      const headers = {
        "content-type": OCI_MANIFEST,
        "content-length": String(manifest.length),
      };
      if (what === "ok") {
        return Promise.resolve(new Response(manifest.slice(), { headers }));
      }
      return new Promise((resolve, reject) => {
        const signal = init.signal!;
        if (what === "stall") {
          signal.addEventListener("abort", () => reject(signal.reason));
          return;
        }
        const body = new ReadableStream<Uint8Array>({
          start(controller): void {
            signal.addEventListener(
              "abort",
              () => controller.error(signal.reason),
            );
          },
        });
        const status = what === "stall-404" ? 404 : 200;
        resolve(new Response(body, { status, headers }));
      });
    }) as typeof fetch,
  });
  return { handler, calls, records };
}

Deno.test("requests waiting on another's fetch: HEADs never lead, a timeout is shared, a broken body is not", async () => {
  const manifest = new TextEncoder().encode('{"schemaVersion":2}');
  const digest = await digestOf(manifest);
  const path = `/v2/library/a/manifests/${digest}`;
  const timeouts = { headerTimeoutMs: 100, idleTimeoutMs: 300 };

  // A stalled HEAD cannot fill the cache: a GET beside it does not wait.
  {
    const { handler, calls } = scriptedCalls(
      ["stall", "ok"],
      manifest,
      timeouts,
    );
    const headAnswer = get(handler, path, { method: "HEAD" });
    const started = Date.now();
    const { res, body } = await get(handler, path);
    const took = Date.now() - started;
    assert.ok(took < 100, `the GET waited ${took} ms for the HEAD`);
    assert.equal(res.status, 200);
    assert.deepEqual(body, manifest);
    assert.deepEqual(calls, ["HEAD stall", "GET ok"]);
    assert.equal((await headAnswer).res.status, 504);
  }

  // The upstream did not answer the first GET in time: those that waited
  // for it get the same 504 instead of asking again, also when its token
  // took longer than the check interval to come.
  for (const tokenDelayMs of [undefined, 150]) {
    const { handler, calls } = scriptedCalls(["stall"], manifest, {
      ...timeouts,
      ...tokenDelayMs === undefined ? {} : { tokenDelayMs },
    });
    const answers = await Promise.all([1, 2, 3].map(() => get(handler, path)));
    assert.deepEqual(answers.map(({ res }) => res.status), [504, 504, 504]);
    assert.deepEqual(calls, ["GET stall"], `token delay ${tokenDelayMs}`);
  }

  // The first GET's body stalls: another waits for its 502 (idle limit),
  // which is not stored, then fetches for itself.
  {
    const { handler, calls } = scriptedCalls(
      ["stall-body", "ok"],
      manifest,
      timeouts,
    );
    const first = get(handler, path);
    const started = Date.now();
    const { res, body } = await get(handler, path);
    const took = Date.now() - started;
    assert.equal(res.status, 200);
    assert.deepEqual(body, manifest);
    assert.ok(took >= 300 && took < 2_000, `waited ${took} ms`);
    assert.deepEqual(calls, ["GET stall-body", "GET ok"]);
    assert.equal((await first).res.status, 502);
  }
});

Deno.test("an error body that stalls is cut off by the idle timeout and its status kept", async () => {
  const manifest = new TextEncoder().encode('{"schemaVersion":2}');
  const digest = await digestOf(manifest);
  const { handler, calls, records } = scriptedCalls(["stall-404"], manifest, {
    headerTimeoutMs: 100,
    idleTimeoutMs: 200,
  });
  const started = Date.now();
  const { res, body } = await get(handler, `/v2/library/a/manifests/${digest}`);
  const took = Date.now() - started;
  assert.equal(res.status, 404);
  assert.match(new TextDecoder().decode(body), /error body could not be read/);
  assert.ok(took >= 200 && took < 2_000, `answered after ${took} ms`);
  assert.deepEqual(calls, ["GET stall-404"]);
  assert.equal(records[0]?.error, "upstream error body unreadable");
});

Deno.test("with no idle limit a manifest body that stalls is cut off after the header timeout", async () => {
  const manifest = new TextEncoder().encode('{"schemaVersion":2}');
  const digest = await digestOf(manifest);
  const { handler, calls } = scriptedCalls(["stall-body"], manifest, {
    headerTimeoutMs: 100,
    idleTimeoutMs: 0,
  });
  const started = Date.now();
  const { res } = await get(handler, `/v2/library/a/manifests/${digest}`);
  const took = Date.now() - started;
  assert.equal(res.status, 502);
  assert.ok(took >= 100 && took < 2_000, `answered after ${took} ms`);
  assert.deepEqual(calls, ["GET stall-body"]);
});
