/**
 * The proxy against the rig, driven by the built-in fetch client in both
 * auth modes (one rig, one proxy per mode): no client tools needed, so
 * this runs outside a network namespace too (the proxy's network
 * permission is then narrowed to 127.0.0.1).
 */

import assert from "node:assert/strict";
import { ACR_RESOURCE } from "./rig/fake_entra.ts";
import { MANIFEST_ACCEPT, RegistryClient } from "./rig/fetch_client.ts";
import { gatedTest } from "./rig/gate.ts";
import type { SeedImage } from "./rig/images.ts";
import { AUTH_MODES, runProxyToExit } from "./rig/proxy.ts";
import { startRig } from "./rig/rig.ts";
import {
  assertCleanLog,
  assertModeSeen,
  loggedRequests,
  startModeSession,
  startSession,
} from "./rig/session.ts";

async function assertPulls(
  client: RegistryClient,
  image: SeedImage,
  reference: string = image.tag,
): Promise<void> {
  const got = await client.pull(image.name, reference);
  const want = reference.startsWith("sha256:") && reference !== image.digest
    ? image.amd64.digest
    : image.digest;
  assert.equal(got.topDigest, want, "resolved digest");
  assert.equal(got.manifestDigest, image.amd64.digest, "amd64 manifest digest");
  assert.equal(got.config.actual, image.amd64.config.digest, "config digest");
  assert.deepEqual(
    got.layers.map((l) => [l.actual, l.size]),
    image.amd64.layers.map((l) => [l.digest, l.size]),
    "layer digests and sizes",
  );
}

