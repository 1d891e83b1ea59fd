/**
 * The Docker engine through the proxy as its registry mirror in both auth
 * modes: a private dockerd per mode (no bridge, no iptables, vfs) and
 * `docker pull` with Docker Hub names; verified by `docker image inspect`
 * and `docker save`.
 */

import assert from "node:assert/strict";
import { Dockerd } from "./rig/clients/docker.ts";
import { gatedTest } from "./rig/gate.ts";
import type { SeedImage } from "./rig/images.ts";
import { runOk } from "./rig/proc.ts";
import { AUTH_MODES } from "./rig/proxy.ts";
import {
  assertCleanLog,
  assertModeSeen,
  loggedRequests,
  startModeSession,
} from "./rig/session.ts";
import { assertStoredImage } from "./rig/verify.ts";

gatedTest(
  "docker pulls through the proxy as registry mirror in both auth modes",
  { isolated: true, root: true, tools: ["dockerd", "docker"] },
  async (t) => {
    const s = await startModeSession();
    const { rig } = s;
    const images = rig.images;
    try {
      for (const mode of AUTH_MODES) {
        const proxy = s.proxies[mode];
        const dir = `${rig.dir}/docker-${mode}`;
        const dockerd = await Dockerd.start(dir, proxy.origin);
        try {
          const pullOk = async (ref: string): Promise<void> => {
            const r = await dockerd.pull(ref);
            assert.equal(
              r.code,
              0,
              `docker pull ${ref}:\n${r.stderr}\n${r.stdout}`,
            );
          };
          const check = async (
            ref: string,
            image: SeedImage,
            top: string,
          ): Promise<void> => {
            assertStoredImage(await dockerd.inspect(ref), image.amd64, top);
          };

          await t.step(`${mode}: busybox:1.36 (index -> amd64)`, async () => {
            await pullOk("busybox:1.36");
            await check("busybox:1.36", images.busybox, images.busybox.digest);
          });

          await t.step(`${mode}: someorg/tool:1.0`, async () => {
            await pullOk("someorg/tool:1.0");
            await check("someorg/tool:1.0", images.tool, images.tool.digest);
          });

          await t.step(
            `${mode}: pull by digest (Docker schema 2 image)`,
            async () => {
              const ref = `alpine@${images.alpine.digest}`;
              await pullOk(ref);
              await check(ref, images.alpine, images.alpine.digest);
            },
          );

          await t.step(
            `${mode}: debian:12 (Docker manifest list)`,
            async () => {
              await pullOk("debian:12");
              await check("debian:12", images.debian, images.debian.digest);
            },
          );

          await t.step(
            `${mode}: docker save holds the pushed config and layers`,
            async () => {
              const tar = `${dir}/busybox.tar`;
              const r = await dockerd.docker([
                "save",
                "-o",
                tar,
                "busybox:1.36",
              ]);
              assert.equal(r.code, 0, r.stderr);
              const list = await runOk("tar", ["-tf", tar]);
              const config = images.busybox.amd64.config.digest.slice(7);
              assert.ok(list.stdout.includes(`${config}.json`), list.stdout);
              const manifest = JSON.parse(
                (await runOk("tar", ["-xOf", tar, "manifest.json"])).stdout,
              );
              assert.equal(manifest[0].Config, `${config}.json`);
              assert.equal(
                manifest[0].Layers.length,
                images.busybox.amd64.layers.length,
              );
            },
          );

          await t.step(
            `${mode}: image that does not exist fails cleanly`,
            async () => {
              const r = await dockerd.pull("doesnotexist:1.0");
              assert.notEqual(r.code, 0);
              // dockerd falls back to registry-1.docker.io after a mirror
              // 404 (unreachable in the namespace), so check the proxy
              const lines = loggedRequests(await proxy.log())
                .filter((l) => l.name === "library/doesnotexist");
              assert.ok(
                lines.some((l) => l.status === 404),
                lines.map((l) => l.line).join("\n"),
              );
            },
          );

          await t.step(`${mode}: the proxy ran in ${mode} mode`, async () => {
            await assertModeSeen(proxy);
          });
        } finally {
          await dockerd.stop();
        }
      }

      await t.step("proxy logs: no 5xx, no leaks", async () => {
        for (const p of s.all()) await assertCleanLog(p, rig);
      });
    } finally {
      await s.stop();
    }
  },
);
