import assert from "node:assert/strict";
import { createHandler } from "../src/handler.ts";
import { digestOf, makeRig, STORAGE } from "./_fixtures.ts";

const PROXY = "http://127.0.0.1:8080";

Deno.test("createHandler() completes the Docker token dance in challenge mode", async () => {
  const { acr, handler } = await makeRig();
  const image = await acr.pushSampleImage("hub/library/hello", "latest");

  const ping = await handler.fetch(new Request(`${PROXY}/v2/`));
  await ping.body?.cancel();
  assert.equal(ping.status, 401);
  assert.equal(
    ping.headers.get("www-authenticate"),
    `Bearer realm="${PROXY}/token",service="registry.docker.io"`,
  );
  assert.equal(
    ping.headers.get("docker-distribution-api-version"),
    "registry/2.0",
  );

  const anon = await handler.fetch(
    new Request(`${PROXY}/v2/library/hello/manifests/latest`),
  );
  await anon.body?.cancel();
  assert.equal(anon.status, 401);
  assert.match(
    anon.headers.get("www-authenticate")!,
    /scope="repository:library\/hello:pull"/,
  );

  const tokenRes = await handler.fetch(
    new Request(
      `${PROXY}/token?service=registry.docker.io&scope=repository:library/hello:pull`,
    ),
  );
  assert.equal(tokenRes.status, 200);
  const { token, access_token, expires_in } = await tokenRes.json();
  assert.equal(token, access_token);
  assert.ok(expires_in >= 60);
  assert.ok(
    !token.startsWith("eyJ"),
    "the client must not receive an ACR token",
  );

  const auth = { authorization: `Bearer ${token}` };
  const manifest = await handler.fetch(
    new Request(`${PROXY}/v2/library/hello/manifests/latest`, {
      headers: auth,
    }),
  );
  assert.equal(manifest.status, 200);
  const body = new Uint8Array(await manifest.arrayBuffer());
  assert.equal(await digestOf(body), image.manifest);
  assert.equal(manifest.headers.get("docker-content-digest"), image.manifest);

  const blob = await handler.fetch(
    new Request(
      `${PROXY}/v2/library/hello/blobs/${image.layers[0]}`,
      { headers: auth },
    ),
  );
  assert.equal(blob.status, 307);
  const location = blob.headers.get("location")!;
  assert.ok(
    location.startsWith(`${STORAGE}/blobs/`),
    "storage redirects pass untouched",
  );
  assert.match(location, /sig=/);

  const upstreamAuth = acr.seen.filter((r) => r.path.startsWith("/v2/hub/"));
  assert.ok(upstreamAuth.every((r) => r.authorized));
  assert.ok(acr.seen.every((r) => !r.path.startsWith("/v2/library/")));
});

Deno.test("createHandler() refuses a proxy token for another repository", async () => {
  const { handler } = await makeRig();
  const res = await handler.fetch(
    new Request(
      `${PROXY}/token?scope=repository:library/a:pull`,
    ),
  );
  const { token } = await res.json();
  const other = await handler.fetch(
    new Request(
      `${PROXY}/v2/library/b/manifests/latest`,
      { headers: { authorization: `Bearer ${token}` } },
    ),
  );
  await other.body?.cancel();
  assert.equal(other.status, 401);
  assert.match(
    other.headers.get("www-authenticate")!,
    /error="insufficient_scope"/,
  );
});

Deno.test("createHandler() streams a large blob intact in inject mode", async () => {
  const { acr, handler } = await makeRig({ mode: "inject" }, {
    storageOrigin: "",
  });
  const image = await acr.pushSampleImage("hub/library/big", "1", 8 << 20);
  const layer = image.layers[0]!;

  const ping = await handler.fetch(new Request(`${PROXY}/v2/`));
  await ping.body?.cancel();
  assert.equal(ping.status, 200);

  const res = await handler.fetch(
    new Request(`${PROXY}/v2/big/blobs/${layer}`),
  );
  assert.equal(res.status, 200);
  assert.ok(res.body, "streamed body");
  let chunks = 0;
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for await (const chunk of res.body) {
    chunks++;
    parts.push(new Uint8Array(chunk));
  }
  const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
  assert.equal(await digestOf(bytes), layer);
  assert.equal(res.headers.get("content-length"), String(bytes.length));
  assert.ok(chunks >= 1);
});

