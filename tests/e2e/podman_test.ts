/**
 * podman through the proxy configured as docker.io mirror (dead loopback
 * primary), private vfs storage per auth mode; verified by `podman image
 * inspect` and `podman save`.
 */

import assert from "node:assert/strict";
import { Podman } from "./rig/clients/podman.ts";
import { gatedTest } from "./rig/gate.ts";
import type { SeedImage } from "./rig/images.ts";
import { AUTH_MODES } from "./rig/proxy.ts";
import {
  assertCleanLog,
  assertModeSeen,
  startModeSession,
} from "./rig/session.ts";
import { assertStoredImage, readLayout } from "./rig/verify.ts";

gatedTest(
  "podman pulls through the proxy as docker.io mirror in both auth modes",
  { isolated: true, root: true, tools: ["podman"] },
  async (t) => {
    const s = await startModeSession();
    const { rig } = s;
    const images = rig.images;
    try {
      for (const mode of AUTH_MODES) {
        const proxy = s.proxies[mode];
        // podman refuses a run root longer than 50 characters
        const dir = `${rig.dir}/p${mode[0]}`;
        const podman = await Podman.create(dir, proxy.host);
        const pullOk = async (ref: string): Promise<void> => {
          const r = await podman.pull(ref);
          assert.equal(r.code, 0, `podman pull ${ref}:\n${r.stderr}`);
        };
        const check = async (
          ref: string,
          image: SeedImage,
          top: string,
        ): Promise<void> => {
          assertStoredImage(await podman.inspect(ref), image.amd64, top);
        };

        await t.step(
          `${mode}: docker.io/library/busybox:1.36 (index -> amd64)`,
          async () => {
            const ref = "docker.io/library/busybox:1.36";
            await pullOk(ref);
            await check(ref, images.busybox, images.busybox.digest);
            const saved = `${dir}/save-busybox`;
            await podman.save(ref, saved);
            const layout = await readLayout(saved);
            assert.ok(
              layout.blobs.has(images.busybox.amd64.config.digest),
              "config kept",
            );
            for (const d of images.busybox.amd64.diffIds) {
              assert.ok(layout.blobs.has(d), `saved layer ${d}`);
            }
          },
        );

        await t.step(`${mode}: docker.io/someorg/tool:1.0`, async () => {
          await pullOk("docker.io/someorg/tool:1.0");
          await check(
            "docker.io/someorg/tool:1.0",
            images.tool,
            images.tool.digest,
          );
        });

        await t.step(
          `${mode}: pull by digest (Docker schema 2 image)`,
          async () => {
            const ref = `docker.io/library/alpine@${images.alpine.digest}`;
            await pullOk(ref);
            await check(ref, images.alpine, images.alpine.digest);
          },
        );

        await t.step(
          `${mode}: docker.io/library/debian:12 (Docker manifest list)`,
          async () => {
            await pullOk("docker.io/library/debian:12");
            await check(
              "docker.io/library/debian:12",
              images.debian,
              images.debian.digest,
            );
          },
        );

        await t.step(
          `${mode}: image that does not exist fails cleanly`,
          async () => {
            const r = await podman.pull("docker.io/library/doesnotexist:1.0");
            assert.notEqual(r.code, 0);
            assert.match(
              r.stderr,
              /manifest unknown|not found|404/i,
              r.stderr,
            );
          },
        );

        await t.step(`${mode}: the proxy ran in ${mode} mode`, async () => {
          await assertModeSeen(proxy);
        });
      }

      await t.step("proxy logs: no 5xx, no leaks", async () => {
        for (const p of s.all()) await assertCleanLog(p, rig);
      });
    } finally {
      await s.stop();
    }
  },
);
