/**
 * `deno task demo`: the proxy in front of an in-process ACR stand-in, on
 * loopback, with no Azure account. It prints commands that pull through
 * the proxy and stops on Ctrl-C.
 *
 * ```sh
 * deno task demo            # proxy on 127.0.0.1:8080
 * deno task demo --port 9090
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ContentCache } from "../../src/cache.ts";
import { createHandler } from "../../src/handler.ts";
import { AccessTokenCache, RefreshTokenSource } from "../../src/tokens.ts";
import { FakeAcr } from "./fake_acr.ts";

const USAGE = "usage: deno task demo [--port PORT]   (default 8080)";
let values: { port?: string | undefined; help?: boolean | undefined };
try {
  values = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "8080" },
      help: { type: "boolean" },
    },
  }).values;
} catch (e) {
  say(`${e instanceof Error ? e.message : e}\n${USAGE}`);
  Deno.exit(2);
}
if (values.help) {
  say(USAGE);
  Deno.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  say(`--port ${JSON.stringify(values.port)} is not a port\n${USAGE}`);
  Deno.exit(2);
}

const acr = new FakeAcr();
const quiet = { hostname: "127.0.0.1", port: 0, onListen(): void {} };
const registry = Deno.serve(quiet, acr.handle);
const storage = Deno.serve(quiet, acr.storage);
const upstream = `http://127.0.0.1:${registry.addr.port}`;
acr.storageOrigin = `http://127.0.0.1:${storage.addr.port}`;
const image = await acr.pushSampleImage("hub/library/hello", "latest");

const refresh = new RefreshTokenSource({
  exchangeUrl: `${upstream}/oauth2/exchange`,
  service: "fakeacr.azurecr.io",
  getEntraToken: () =>
    Promise.resolve({
      token: "demo-entra-token",
      expiresAt: Date.now() + 3_600_000,
    }),
});
await refresh.renew();
const handler = createHandler({
  upstream,
  defaultRoute: { registry: "docker.io", prefix: "hub" },
  mode: "inject",
  tokens: new AccessTokenCache({
    realm: `${upstream}/oauth2/token`,
    service: "fakeacr.azurecr.io",
    refreshToken: () => refresh.token(),
  }),
  cache: new ContentCache(),
  onRequest: (r) =>
    say(
      `  ${r.method} ${r.kind} ${
        r.name ?? ""
      } -> ${r.status} (${r.bytes} bytes${
        r.content === "hit" ? ", from the content cache" : ""
      })`,
    ),
});
let proxy: Deno.HttpServer;
try {
  proxy = Deno.serve({ ...quiet, port }, handler.fetch);
} catch (e) {
  say(
    `cannot listen on 127.0.0.1:${port} (${
      e instanceof Error ? e.name : e
    }); pick another with --port`,
  );
  Deno.exit(1);
}
const base = `127.0.0.1:${(proxy.addr as Deno.NetAddr).port}`;

say(`acr-cache-proxy demo
  fake ACR (token service + registry): ${upstream}, blobs redirect to ${acr.storageOrigin}
  it holds hub/library/hello:latest (manifest ${image.manifest})
  proxy: http://${base}, mapping library/hello onto hub/library/hello

Try:
  curl -s http://${base}/v2/library/hello/manifests/latest
  curl -sL http://${base}/v2/library/hello/blobs/${image.layers[0]} | tar -xzO
  skopeo inspect --tls-verify=false docker://${base}/library/hello:latest
  docker: add "registry-mirrors": ["http://${base}"] to /etc/docker/daemon.json,
          restart dockerd, then: docker pull hello

Ctrl-C stops the demo. Requests:`);

const stop = async (): Promise<void> => {
  await Promise.all([
    proxy.shutdown(),
    registry.shutdown(),
    storage.shutdown(),
  ]);
  say("stopped");
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", () => void stop());
Deno.addSignalListener("SIGTERM", () => void stop());

function say(text: string): void {
  // deno-lint-ignore no-console
  console.log(text);
}
