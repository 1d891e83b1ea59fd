import assert from "node:assert/strict";
import { serveFakeAcr } from "./_process.ts";
import { digestOf } from "./_fixtures.ts";

const ROOT = new URL("..", import.meta.url).pathname;

// The Node program a JSR-through-npm user would write: the package is
// resolved from node_modules like `npx jsr add` installs it.
const NODE_MAIN = `
import http from "node:http";
import {
  AccessTokenCache,
  createHandler,
  RefreshTokenSource,
} from "@acr-cache-proxy/acr-cache-proxy";
import { toNodeListener } from "./adapter.mjs";

const upstream = process.env.UPSTREAM;
const refresh = new RefreshTokenSource({
  exchangeUrl: upstream + "/oauth2/exchange",
  service: "fakeacr.azurecr.io",
  getEntraToken: async () => ({ token: "node-entra-token", expiresAt: Date.now() + 3600000 }),
});
await refresh.renew();
const handler = createHandler({
  upstream,
  defaultRoute: { registry: "docker.io", prefix: "hub" },
  mode: "challenge",
  tokens: new AccessTokenCache({
    realm: upstream + "/oauth2/token",
    service: "fakeacr.azurecr.io",
    refreshToken: () => refresh.token(),
  }),
});
const server = http.createServer(toNodeListener(handler));
server.listen(0, "127.0.0.1", () => {
  console.log("PORT " + server.address().port);
});
`;

Deno.test("mod.ts bundled for Node 20 serves a pull through node:http", async () => {
  const dir = await Deno.makeTempDir();
  const served = serveFakeAcr({
    acceptEntraToken: (t) => t === "node-entra-token",
  });
  const image = await served.acr.pushSampleImage("hub/library/hello", "1");
  const pkg = `${dir}/node_modules/@acr-cache-proxy/acr-cache-proxy`;
  await Deno.mkdir(pkg, { recursive: true });
  const bundle = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--platform=browser",
      "-o",
      `${pkg}/mod.js`,
      `${ROOT}mod.ts`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(bundle.code, 0, new TextDecoder().decode(bundle.stderr));
  await Deno.writeTextFile(
    `${pkg}/package.json`,
    JSON.stringify({
      name: "@acr-cache-proxy/acr-cache-proxy",
      type: "module",
      exports: "./mod.js",
    }),
  );
  await Deno.copyFile(`${ROOT}contrib/node/adapter.mjs`, `${dir}/adapter.mjs`);
  await Deno.writeTextFile(`${dir}/main.mjs`, NODE_MAIN);

  const node = new Deno.Command("node", {
    args: ["main.mjs"],
    cwd: dir,
    env: { UPSTREAM: served.origin },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const reader = node.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await reader.read();
    const port = /PORT (\d+)/.exec(first.value ?? "")?.[1];
    assert.ok(port, `node printed ${first.value}`);
    reader.releaseLock();
    const base = `http://127.0.0.1:${port}`;

    const versionOut = await new Deno.Command("node", { args: ["--version"] })
      .output();
    assert.match(new TextDecoder().decode(versionOut.stdout), /^v20\./);

    const ping = await fetch(`${base}/v2/`);
    await ping.body?.cancel();
    assert.equal(ping.status, 401);
    const tokenRes = await fetch(
      `${base}/token?scope=repository:library/hello:pull`,
    );
    const { token } = await tokenRes.json();
    const auth = { authorization: `Bearer ${token}` };

    const manifest = await fetch(`${base}/v2/library/hello/manifests/1`, {
      headers: auth,
    });
    assert.equal(manifest.status, 200);
    assert.equal(await digestOf(await manifest.arrayBuffer()), image.manifest);

    const blob = await fetch(
      `${base}/v2/library/hello/blobs/${image.layers[0]}`,
      { headers: auth },
    );
    assert.equal(blob.status, 200);
    assert.equal(await digestOf(await blob.arrayBuffer()), image.layers[0]);
  } finally {
    node.kill("SIGTERM");
    await node.status;
    await node.stdout.cancel().catch(() => {});
    await node.stderr.cancel().catch(() => {});
    await served.close();
    await Deno.remove(dir, { recursive: true });
  }
});
