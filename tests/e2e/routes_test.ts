/**
 * Cache rules for more than Docker Hub: `ghcr/org/app:1.0` in the
 * registry served as `ghcr.io/org/app:1.0`.
 *
 * - containerd sends `?ns=ghcr.io` to its mirror host, so one proxy with
 *   `--route ghcr.io=ghcr` serves both registries; tried with
 *   `--upstream-prefix hub --route ghcr.io=ghcr` and with
 *   `--route docker.io=hub --route ghcr.io=ghcr` (no `--upstream-prefix`),
 *   each in both auth modes.
 * - containers/image (podman, skopeo) sends no `ns` to a mirror, so on a
 *   shared proxy a ghcr.io pull lands on the default (Docker Hub) route
 *   and fails; what works is a second proxy instance whose
 *   `--upstream-prefix` is the ghcr rule, as the ghcr.io mirror.
 * - A registry without a route gets 404 NAME_UNKNOWN naming it, and
 *   containerd falls back to the next host.
 */

import assert from "node:assert/strict";
import { assertCtrImage, Containerd } from "./rig/clients/containerd.ts";
import { Podman } from "./rig/clients/podman.ts";
import { Skopeo } from "./rig/clients/skopeo.ts";
import { parseChallenge, RegistryClient } from "./rig/fetch_client.ts";
import { gatedTest } from "./rig/gate.ts";
import type { SeedImage } from "./rig/images.ts";
import { AUTH_MODES, type RunningProxy, startProxy } from "./rig/proxy.ts";
import { type Rig, startRig } from "./rig/rig.ts";
import { assertCleanLog, loggedRequests } from "./rig/session.ts";
import { assertCopyHasManifest, assertStoredImage } from "./rig/verify.ts";

/** The two ways to configure the routes. */
const VARIANTS = {
  "prefix+route": { upstreamPrefix: "hub", routes: ["ghcr.io=ghcr"] },
  "routes-only": {
    upstreamPrefix: null,
    routes: ["docker.io=hub", "ghcr.io=ghcr"],
  },
} as const;

async function assertFetchPull(
  client: RegistryClient,
  image: SeedImage,
): Promise<void> {
  const got = await client.pull(image.name, image.tag);
  assert.equal(got.topDigest, image.digest, "resolved digest");
  assert.equal(got.manifestDigest, image.amd64.digest, "amd64 manifest");
  assert.equal(got.config.actual, image.amd64.config.digest, "config");
  assert.deepEqual(
    got.layers.map((l) => [l.actual, l.size]),
    image.amd64.layers.map((l) => [l.digest, l.size]),
    "layers",
  );
}

/**
 * Pulls of ghcr.io and docker.io images through one proxy with routes,
 * by containerd and the fetch client, and the no-route answer.
 *
 * @param t test context
 * @param rig the rig
 * @param tag step name prefix
 * @param proxy the proxy under test
 * @param grants collects proxy-issued tokens for the leak scan
 */
