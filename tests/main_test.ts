import assert from "node:assert/strict";
import {
  cliPermissions,
  freePort,
  serveFakeAcr,
  startProxy,
  writeFakeAz,
} from "./_process.ts";
import { digestOf } from "./_fixtures.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-sys=uid,osRelease",
      "--allow-read",
      MAIN,
      ...args,
    ],
    env: { AZURE_TOKEN_CREDENTIALS: "AzureCliCredential", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("main.ts pulls a manifest and a blob through a fake ACR with a fake az", async () => {
  const dir = await Deno.makeTempDir();
  const served = serveFakeAcr({
    acceptEntraToken: (t) => t === "fake-entra-token",
  });
  const image = await served.acr.pushSampleImage("hub/library/hello", "latest");
  const proxy = await startProxy(
    [
      "--upstream-domain",
      served.origin,
      "--upstream-prefix",
      "hub",
      "--auth-mode",
      "challenge",
    ],
    { azPath: await writeFakeAz(dir) },
  );
  try {
    const ping = await fetch(`${proxy.url}/v2/`);
    await ping.body?.cancel();
    assert.equal(ping.status, 401);
    const realm =
      /realm="([^"]+)"/.exec(ping.headers.get("www-authenticate")!)![1];
    assert.equal(realm, `${proxy.url}/token`);

    const tokenRes = await fetch(
      `${realm}?service=registry.docker.io&scope=repository:library/hello:pull`,
    );
    const { token } = await tokenRes.json();
    const auth = { authorization: `Bearer ${token}` };

    const manifest = await fetch(
      `${proxy.url}/v2/library/hello/manifests/latest`,
      { headers: auth },
    );
    assert.equal(manifest.status, 200);
    assert.equal(await digestOf(await manifest.arrayBuffer()), image.manifest);

    const blob = await fetch(
      `${proxy.url}/v2/library/hello/blobs/${image.layers[0]}`,
      { headers: auth },
    );
    assert.equal(blob.status, 200, "the client follows the storage redirect");
    assert.equal(await digestOf(await blob.arrayBuffer()), image.layers[0]);

    const storage = served.acr.seen.filter((r) => r.origin === "storage");
    assert.ok(storage.length > 0 && storage.every((r) => !r.authorized));

    // By digest, the second fetch is answered from the content cache.
    const byDigest =
      `${proxy.url}/v2/library/hello/manifests/${image.manifest}`;
    for (let i = 0; i < 2; i++) {
      const res = await fetch(byDigest, { headers: auth });
      assert.equal(await digestOf(await res.arrayBuffer()), image.manifest);
    }
    const upstreamFetches = served.acr.seen.filter((r) =>
      r.path.endsWith(`/manifests/${image.manifest}`)
    );
    assert.equal(upstreamFetches.length, 1);
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    assert.match(
      metrics,
      /^acr_cache_proxy_content_cache_requests_total\{result="hit"\} 1$/m,
    );
    assert.match(metrics, /^acr_cache_proxy_content_cache_bytes [1-9]\d*$/m);
  } finally {
    const status = await proxy.stop();
    await served.close();
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, proxy.output());
  }
  assert.match(proxy.output(), /signed in/);
  assert.doesNotMatch(proxy.output(), /fake-entra-token|eyJ/);
  assert.match(proxy.output(), /kind=manifests .*content_cache=hit/);
});

/**
 * Starts main.ts in credential mode against a fake ACR that wants a
 * credential, with a fake `az` first on PATH, and waits for it to exit.
 */