gatedTest(
  "proxy (az credential) serves every image to a fetch client in both auth modes",
  {},
  async (t) => {
    const s = await startModeSession();
    const { rig } = s;
    const images = rig.images;
    const grants: string[] = [];
    try {
      await t.step(
        "each proxy signed in once through az for the ACR resource",
        async () => {
          const calls = await rig.az.calls();
          assert.ok(calls.length >= 2, "az was called by each proxy");
          assert.match(
            calls[0]!,
            /^account get-access-token .*--resource https:\/\/containerregistry\.azure\.net/,
          );
          assert.equal(rig.acr.count({ endpoint: "exchange", status: 200 }), 2);
        },
      );

      for (const mode of AUTH_MODES) {
        const proxy = s.proxies[mode];
        let client = new RegistryClient({ origin: proxy.origin });
        const fresh = (): RegistryClient => {
          grants.push(...client.received);
          client = new RegistryClient({ origin: proxy.origin });
          return client;
        };

        await t.step(
          `${mode}: library/busybox:1.36: index resolved to amd64`,
          async () => {
            await assertPulls(client, images.busybox);
            const scopes = rig.acr.find({ endpoint: "token", status: 200 })
              .flatMap((r) => r.scopes);
            assert.ok(
              scopes.includes("repository:hub/library/busybox:pull"),
              scopes.join(" "),
            );
          },
        );

        await t.step(`${mode}: someorg/tool:1.0`, async () => {
          await assertPulls(client, images.tool);
        });

        await t.step(
          `${mode}: library/alpine:3.19 (Docker schema 2) byte for byte`,
          async () => {
            await assertPulls(client, images.alpine);
          },
        );

        await t.step(
          `${mode}: library/debian:12 (Docker manifest list)`,
          async () => {
            await assertPulls(client, images.debian);
          },
        );

        await t.step(
          `${mode}: pull by digest (index and platform manifest)`,
          async () => {
            await assertPulls(client, images.busybox, images.busybox.digest);
            await assertPulls(
              client,
              images.busybox,
              images.busybox.amd64.digest,
            );
            await assertPulls(client, images.tool, images.tool.digest);
          },
        );

        await t.step(
          `${mode}: tokens: from the proxy in challenge, none in inject`,
          () => {
            if (mode === "challenge") {
              assert.ok(client.challenges > 0 && client.received.length > 0);
              assert.ok(
                client.received.every((tok) => !tok.startsWith("eyJ")),
                "the client got an upstream JWT",
              );
            } else {
              assert.equal(client.challenges, 0);
              assert.deepEqual(client.received, []);
            }
          },
        );

        await t.step(
          `${mode}: 64 MiB+ layer streamed with the right sha256`,
          async () => {
            const big = images.big.amd64.layers.find((l) =>
              l.size >= 64 * 1024 * 1024
            )!;
            assert.ok(big, "big image has a 64 MiB+ layer");
            const before = rig.acr.count({
              endpoint: "storage",
              path: `/blobs/sha256/${big.digest.slice(7)}/data`,
              status: 200,
            });
            await assertPulls(client, images.big);
            assert.equal(
              rig.acr.count({
                endpoint: "storage",
                path: `/blobs/sha256/${big.digest.slice(7)}/data`,
                status: 200,
              }),
              before + 1,
              "big blob came from storage",
            );
          },
        );

        await t.step(
          `${mode}: image that does not exist: 404 manifest unknown`,
          async () => {
            const { res } = await client.request(
              `/v2/library/doesnotexist/manifests/1.0`,
              { headers: { accept: MANIFEST_ACCEPT } },
            );
            const text = await res.text();
            assert.equal(res.status, 404, text);
            const codes = JSON.parse(text).errors.map((e: { code: string }) =>
              e.code
            );
            assert.ok(
              codes.some((c: string) =>
                c === "MANIFEST_UNKNOWN" || c === "NAME_UNKNOWN"
              ),
              text,
            );
            assert.ok(
              !text.includes("hub/library/doesnotexist"),
              `upstream name leaked: ${text}`,
            );
            const tag = await client.request(
              `/v2/library/busybox/manifests/0.0-nope`,
              { headers: { accept: MANIFEST_ACCEPT } },
            );
            const tagText = await tag.res.text();
            assert.equal(tag.res.status, 404, tagText);
            assert.match(tagText, /MANIFEST_UNKNOWN/);
          },
        );

        await t.step(
          `${mode}: upstream 401 mid-session (access tokens revoked)`,
          async () => {
            const mark = rig.acr.requests.length;
            rig.acr.invalidateAccessTokens();
            await assertPulls(client, images.busybox);
            await assertPulls(fresh(), images.busybox);
            const after = rig.acr.requests.slice(mark);
            const seen = after.map((r) => `${r.endpoint}:${r.status}`).join(
              " ",
            );
            assert.ok(
              after.some((r) => r.auth === "bearer" && r.status === 401),
              `the proxy never hit a revoked token upstream: ${seen}`,
            );
            assert.ok(
              after.some((r) => r.endpoint === "token" && r.status === 200),
              `proxy fetched no new access token: ${seen}`,
            );
          },
        );

        await t.step(
          `${mode}: refresh token revoked mid-session: proxy signs in again`,
          async () => {
            const mark = rig.acr.requests.length;
            rig.acr.invalidateRefreshTokens();
            rig.acr.invalidateAccessTokens();
            await assertPulls(fresh(), images.tool);
            const after = rig.acr.requests.slice(mark);
            assert.ok(
              after.some((r) => r.endpoint === "exchange" && r.status === 200),
              `no new exchange; saw ${
                after.map((r) => `${r.endpoint}:${r.status}`).join(" ")
              }`,
            );
          },
        );

        await t.step(
          `${mode}: short-lived upstream tokens: pulls work across expiry`,
          async () => {
            rig.acr.settings.accessTokenTtlSeconds = 2;
            rig.acr.invalidateAccessTokens();
            try {
              await assertPulls(fresh(), images.tool);
              await new Promise((r) => setTimeout(r, 3000));
              await assertPulls(fresh(), images.tool);
            } finally {
              rig.acr.settings.accessTokenTtlSeconds = 4500;
            }
          },
        );

        await t.step(`${mode}: readyz and metrics`, async () => {
          const ready = await fetch(`${proxy.origin}/readyz`);
          await ready.body?.cancel();
          assert.equal(ready.status, 200);
          const metrics = await (await fetch(`${proxy.origin}/metrics`))
            .text();
          for (
            const name of [
              "acr_cache_proxy_requests_total",
              "acr_cache_proxy_refresh_token_renewals_total",
              "acr_cache_proxy_token_cache_requests_total",
              "acr_cache_proxy_upstream_request_duration_seconds_bucket",
            ]
          ) {
            assert.ok(metrics.includes(name), `metrics lack ${name}`);
          }
          assert.match(
            metrics,
            /acr_cache_proxy_refresh_token_renewals_total\{result="success"\} [1-9]/,
          );
        });

        await t.step(
          `${mode}: request log: one line per request, mode visible`,
          async () => {
            const log = await proxy.log();
            const lines = loggedRequests(log);
            assert.ok(
              lines.length >= 20,
              `only ${lines.length} request lines in:\n${log.slice(0, 3000)}`,
            );
            assert.ok(lines.some((l) => l.name === "library/busybox"));
            await assertModeSeen(proxy);
          },
        );
        grants.push(...client.received);
      }

      await t.step("upstream scopes are pull-only under the prefix", () => {
        const scopes = rig.acr.find({ endpoint: "token" }).flatMap((r) =>
          r.scopes
        );
        assert.ok(scopes.length > 0);
        for (const scope of scopes) {
          assert.match(scope, /^repository:hub\/[a-z0-9._/-]+:pull$/);
        }
      });

      await t.step("storage never sees an Authorization header", () => {
        assert.ok(rig.acr.count({ endpoint: "storage", status: 200 }) > 0);
        assert.equal(rig.acr.count({ endpoint: "storage", auth: "bearer" }), 0);
        assert.equal(rig.acr.count({ endpoint: "storage", auth: "basic" }), 0);
      });

      await t.step("proxy logs: no 5xx, no leaks", async () => {
        assert.ok(grants.length > 0, "challenge mode handed out tokens");
        for (const p of s.all()) await assertCleanLog(p, rig, grants);
      });

      await t.step("SIGTERM: each proxy exits by itself", async () => {
        for (const p of s.all()) {
          const exited = await p.stop();
          assert.notEqual(exited.signal, "SIGKILL");
          assert.equal(exited.code, 0);
        }
      });
    } finally {
      await s.stop();
    }
  },
);

