/**
 * containerd (`ctr`) through the proxy as docker.io host (hosts.toml with
 * a dead loopback `server`), with a private containerd daemon; verified
 * by `ctr images ls` and re-hashing content.
 */

import assert from "node:assert/strict";
import { Containerd } from "./rig/clients/containerd.ts";
import { gatedTest } from "./rig/gate.ts";
import type { SeedImage } from "./rig/images.ts";
import { loggedRequests, startSession } from "./rig/session.ts";

gatedTest(
  "containerd pulls through the proxy as docker.io host",
  { isolated: true, root: true, tools: ["containerd", "ctr"] },
  async (t) => {
    const s = await startSession({ credential: "cli" });
    const { rig, proxy } = s;
    const images = rig.images;
    let ctrd: Containerd | null = null;
    const verify = async (
      ref: string,
      image: SeedImage,
      top: string,
    ): Promise<void> => {
      assert.equal(await ctrd!.imageDigest(ref), top, "ctr images ls digest");
      const m = image.amd64;
      for (
        const d of [
          m.digest,
          m.config.digest,
          ...m.layers.map((l) => l.digest),
        ]
      ) {
        assert.equal(await ctrd!.contentDigest(d), d, `content ${d}`);
      }
    };
    const pullOk = async (ref: string): Promise<void> => {
      const r = await ctrd!.pull(ref);
      if (r.code === 0) return;
      const recent = loggedRequests(await proxy.log()).slice(-4);
      assert.fail(
        `ctr pull ${ref} failed:\n${r.stderr}\nlast proxy requests:\n` +
          recent.map((l) => l.line).join("\n"),
      );
    };
    try {
      ctrd = await Containerd.start(`${rig.dir}/ctrd`, proxy.host);
      await t.step(
        "docker.io/library/busybox:1.36 (index -> amd64)",
        async () => {
          await pullOk("docker.io/library/busybox:1.36");
          await verify(
            "docker.io/library/busybox:1.36",
            images.busybox,
            images.busybox.digest,
          );
        },
      );

      await t.step("docker.io/someorg/tool:1.0", async () => {
        await pullOk("docker.io/someorg/tool:1.0");
        await verify(
          "docker.io/someorg/tool:1.0",
          images.tool,
          images.tool.digest,
        );
      });

      await t.step("pull by digest (Docker schema 2 image)", async () => {
        const ref = `docker.io/library/alpine@${images.alpine.digest}`;
        await pullOk(ref);
        await verify(ref, images.alpine, images.alpine.digest);
      });

      await t.step(
        "upstream 401 mid-session: next pull still works",
        async () => {
          rig.acr.invalidateAccessTokens();
          await pullOk("docker.io/library/big:1.0");
          await verify(
            "docker.io/library/big:1.0",
            images.big,
            images.big.digest,
          );
        },
      );

      await t.step(
        "image that does not exist fails cleanly, no 5xx",
        async () => {
          const r = await ctrd!.pull("docker.io/library/doesnotexist:1.0");
          assert.notEqual(r.code, 0);
          // containerd answers a mirror 404 by trying the next host (the
          // dead server), so the proxy's 404 shows up as a log line
          assert.match(
            r.stderr,
            new RegExp(`StatusNotFound" host="${proxy.host}"`),
            r.stderr,
          );
          const bad = loggedRequests(await proxy.log()).filter((l) =>
            l.status >= 500
          );
          assert.deepEqual(bad.map((l) => l.line), []);
        },
      );

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
    } finally {
      await ctrd?.stop();
      await s.stop();
    }
  },
);