async function startUntilExit(
  options: { azLoggedIn: boolean; denoFlags?: string[]; denoDir?: string },
): Promise<{ code: number; stderr: string }> {
  const dir = await Deno.makeTempDir();
  const served = serveFakeAcr();
  const az = await writeFakeAz(dir, options.azLoggedIn);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...options.denoFlags ?? [],
        ...cliPermissions(az),
        MAIN,
        "--upstream-domain",
        served.origin,
        "--listen-address",
        "127.0.0.1:0",
      ],
      env: {
        AZURE_TOKEN_CREDENTIALS: "AzureCliCredential",
        PATH: `${dir}:${Deno.env.get("PATH")}`,
        ...options.denoDir ? { DENO_DIR: `${dir}/${options.denoDir}` } : {},
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: out.code,
      stderr: new TextDecoder().decode(out.stderr).trim(),
    };
  } finally {
    await served.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("main.ts exits 1 with one sentence when no credential works", async () => {
  const { code, stderr } = await startUntilExit({ azLoggedIn: false });
  assert.equal(code, 1, stderr);
  assert.match(stderr, /No Azure credential could sign in .*az login/);
});

Deno.test("main.ts exits 1 with one sentence when the Azure SDK cannot be loaded", async () => {
  // An empty Deno cache with --cached-only: the SDK, loaded only when a
  // credential is needed, is not there.
  const { code, stderr } = await startUntilExit({
    azLoggedIn: true,
    denoFlags: ["--cached-only"],
    denoDir: "empty-cache",
  });
  assert.equal(code, 1, stderr);
  assert.match(stderr, /^.*Could not load the Azure SDK \(@azure\/identity\)/);
  assert.equal(stderr.split("\n").length, 1, stderr);
});

Deno.test("main.ts runs without a credential against an anonymous upstream", async () => {
  const dir = await Deno.makeTempDir();
  const served = serveFakeAcr({ anonymous: true });
  await served.acr.pushSampleImage("hub/library/hello", "latest");
  const az = `${dir}/az-never-called`;
  await Deno.writeTextFile(az, "#!/bin/sh\nexit 9\n");
  const proxy = await startProxy(
    [
      "--upstream-domain",
      served.origin,
      "--upstream-prefix",
      "hub",
      "--auth-mode",
      "inject",
    ],
    { azPath: az },
  );
  try {
    const res = await fetch(`${proxy.url}/v2/library/hello/manifests/latest`);
    await res.body?.cancel();
    assert.equal(res.status, 200);
    assert.ok(!served.acr.seen.some((r) => r.path.startsWith("/oauth2/")));
  } finally {
    await proxy.stop();
    await served.close();
    await Deno.remove(dir, { recursive: true });
  }
  assert.match(proxy.output(), /anonymous pulls: no credential is requested/);
});

Deno.test("main.ts --help and --version exit 0", async () => {
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--upstream-domain/);
  const version = await run(["-version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^acr-cache-proxy \d+\.\d+\.\d+/);
});

const BAD_CONFIG: [string, string[], RegExp][] = [
  ["missing upstream", [], /--upstream-domain is required/],
  ["bad listen address", [
    "--upstream-domain",
    "x.azurecr.io",
    "--listen-address",
    "8080",
  ], /--listen-address/],
  ["bad prefix", [
    "-upstream-domain",
    "x.azurecr.io",
    "-upstream-prefix",
    "/hub/",
  ], /--upstream-prefix/],
  [
    "unknown flag",
    ["--upstream-domain", "x.azurecr.io", "--nope"],
    /unknown argument/,
  ],
  ["missing value", ["--upstream-domain"], /needs a value/],
  ["zero timeout", [
    "--upstream-domain",
    "x.azurecr.io",
    "--header-timeout",
    "0",
  ], /--header-timeout must be longer than zero/],
  ["bad auth mode", [
    "--upstream-domain",
    "x.azurecr.io",
    "--auth-mode",
    "open",
  ], /--auth-mode/],
];

for (const [what, args, message] of BAD_CONFIG) {
  Deno.test(`main.ts exits 2 on bad configuration: ${what}`, async () => {
    const { code, stderr } = await run(args);
    assert.equal(code, 2);
    assert.match(stderr, message);
    assert.equal(stderr.trim().split("\n").length, 1, stderr);
  });
}

Deno.test("main.ts serves HTTPS with --tls-cert and --tls-key", async () => {
  const dir = await Deno.makeTempDir();
  const served = serveFakeAcr({ anonymous: true });
  await served.acr.pushSampleImage("hub/library/hello", "latest");
  const gen = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  assert.equal(gen.code, 0, "openssl is needed for this test");
  const az = `${dir}/az`;
  await Deno.writeTextFile(az, "#!/bin/sh\nexit 9\n");

  const proxy = await startProxy(
    [
      "--upstream-domain",
      served.origin,
      "--upstream-prefix",
      "hub",
      "--auth-mode",
      "inject",
      "--tls-cert",
      `${dir}/cert.pem`,
      "--tls-key",
      `${dir}/key.pem`,
    ],
    {
      azPath: az,
      healthScheme: "https",
      extraRead: [`${dir}/cert.pem`, `${dir}/key.pem`],
      caCert: await Deno.readTextFile(`${dir}/cert.pem`),
    },
  );
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(`${dir}/cert.pem`)],
  });
  try {
    const res = await fetch(`${proxy.url}/v2/library/hello/manifests/latest`, {
      client,
    });
    await res.body?.cancel();
    assert.equal(res.status, 200);
    assert.ok(proxy.url.startsWith("https://"));
  } finally {
    client.close();
    await proxy.stop();
    await served.close();
    await Deno.remove(dir, { recursive: true });
  }
});

const SERVE = new URL("../serve.ts", import.meta.url).pathname;

/**
 * serve.ts under `deno serve` on 127.0.0.1 with loopback-only network
 * permissions; the credential is pinned to the CLI, which is never allowed
 * to run.
 */
function serveCommand(
  port: number,
  options: {
    parallel?: boolean;
    allowRead?: boolean;
    env: Record<string, string>;
    stdout?: "piped" | "null";
    stderr?: "piped" | "null";
  },
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      ...options.parallel ? ["--parallel"] : [],
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--allow-net=127.0.0.1",
      "--allow-env",
      ...options.allowRead ? ["--allow-read"] : [],
      "--allow-sys=uid,osRelease",
      SERVE,
    ],
    env: { AZURE_TOKEN_CREDENTIALS: "AzureCliCredential", ...options.env },
    stdout: options.stdout ?? "null",
    stderr: options.stderr ?? "null",
  });
}

