/**
 * skopeo through the proxy in both auth modes (one rig, one proxy per
 * mode): as a plain registry and as a docker.io mirror, every case
 * verified against the pushed digests.
 */

import assert from "node:assert/strict";
import { Skopeo } from "./rig/clients/skopeo.ts";
import { gatedTest } from "./rig/gate.ts";
import { AUTH_MODES } from "./rig/proxy.ts";
import {
  assertCleanLog,
  assertModeSeen,
  startModeSession,
  startSession,
} from "./rig/session.ts";
import { assertCopyHasImage, assertCopyHasManifest } from "./rig/verify.ts";

const NEEDS = { isolated: true, tools: ["skopeo"] };

async function copyOk(
  skopeo: Skopeo,
  source: string,
  dest: string,
  options: Parameters<Skopeo["copy"]>[2] = {},
): Promise<void> {
  const r = await skopeo.copy(source, dest, options);
  assert.equal(r.code, 0, `skopeo copy ${source} failed:\n${r.stderr}`);
}

gatedTest(
  "skopeo pulls through the proxy in both auth modes",
  NEEDS,
  async (t) => {
    const s = await startModeSession();
    const { rig } = s;
    const images = rig.images;
    const skopeo = await Skopeo.create(`${rig.dir}/skopeo`);
    let n = 0;
    const out = (): string => `${rig.dir}/skopeo/out-${++n}`;
    try {
      for (const mode of AUTH_MODES) {
        const proxy = s.proxies[mode];
        const base = `docker://${proxy.host}`;
        await t.step(
          `${mode}: library/busybox:1.36 resolves the index to amd64`,
          async () => {
            const dest = out();
            await copyOk(skopeo, `${base}/library/busybox:1.36`, dest);
            await assertCopyHasManifest(dest, images.busybox.amd64);
          },
        );

        await t.step(
          `${mode}: library/busybox:1.36 --all keeps the OCI index`,
          async () => {
            const dest = out();
            await copyOk(skopeo, `${base}/library/busybox:1.36`, dest, {
              all: true,
            });
            await assertCopyHasImage(dest, images.busybox);
          },
        );

        await t.step(`${mode}: someorg/tool:1.0`, async () => {
          const dest = out();
          await copyOk(skopeo, `${base}/someorg/tool:1.0`, dest);
          await assertCopyHasImage(dest, images.tool);
        });

        await t.step(`${mode}: pull by digest`, async () => {
          const byIndex = out();
          await copyOk(
            skopeo,
            `${base}/library/busybox@${images.busybox.digest}`,
            byIndex,
          );
          await assertCopyHasManifest(byIndex, images.busybox.amd64);
          const byManifest = out();
          await copyOk(
            skopeo,
            `${base}/library/busybox@${images.busybox.amd64.digest}`,
            byManifest,
          );
          await assertCopyHasManifest(byManifest, images.busybox.amd64);
        });

        await t.step(
          `${mode}: library/alpine:3.19 (Docker schema 2) byte for byte`,
          async () => {
            const dest = out();
            await copyOk(skopeo, `${base}/library/alpine:3.19`, dest);
            await assertCopyHasImage(dest, images.alpine);
          },
        );

        await t.step(
          `${mode}: library/debian:12 (Docker manifest list) --all and amd64`,
          async () => {
            const all = out();
            await copyOk(skopeo, `${base}/library/debian:12`, all, {
              all: true,
            });
            await assertCopyHasImage(all, images.debian);
            const one = out();
            await copyOk(skopeo, `${base}/library/debian:12`, one);
            await assertCopyHasManifest(one, images.debian.amd64);
          },
        );

        await t.step(
          `${mode}: 64 MiB+ layer streamed, sha256 verified`,
          async () => {
            const dest = out();
            await copyOk(skopeo, `${base}/library/big:1.0`, dest);
            await assertCopyHasImage(dest, images.big);
            const big = images.big.amd64.layers.find((l) =>
              l.size >= 64 * 1024 * 1024
            )!;
            const stat = await Deno.stat(`${dest}/${big.digest.slice(7)}`);
            assert.equal(stat.size, big.size);
          },
        );

        await t.step(
          `${mode}: as docker.io mirror (registries.conf, dead primary)`,
          async () => {
            const conf = await skopeo.mirrorConf(proxy.host, mode);
            const dest = out();
            await copyOk(
              skopeo,
              "docker://docker.io/library/busybox:1.36",
              dest,
              { registriesConf: conf, insecure: false },
            );
            await assertCopyHasManifest(dest, images.busybox.amd64);
            const tool = out();
            await copyOk(skopeo, "docker://docker.io/someorg/tool:1.0", tool, {
              registriesConf: conf,
              insecure: false,
            });
            await assertCopyHasImage(tool, images.tool);
            const debian = out();
            await copyOk(
              skopeo,
              "docker://docker.io/library/debian:12",
              debian,
              {
                registriesConf: conf,
                insecure: false,
              },
            );
            await assertCopyHasManifest(debian, images.debian.amd64);
          },
        );

        await t.step(
          `${mode}: image that does not exist: manifest unknown`,
          async () => {
            const r = await skopeo.copy(
              `${base}/library/doesnotexist:1.0`,
              out(),
            );
            assert.notEqual(r.code, 0);
            assert.match(
              r.stderr,
              /manifest unknown|not found|404/i,
              r.stderr,
            );
          },
        );

        await t.step(
          `${mode}: upstream 401 mid-session: next pull still works`,
          async () => {
            const first = out();
            await copyOk(skopeo, `${base}/library/busybox:1.36`, first);
            const mark = rig.acr.requests.length;
            rig.acr.invalidateAccessTokens();
            const second = out();
            await copyOk(skopeo, `${base}/library/busybox:1.36`, second);
            await assertCopyHasManifest(second, images.busybox.amd64);
            const after = rig.acr.requests.slice(mark);
            assert.ok(
              after.some((r) => r.auth === "bearer" && r.status === 401),
            );
            assert.ok(
              after.some((r) => r.endpoint === "token" && r.status === 200),
            );
          },
        );

        await t.step(`${mode}: the proxy ran in ${mode} mode`, async () => {
          await assertModeSeen(proxy);
        });
      }

      await t.step(
        "blob bytes came from storage, never with Authorization",
        () => {
          assert.ok(rig.acr.count({ endpoint: "storage", status: 200 }) > 0);
          assert.equal(
            rig.acr.count({ endpoint: "storage", auth: "bearer" }),
            0,
          );
        },
      );

      await t.step("proxy logs: no 5xx, no leaks", async () => {
        for (const p of s.all()) await assertCleanLog(p, rig);
      });
    } finally {
      await s.stop();
    }
  },
);

gatedTest(
  "skopeo pulls through the proxy (managed identity)",
  NEEDS,
  async () => {
    const s = await startSession({ credential: "msi" });
    try {
      const skopeo = await Skopeo.create(`${s.rig.dir}/skopeo`);
      const dest = `${s.rig.dir}/skopeo/out`;
      await copyOk(
        skopeo,
        `docker://${s.proxy.host}/library/busybox:1.36`,
        dest,
      );
      await assertCopyHasManifest(dest, s.rig.images.busybox.amd64);
      assert.ok(s.rig.msi.requests.some((r) => r.status === 200 && r.headerOk));
    } finally {
      await s.stop();
    }
  },
);