Deno.test("createHandler() passes HEAD and Range, and keeps digests", async () => {
  const { acr, handler } = await makeRig({ mode: "inject" }, {
    storageOrigin: "",
  });
  const image = await acr.pushSampleImage("hub/library/hello", "latest");

  const head = await handler.fetch(
    new Request(
      `${PROXY}/v2/library/hello/manifests/latest`,
      { method: "HEAD" },
    ),
  );
  assert.equal(head.status, 200);
  assert.equal(head.body, null);
  assert.equal(head.headers.get("docker-content-digest"), image.manifest);
  assert.ok(Number(head.headers.get("content-length")) > 0);

  const part = await handler.fetch(
    new Request(
      `${PROXY}/v2/library/hello/blobs/${image.config}`,
      { headers: { range: "bytes=0-9" } },
    ),
  );
  assert.equal(part.status, 206);
  assert.equal((await part.arrayBuffer()).byteLength, 10);
  assert.match(part.headers.get("content-range")!, /^bytes 0-9\//);
});

Deno.test("createHandler() maps single-segment Docker Hub names onto library/", async () => {
  const { acr, handler } = await makeRig({ mode: "inject" });
  const image = await acr.pushSampleImage("hub/library/hello", "latest");
  for (const name of ["hello", "library/hello"]) {
    const res = await handler.fetch(
      new Request(`${PROXY}/v2/${name}/manifests/latest`),
    );
    await res.body?.cancel();
    assert.equal(res.status, 200, name);
    assert.equal(res.headers.get("docker-content-digest"), image.manifest);
  }
});

Deno.test("createHandler() rewrites errors, Link and challenges onto client names", async () => {
  const { acr, handler } = await makeRig({ mode: "inject" });
  await acr.pushSampleImage("hub/library/hello", "a");
  await acr.pushSampleImage("hub/library/hello", "b");

  const missing = await handler.fetch(
    new Request(`${PROXY}/v2/library/nope/manifests/latest`),
  );
  assert.equal(missing.status, 404);
  const text = await missing.text();
  assert.match(text, /MANIFEST_UNKNOWN/);
  assert.ok(!text.includes("hub/"), text);

  const page = await handler.fetch(
    new Request(`${PROXY}/v2/library/hello/tags/list?n=1`),
  );
  assert.equal(page.status, 200);
  const list = await page.json();
  assert.deepEqual(list.tags, ["a"]);
  assert.equal(list.name, "library/hello", "the upstream name is not shown");
  assert.equal(
    page.headers.get("link"),
    '</v2/library/hello/tags/list?last=a&n=1>; rel="next"',
  );
});

Deno.test("createHandler() recovers from an upstream 401 by fetching a fresh token", async () => {
  const { acr, handler, refresh } = await makeRig({ mode: "inject" });
  const image = await acr.pushSampleImage("hub/library/hello", "latest");
  const first = await handler.fetch(
    new Request(`${PROXY}/v2/library/hello/manifests/latest`),
  );
  await first.body?.cancel();
  assert.equal(first.status, 200);

  acr.revokeTokens();
  const second = await handler.fetch(
    new Request(`${PROXY}/v2/library/hello/manifests/latest`),
  );
  await second.body?.cancel();
  assert.equal(second.status, 200);
  assert.equal(second.headers.get("docker-content-digest"), image.manifest);
  assert.ok(refresh.isValid());
});

Deno.test("createHandler() answers a dead upstream with a registry-style 502", async () => {
  const { handler } = await makeRig({
    mode: "inject",
    fetch: () => Promise.reject(new TypeError("connection refused")),
  });
  const res = await handler.fetch(
    new Request(`${PROXY}/v2/library/a/manifests/x`),
  );
  assert.equal(res.status, 502);
  const body = await res.json();
  assert.equal(body.errors[0].code, "UNKNOWN");
});

Deno.test("createHandler() cancels the upstream body when the client goes away", async () => {
  let cancelled = false;
  const upstream = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(new Uint8Array(1024));
    },
    cancel() {
      cancelled = true;
    },
  });
  const { handler } = await makeRig({
    mode: "inject",
    fetch: () => Promise.resolve(new Response(upstream)),
  });
  const res = await handler.fetch(
    new Request(`${PROXY}/v2/library/a/blobs/sha256:${"a".repeat(64)}`),
  );
  const reader = res.body!.getReader();
  await reader.read();
  await reader.cancel();
  assert.ok(cancelled);
});