/** Fetches `url` until the server answers (up to 30 s). */
async function firstAnswer(url: string): Promise<Response | undefined> {
  for (let i = 0; i < 300; i++) {
    const res = await fetch(url).catch(() => undefined);
    if (res) return res;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

/**
 * Sends SIGTERM and waits up to `limitMs` for the process to exit.
 *
 * @returns Milliseconds until it exited, or undefined if it did not.
 */
async function msToExitAfterSigterm(
  child: Deno.ChildProcess,
  limitMs: number,
): Promise<number | undefined> {
  const started = Date.now();
  child.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ended = await Promise.race([
    child.status.then(() => true),
    new Promise<false>((r) => timer = setTimeout(() => r(false), limitMs)),
  ]);
  clearTimeout(timer);
  return ended ? Date.now() - started : undefined;
}

/** Kills the process if it still runs and waits for it. */
async function reap(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  await child.status;
}

Deno.test("serve.ts under deno serve --parallel answers, then stops at SIGTERM", async () => {
  const served = serveFakeAcr({ anonymous: true });
  const image = await served.acr.pushSampleImage("hub/library/hello", "1");
  const port = freePort();
  const child = serveCommand(port, {
    parallel: true,
    env: {
      ACR_CACHE_PROXY_UPSTREAM_DOMAIN: served.origin,
      ACR_CACHE_PROXY_UPSTREAM_PREFIX: "hub",
      DENO_JOBS: "2",
    },
    stdout: "piped",
  }).spawn();
  const output = new Response(child.stdout).text();
  try {
    const res = await firstAnswer(
      `http://127.0.0.1:${port}/v2/library/hello/manifests/1`,
    );
    assert.equal(res?.status, 200);
    assert.equal(await digestOf(await res!.arrayBuffer()), image.manifest);

    // Background timers (the upstream probe, token renewal) must not keep
    // the isolates alive once deno serve has drained them.
    const took = await msToExitAfterSigterm(child, 10_000);
    assert.ok(took !== undefined, "still running 10 s after SIGTERM");

    const log = await output;
    assert.match(
      log,
      new RegExp(`msg=listening address=127\\.0\\.0\\.1:${port}`),
    );
    assert.doesNotMatch(log, /beyond loopback/);
    assert.match(log, /msg="shutting down" signal=SIGTERM/);
  } finally {
    await reap(child);
    await served.close();
  }
});

Deno.test("serve.ts refuses TLS settings it could not honour, in one sentence", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/cert.pem`, "not used");
  await Deno.writeTextFile(`${dir}/key.pem`, "not used");
  try {
    const out = await serveCommand(freePort(), {
      allowRead: true,
      env: {
        ACR_CACHE_PROXY_UPSTREAM_DOMAIN: "http://127.0.0.1:9",
        ACR_CACHE_PROXY_TLS_CERT: `${dir}/cert.pem`,
        ACR_CACHE_PROXY_TLS_KEY: `${dir}/key.pem`,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 2, stderr);
    assert.match(stderr, /cannot serve TLS .* run main\.ts for HTTPS/);
    assert.equal(stderr.split("\n").length, 1, stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve.ts ends a drain that outlasts --shutdown-grace", async () => {
  // An anonymous upstream whose blob trickles until the proxy cancels it.
  const upstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen(): void {} },
    (req) => {
      if (!new URL(req.url).pathname.includes("/blobs/")) {
        return new Response(null, { status: 200 });
      }
      let timer: ReturnType<typeof setInterval> | undefined;
      return new Response(
        new ReadableStream<Uint8Array>({
          start(controller): void {
            timer = setInterval(
              () => controller.enqueue(new Uint8Array(16)),
              100,
            );
          },
          cancel(): void {
            clearInterval(timer);
          },
        }),
      );
    },
  );
  const port = freePort();
  const child = serveCommand(port, {
    env: {
      ACR_CACHE_PROXY_UPSTREAM_DOMAIN: `http://127.0.0.1:${upstream.addr.port}`,
      ACR_CACHE_PROXY_SHUTDOWN_GRACE: "1s",
    },
  }).spawn();
  try {
    const res = await firstAnswer(
      `http://127.0.0.1:${port}/v2/library/a/blobs/sha256:${"0".repeat(64)}`,
    );
    assert.equal(res?.status, 200);
    const reader = res!.body!.getReader();
    await reader.read();

    const took = await msToExitAfterSigterm(child, 10_000);
    assert.ok(took !== undefined, "still draining 10 s after SIGTERM");
    assert.ok(took >= 900, `ended after ${took} ms, before the grace`);
    await reader.cancel().catch(() => {});
  } finally {
    await reap(child);
    await upstream.shutdown();
  }
});