gatedTest("proxy (managed identity) serves images", {}, async (t) => {
  const s = await startSession({ credential: "msi" });
  const { rig, proxy } = s;
  try {
    await t.step("signed in through the identity endpoint", () => {
      const ok = rig.msi.requests.filter((r) => r.status === 200);
      assert.ok(ok.length >= 1, JSON.stringify(rig.msi.requests));
      assert.ok(ok.every((r) => r.headerOk));
      assert.equal(ok[0]!.resource?.replace(/\/$/, ""), ACR_RESOURCE);
      assert.equal(rig.acr.count({ endpoint: "exchange", status: 200 }), 1);
    });
    await t.step("someorg/tool:1.0 and library/busybox:1.36", async () => {
      const client = new RegistryClient({ origin: proxy.origin });
      await assertPulls(client, rig.images.tool);
      await assertPulls(client, rig.images.busybox);
      assert.deepEqual(await rig.az.calls(), []);
    });
  } finally {
    await s.stop();
  }
});

gatedTest(
  "proxy with no working credential exits 1 naming what to set",
  {},
  async () => {
    const rig = await startRig();
    try {
      await rig.az.logout();
      const r = await runProxyToExit(rig, { credential: "cli" }, 60_000);
      assert.equal(r.code, 1, `exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, /az login|AZURE_|credential/i);
      assert.equal(rig.acr.count({ endpoint: "exchange" }), 0);
    } finally {
      await rig.stop();
    }
  },
);