Deno.test("createHandler() serves health, readiness and metrics outside /v2/", async () => {
  let ready = false;
  const { handler } = await makeRig({ ready: () => ready });
  const health = await handler.fetch(new Request(`${PROXY}/healthz`));
  assert.equal(health.status, 200);
  await health.body?.cancel();
  const notReady = await handler.fetch(new Request(`${PROXY}/readyz`));
  assert.equal(notReady.status, 503);
  await notReady.body?.cancel();
  ready = true;
  const isReady = await handler.fetch(new Request(`${PROXY}/readyz`));
  assert.equal(isReady.status, 200);
  await isReady.body?.cancel();

  const other = await handler.fetch(new Request(`${PROXY}/favicon.ico`));
  assert.equal(other.status, 404);
  assert.equal((await other.json()).errors[0].code, "UNSUPPORTED");
});

Deno.test("createHandler() routes by ns and refuses unknown registries", async () => {
  const { acr, handler } = await makeRig({
    mode: "inject",
    routes: [
      { registry: "docker.io", prefix: "hub" },
      { registry: "ghcr.io", prefix: "ghcr" },
    ],
  });
  const hub = await acr.pushSampleImage("hub/library/hello", "1");
  const gh = await acr.pushSampleImage("ghcr/org/app", "1");

  const viaHub = await handler.fetch(
    new Request(`${PROXY}/v2/library/hello/manifests/1?ns=docker.io`),
  );
  await viaHub.body?.cancel();
  assert.equal(viaHub.headers.get("docker-content-digest"), hub.manifest);

  const viaGhcr = await handler.fetch(
    new Request(`${PROXY}/v2/org/app/manifests/1?ns=ghcr.io`),
  );
  await viaGhcr.body?.cancel();
  assert.equal(viaGhcr.headers.get("docker-content-digest"), gh.manifest);

  const blob = await handler.fetch(
    new Request(
      `${PROXY}/v2/org/app/blobs/${gh.config}?ns=ghcr.io`,
    ),
  );
  await blob.body?.cancel();
  assert.equal(blob.status, 307);

  const unknown = await handler.fetch(
    new Request(`${PROXY}/v2/org/app/manifests/1?ns=quay.io`),
  );
  assert.equal(unknown.status, 404);
  const body = await unknown.json();
  assert.equal(body.errors[0].code, "NAME_UNKNOWN");
  assert.match(body.errors[0].message, /quay\.io/);
});

Deno.test("createHandler() builds the realm from trusted forwarding headers only", async () => {
  const forwarded = {
    "x-forwarded-proto": "https",
    "x-forwarded-host": "mirror.example.com",
  };
  const trusting = (await makeRig({ trustForwarded: true })).handler;
  const plain = (await makeRig()).handler;

  const a = await trusting.fetch(
    new Request(`${PROXY}/v2/`, { headers: forwarded }),
  );
  await a.body?.cancel();
  assert.match(
    a.headers.get("www-authenticate")!,
    /realm="https:\/\/mirror\.example\.com\/token"/,
  );

  const b = await plain.fetch(
    new Request(`${PROXY}/v2/`, { headers: forwarded }),
  );
  await b.body?.cancel();
  assert.match(
    b.headers.get("www-authenticate")!,
    /realm="http:\/\/127\.0\.0\.1:8080\/token"/,
  );
});

Deno.test("createHandler() serves ns=docker.io from the default route", async () => {
  const { acr, handler } = await makeRig({ mode: "inject" });
  const image = await acr.pushSampleImage("hub/library/hello", "1");
  for (const ns of ["docker.io", "registry-1.docker.io"]) {
    const res = await handler.fetch(
      new Request(`${PROXY}/v2/library/hello/manifests/1?ns=${ns}`),
    );
    await res.body?.cancel();
    assert.equal(res.status, 200, ns);
    assert.equal(res.headers.get("docker-content-digest"), image.manifest);
  }
  const challenge = await (await makeRig()).handler.fetch(
    new Request(`${PROXY}/v2/library/hello/manifests/1?ns=docker.io`),
  );
  await challenge.body?.cancel();
  assert.match(
    challenge.headers.get("www-authenticate")!,
    /realm="http:\/\/127\.0\.0\.1:8080\/token\/docker\.io"/,
  );
});

