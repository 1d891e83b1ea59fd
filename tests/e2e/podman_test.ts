/**
 * podman through the proxy configured as docker.io mirror (dead loopback
 * primary), private vfs storage; verified by `podman image inspect` and
 * `podman save`.
 */

import assert from "node:assert/strict";
import { Podman } from "./rig/clients/podman.ts";
import { gatedTest } from "./rig/gate.ts";
import type { SeedImage } from "./rig/images.ts";
import { startSession } from "./rig/session.ts";
import { assertStoredImage, readLayout } from "./rig/verify.ts";

gatedTest(
  "podman pulls through the proxy as docker.io mirror",
  { isolated: true, root: true, tools: ["podman"] },
  async (t) => {
    const s = await startSession({ credential: "cli" });
    const { rig, proxy } = s;
    const images = rig.images;
    const podman = await Podman.create(`${rig.dir}/podman`, proxy.host);
    const pullOk = async (ref: string): Promise<void> => {
      const r = await podman.pull(ref);
      assert.equal(r.code, 0, `podman pull ${ref}:\n${r.stderr}`);
    };
    const check = async (
      ref: string,
      image: SeedImage,
      top: string,
    ): Promise<void> => {
      const got = await podman.inspect(ref);
      assertStoredImage(got, image.amd64, top);
    };
    try {
      await t.step(
        "docker.io/library/busybox:1.36 (index -> amd64)",
        async () => {
          await pullOk("docker.io/library/busybox:1.36");
          await check(
            "docker.io/library/busybox:1.36",
            images.busybox,
            images.busybox.digest,
          );
          const saved = `${rig.dir}/podman/save-busybox`;
          await podman.save("docker.io/library/busybox:1.36", saved);
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

      await t.step("docker.io/someorg/tool:1.0", async () => {
        await pullOk("docker.io/someorg/tool:1.0");
        await check(
          "docker.io/someorg/tool:1.0",
          images.tool,
          images.tool.digest,
        );
      });

      await t.step("pull by digest", async () => {
        const ref = `docker.io/library/alpine@${images.alpine.digest}`;
        await pullOk(ref);
        await check(ref, images.alpine, images.alpine.digest);
      });

      await t.step("image that does not exist fails cleanly", async () => {
        const r = await podman.pull("docker.io/library/doesnotexist:1.0");
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /manifest unknown|not found|404/i, r.stderr);
      });
    } finally {
      await s.stop();
    }
  },
);