async function routeSteps(
  t: Deno.TestContext,
  rig: Rig,
  tag: string,
  proxy: RunningProxy,
  grants: string[],
): Promise<void> {
  const { app, busybox } = rig.images;
  const mode = proxy.mode;
  const ctrd = await Containerd.start(
    `${rig.dir}/ctrd-${tag.replace(" ", "-")}`,
  );
  try {
    const hosts = await ctrd.hostsDir("hosts", {
      "docker.io": { url: proxy.origin },
      "ghcr.io": { url: proxy.origin },
      "quay.io": { url: proxy.origin },
    });

    await t.step(`${tag}: ctr pulls ghcr.io/org/app:1.0`, async () => {
      const r = await ctrd.pull("ghcr.io/org/app:1.0", hosts);
      assert.equal(r.code, 0, r.stderr);
      await assertCtrImage(ctrd, "ghcr.io/org/app:1.0", app, app.digest);
      const lines = loggedRequests(await proxy.log())
        .filter((l) => l.name === "org/app");
      assert.ok(lines.length > 0);
      assert.ok(
        lines.every((l) => l.route === "ghcr.io"),
        lines.map((l) => l.line).join("\n"),
      );
    });

    await t.step(
      `${tag}: ctr pulls docker.io/library/busybox:1.36`,
      async () => {
        const ref = "docker.io/library/busybox:1.36";
        const r = await ctrd.pull(ref, hosts);
        assert.equal(r.code, 0, r.stderr);
        await assertCtrImage(ctrd, ref, busybox, busybox.digest);
      },
    );

    await t.step(
      `${tag}: ctr: quay.io has no route: 404, containerd moves on`,
      async () => {
        const r = await ctrd.pull("quay.io/org/app:1.0", hosts);
        assert.notEqual(r.code, 0, "pulled through a registry with no route");
        assert.match(
          r.stderr,
          new RegExp(`StatusNotFound" host="${proxy.host}"`),
          r.stderr,
        );
        assert.match(r.stderr, /127\.0\.0\.1:1/, "fell back to server");
      },
    );
  } finally {
    await ctrd.stop();
  }

  await t.step(`${tag}: fetch client with ns=ghcr.io`, async () => {
    const client = new RegistryClient({
      origin: proxy.origin,
      query: "ns=ghcr.io",
    });
    await assertFetchPull(client, app);
    grants.push(...client.received);
    if (mode === "challenge") {
      const res = await fetch(`${proxy.origin}/v2/?ns=ghcr.io`);
      await res.body?.cancel();
      const c = parseChallenge(res.headers.get("www-authenticate"));
      assert.equal(c?.params.realm, `${proxy.origin}/token/ghcr.io`);
    }
  });

  await t.step(
    `${tag}: ns without a route: 404 NAME_UNKNOWN naming it`,
    async () => {
      for (const method of ["GET", "HEAD"]) {
        const res = await fetch(
          `${proxy.origin}/v2/org/app/manifests/1.0?ns=quay.io`,
          { method },
        );
        const text = await res.text();
        assert.equal(res.status, 404, text);
        if (method === "GET") {
          const err = JSON.parse(text).errors[0];
          assert.equal(err.code, "NAME_UNKNOWN", text);
          assert.match(err.message, /quay\.io/, text);
        }
      }
    },
  );

  await t.step(
    `${tag}: no ns uses the docker.io route; routes stay apart`,
    async () => {
      const ghcr = new RegistryClient({
        origin: proxy.origin,
        query: "ns=ghcr.io",
      });
      const { res } = await ghcr.request(
        "/v2/library/busybox/manifests/1.36",
      );
      const text = await res.text();
      assert.equal(res.status, 404, `busybox under ghcr/: ${text}`);
      assert.ok(!text.includes("ghcr/"), text);
      // no ns (Docker's mirror requests): the docker.io route serves
      const hub = new RegistryClient({ origin: proxy.origin });
      await assertFetchPull(hub, busybox);
      const viaHub = await hub.request("/v2/org/app/manifests/1.0");
      const hubText = await viaHub.res.text();
      assert.equal(viaHub.res.status, 404, `org/app under hub/: ${hubText}`);
      assert.ok(!hubText.includes("hub/"), hubText);
      grants.push(...ghcr.received, ...hub.received);
      if (mode === "challenge") {
        // a token for docker.io's org/app does not open ghcr.io's
        const hubToken = hub.received.at(-1)!;
        const cross = await fetch(
          `${proxy.origin}/v2/org/app/manifests/1.0?ns=ghcr.io`,
          { headers: { authorization: `Bearer ${hubToken}` } },
        );
        await cross.body?.cancel();
        assert.equal(cross.status, 401);
      }
    },
  );
}

