/**
 * containerd (`ctr`) through the proxy as docker.io host (hosts.toml with
 * a dead loopback `server`) in both auth modes, a private containerd
 * daemon per mode (so no content is shared between modes); verified by
 * `ctr images ls` and re-hashing content.
 */

import assert from "node:assert/strict";
import { assertCtrImage, Containerd } from "./rig/clients/containerd.ts";
import { gatedTest } from "./rig/gate.ts";
import { AUTH_MODES } from "./rig/proxy.ts";
import {
  assertCleanLog,
  assertModeSeen,
  loggedRequests,
  startModeSession,
} from "./rig/session.ts";

gatedTest(
  "containerd pulls through the proxy as docker.io host in both auth modes",
  { isolated: true, root: true, tools: ["containerd", "ctr"] },
  async (t) => {
    const s = await startModeSession();
    const { rig } = s;
    const images = rig.images;
    try {
      for (const mode of AUTH_MODES) {
        const proxy = s.proxies[mode];
        const ctrd = await Containerd.start(`${rig.dir}/ctrd-${mode}`);
        try {
          const hosts = await ctrd.hostsDir("hosts", {
            "docker.io": { url: proxy.origin },
          });
          const pullOk = async (ref: string): Promise<void> => {
            const r = await ctrd.pull(ref, hosts);
            if (r.code === 0) return;
            const recent = loggedRequests(await proxy.log()).slice(-4);
            assert.fail(
              `ctr pull ${ref} failed:\n${r.stderr}\nlast proxy requests:\n` +
                recent.map((l) => l.line).join("\n"),
            );
          };

          await t.step(
            `${mode}: docker.io/library/busybox:1.36 (index -> amd64)`,
            async () => {
              const ref = "docker.io/library/busybox:1.36";
              await pullOk(ref);
              await assertCtrImage(
                ctrd,
                ref,
                images.busybox,
                images.busybox.digest,
              );
            },
          );

          await t.step(`${mode}: docker.io/someorg/tool:1.0`, async () => {
            const ref = "docker.io/someorg/tool:1.0";
            await pullOk(ref);
            await assertCtrImage(ctrd, ref, images.tool, images.tool.digest);
          });

          await t.step(
            `${mode}: pull by digest (Docker schema 2 image)`,
            async () => {
              const ref = `docker.io/library/alpine@${images.alpine.digest}`;
              await pullOk(ref);
              await assertCtrImage(
                ctrd,
                ref,
                images.alpine,
                images.alpine.digest,
              );
            },
          );

          await t.step(
            `${mode}: docker.io/library/debian:12 (Docker manifest list)`,
            async () => {
              const ref = "docker.io/library/debian:12";
              await pullOk(ref);
              await assertCtrImage(
                ctrd,
                ref,
                images.debian,
                images.debian.digest,
              );
            },
          );

          await t.step(
            `${mode}: upstream 401 mid-session: next pull still works`,
            async () => {
              rig.acr.invalidateAccessTokens();
              const ref = "docker.io/library/big:1.0";
              await pullOk(ref);
              await assertCtrImage(ctrd, ref, images.big, images.big.digest);
            },
          );

          await t.step(
            `${mode}: image that does not exist fails cleanly, no 5xx`,
            async () => {
              const r = await ctrd.pull(
                "docker.io/library/doesnotexist:1.0",
                hosts,
              );
              assert.notEqual(r.code, 0);
              // containerd answers a mirror 404 by trying the next host
              // (the dead server), so the proxy's 404 shows up as a log line
              assert.match(
                r.stderr,
                new RegExp(`StatusNotFound" host="${proxy.host}"`),
                r.stderr,
              );
            },
          );

          await t.step(`${mode}: the proxy ran in ${mode} mode`, async () => {
            await assertModeSeen(proxy);
          });
        } finally {
          await ctrd.stop();
        }
      }

      await t.step(
        "?ns=docker.io on every request did not change routing",
        () => {
          const upstream = rig.acr.find({ endpoint: "manifest", status: 200 });
          assert.ok(upstream.length > 0);
          assert.ok(upstream.every((r) => r.path.startsWith("/v2/hub/")));
          assert.ok(
            upstream.every((r) => !r.search.includes("ns=")),
            "ns= forwarded upstream",
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