Deno.test("a streamed byte body is passed on whole, in chunks of at most 16 KiB", async () => {
  const size = 1 << 20;
  const data = crypto.getRandomValues(new Uint8Array(65536));
  const digest = "sha256:" + "0".repeat(64);
  const handler = createHandler({
    upstream: "https://fakeacr.azurecr.io",
    defaultRoute: { registry: "docker.io", prefix: "hub" },
    fetch: (() => {
      let sent = 0;
      // A byte stream, as fetch bodies are, handing out 64 KiB at a time.
      const body = new ReadableStream({
        type: "bytes",
        pull(controller): void {
          if (sent === size) {
            // A byte source hands back a pending reader's buffer on close.
            controller.close();
            return controller.byobRequest?.respond(0);
          }
          controller.enqueue(data.slice());
          sent += data.length;
        },
      });
      return Promise.resolve(
        new Response(body, { headers: { "content-length": String(size) } }),
      );
    }) as typeof fetch,
  });

  const res = await handler.fetch(
    new Request(`${PROXY}/v2/x/blobs/${digest}`),
  );
  let total = 0;
  let largest = 0;
  for await (const chunk of res.body!) {
    assert.deepEqual(
      chunk,
      data.subarray(total % data.length, total % data.length + chunk.length),
    );
    total += chunk.length;
    largest = Math.max(largest, chunk.length);
  }
  assert.equal(total, size);
  assert.equal(largest, 16 * 1024);
});

Deno.test("an upstream that sends no headers in time is answered 504, one that stalls a manifest body 502", async () => {
  const digest = "sha256:" + "0".repeat(64);
  const aborted: string[] = [];
  const stalled = (init?: RequestInit, head = false): Promise<Response> =>
    new Promise((resolve, reject) => {
      init?.signal?.addEventListener("abort", () => {
        aborted.push(head ? "headers" : "body");
        reject(init.signal!.reason);
      });
      if (head) return;
      // Headers promise ten bytes; the body never delivers them.
      const body = new ReadableStream<Uint8Array>({
        start(controller): void {
          init?.signal?.addEventListener(
            "abort",
            () => controller.error(init.signal!.reason),
          );
        },
      });
      resolve(new Response(body, { headers: { "content-length": "10" } }));
    });
  const handler = (stall: "headers" | "body") =>
    createHandler({
      upstream: "https://fakeacr.azurecr.io",
      headerTimeoutMs: 60,
      idleTimeoutMs: 60,
      fetch: ((_url: string, init?: RequestInit) =>
        stalled(init, stall === "headers")) as typeof fetch,
    });

  for (const stall of ["headers", "body"] as const) {
    const started = Date.now();
    const res = await handler(stall).fetch(
      new Request(`${PROXY}/v2/x/manifests/${digest}`),
    );
    const took = Date.now() - started;
    const body = await res.json();
    assert.equal(res.status, stall === "headers" ? 504 : 502, stall);
    assert.equal(body.errors[0].code, "UNKNOWN");
    assert.ok(took >= 60, `${stall}: answered after ${took} ms`);
    assert.ok(took < 1000, `${stall}: answered after ${took} ms`);
  }
  assert.deepEqual(aborted, ["headers", "body"]);
});

Deno.test("with no idle limit a streamed body is handed on untouched and the request counts as done at once", async () => {
  const size = 1 << 20;
  const upstreamBody = new ReadableStream<Uint8Array>({
    pull(controller): void {
      controller.enqueue(new Uint8Array(size));
      controller.close();
    },
  });
  const records: { status: number; bytes: number }[] = [];
  const handler = createHandler({
    upstream: "https://fakeacr.azurecr.io",
    idleTimeoutMs: 0,
    onRequest: (r) => records.push({ status: r.status, bytes: r.bytes }),
    fetch: (() =>
      Promise.resolve(
        new Response(upstreamBody, {
          headers: { "content-length": String(size) },
        }),
      )) as typeof fetch,
  });

  const res = await handler.fetch(
    new Request(`${PROXY}/v2/x/blobs/sha256:${"0".repeat(64)}`),
  );
  assert.equal(res.body, upstreamBody, "the runtime gets the upstream stream");
  assert.deepEqual(records, [{ status: 200, bytes: size }]);
  assert.equal((await res.arrayBuffer()).byteLength, size);
});

Deno.test("a streamed body the idle watchdog cuts off reaches the client as an error, never as a clean end", async () => {
  const records: { error?: string | undefined }[] = [];
  const handler = createHandler({
    upstream: "https://fakeacr.azurecr.io",
    idleTimeoutMs: 100,
    onRequest: (r) => records.push({ error: r.error }),
    // No declared length: a clean end would look like the whole body.
    fetch: (() =>
      Promise.resolve(
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller): void {
              controller.enqueue(new Uint8Array(1024));
            },
          }),
        ),
      )) as typeof fetch,
  });

  const res = await handler.fetch(
    new Request(`${PROXY}/v2/x/blobs/sha256:${"0".repeat(64)}`),
  );
  const reader = res.body!.getReader();
  assert.equal((await reader.read()).value?.length, 1024);
  await assert.rejects(reader.read(), /upstream idle timeout/);
  assert.deepEqual(records, [{ error: "upstream idle timeout" }]);
});