gatedTest(
  "routes: ghcr.io through ns (containerd, fetch) and a second instance (podman, skopeo)",
  {
    isolated: true,
    root: true,
    tools: ["containerd", "ctr", "skopeo", "podman"],
  },
  async (t) => {
    const rig = await startRig();
    const { app, busybox } = rig.images;
    const proxies: RunningProxy[] = [];
    const start = async (
      label: string,
      options: Parameters<typeof startProxy>[1],
    ): Promise<RunningProxy> => {
      const p = await startProxy(rig, { ...options, label });
      proxies.push(p);
      return p;
    };
    const grants: string[] = [];
    try {
      for (const [variant, flags] of Object.entries(VARIANTS)) {
        for (const mode of AUTH_MODES) {
          const proxy = await start(`${variant}-${mode}`, {
            ...flags,
            routes: [...flags.routes],
            mode,
          });
          const tag = `${variant} ${mode}`;
          await routeSteps(t, rig, tag, proxy, grants);
        }
      }

      const shared = proxies[0]!;
      const ghcrOnly = await start("ghcr-only", { upstreamPrefix: "ghcr" });

      await t.step(
        "skopeo: ghcr.io mirror on the shared proxy gets no ns: 404",
        async () => {
          const skopeo = await Skopeo.create(`${rig.dir}/skopeo`);
          const conf = await skopeo.conf("shared", {
            "docker.io": { host: shared.host },
            "ghcr.io": { host: shared.host },
          });
          const r = await skopeo.copy(
            "docker://ghcr.io/org/app:1.0",
            `${rig.dir}/skopeo/shared-app`,
            { registriesConf: conf, insecure: false },
          );
          assert.notEqual(r.code, 0, "pulled ghcr.io/org/app without ns?");
          assert.match(r.stderr, /manifest unknown|not found|404/i, r.stderr);
          const lines = loggedRequests(await shared.log()).filter((l) =>
            l.name === "org/app"
          );
          assert.ok(
            lines.some((l) => l.route === "docker.io" && l.status === 404),
            `expected the Docker Hub route to answer 404 for org/app:\n${
              lines.map((l) => l.line).join("\n")
            }`,
          );
        },
      );

      await t.step(
        "skopeo: a path on the mirror (127.0.0.1:port/ghcr) is part of the name: 404",
        async () => {
          const skopeo = await Skopeo.create(`${rig.dir}/skopeo`);
          const conf = await skopeo.conf("path", {
            "ghcr.io": { host: `${shared.host}/ghcr` },
          });
          const r = await skopeo.copy(
            "docker://ghcr.io/org/app:1.0",
            `${rig.dir}/skopeo/path-app`,
            { registriesConf: conf, insecure: false },
          );
          assert.notEqual(r.code, 0, "a mirror path selected a route?");
          const lines = loggedRequests(await shared.log()).filter((l) =>
            l.name === "ghcr/org/app"
          );
          assert.ok(
            lines.some((l) => l.route === "docker.io" && l.status === 404),
            lines.map((l) => l.line).join("\n"),
          );
          assert.ok(
            rig.acr.requests.some((q) =>
              q.path === "/v2/hub/ghcr/org/app/manifests/1.0"
            ),
            "the path went under the Docker Hub prefix",
          );
        },
      );

      await t.step(
        "skopeo: a proxy with --upstream-prefix ghcr as ghcr.io mirror works",
        async () => {
          const skopeo = await Skopeo.create(`${rig.dir}/skopeo`);
          const conf = await skopeo.conf("split", {
            "docker.io": { host: shared.host },
            "ghcr.io": { host: ghcrOnly.host },
          });
          const out = `${rig.dir}/skopeo/split-app`;
          const r = await skopeo.copy("docker://ghcr.io/org/app:1.0", out, {
            registriesConf: conf,
            insecure: false,
          });
          assert.equal(r.code, 0, r.stderr);
          await assertCopyHasManifest(out, app.amd64);
          const hub = `${rig.dir}/skopeo/split-busybox`;
          const r2 = await skopeo.copy(
            "docker://docker.io/library/busybox:1.36",
            hub,
            { registriesConf: conf, insecure: false },
          );
          assert.equal(r2.code, 0, r2.stderr);
          await assertCopyHasManifest(hub, busybox.amd64);
        },
      );

      await t.step(
        "podman: ghcr.io mirror on the shared proxy fails, on a ghcr instance works",
        async () => {
          const sharedPodman = await Podman.create(`${rig.dir}/ps`, {
            "docker.io": { host: shared.host },
            "ghcr.io": { host: shared.host },
          });
          const bad = await sharedPodman.pull("ghcr.io/org/app:1.0");
          assert.notEqual(bad.code, 0, "pulled ghcr.io/org/app without ns?");
          assert.match(bad.stderr, /manifest unknown|not found|404/i);

          const podman = await Podman.create(`${rig.dir}/pg`, {
            "docker.io": { host: shared.host },
            "ghcr.io": { host: ghcrOnly.host },
          });
          const ok = await podman.pull("ghcr.io/org/app:1.0");
          assert.equal(ok.code, 0, ok.stderr);
          assertStoredImage(
            await podman.inspect("ghcr.io/org/app:1.0"),
            app.amd64,
            app.digest,
          );
          const hub = await podman.pull("docker.io/library/busybox:1.36");
          assert.equal(hub.code, 0, hub.stderr);
          assertStoredImage(
            await podman.inspect("docker.io/library/busybox:1.36"),
            busybox.amd64,
            busybox.digest,
          );
        },
      );

      await t.step(
        "upstream saw ghcr/ names, never an ns parameter",
        () => {
          const ghcr = rig.acr.find({ endpoint: "manifest", status: 200 })
            .filter((r) => r.path.startsWith("/v2/ghcr/"));
          assert.ok(ghcr.length > 0, "no manifest fetched under ghcr/");
          assert.ok(
            rig.acr.requests.every((r) => !/[?&]ns=/.test(r.search)),
            "ns forwarded upstream",
          );
          const scopes = rig.acr.find({ endpoint: "token" }).flatMap((r) =>
            r.scopes
          );
          assert.ok(scopes.includes("repository:ghcr/org/app:pull"));
          for (const scope of scopes) {
            assert.match(scope, /^repository:(hub|ghcr)\/[a-z0-9._/-]+:pull$/);
          }
        },
      );

      await t.step("proxy logs: no 5xx, no leaks", async () => {
        for (const p of proxies) await assertCleanLog(p, rig, grants);
      });
    } finally {
      await Promise.all(proxies.map((p) => p.stop()));
      await rig.stop();
    }
  },
);
