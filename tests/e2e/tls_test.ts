/**
 * The TLS listener (`--tls-cert`/`--tls-key`, read with `--allow-read` of
 * exactly those files): a self-signed end-entity certificate for
 * 127.0.0.1 (`CA:FALSE`, SAN `IP:127.0.0.1`) that clients trust as their
 * anchor. Every client verifies the certificate: no `insecure`, no
 * `--tls-verify=false`, and each pull fails without the anchor.
 */

import assert from "node:assert/strict";
import { assertCtrImage, Containerd } from "./rig/clients/containerd.ts";
import { Podman } from "./rig/clients/podman.ts";
import { Skopeo } from "./rig/clients/skopeo.ts";
import { parseChallenge, RegistryClient } from "./rig/fetch_client.ts";
import { gatedTest } from "./rig/gate.ts";
import { createServerCert } from "./rig/pki.ts";
import { type RunningProxy, startProxy } from "./rig/proxy.ts";
import { startRig } from "./rig/rig.ts";
import { assertCleanLog, assertModeSeen } from "./rig/session.ts";
import { assertCopyHasManifest, assertStoredImage } from "./rig/verify.ts";

const UNTRUSTED = /x509: certificate signed by unknown authority|certificate/i;

gatedTest(
  "TLS listener: skopeo, podman, ctr and fetch verify the proxy's certificate",
  {
    isolated: true,
    root: true,
    tools: ["skopeo", "podman", "containerd", "ctr"],
  },
  async (t) => {
    const rig = await startRig();
    const { busybox, tool } = rig.images;
    const cert = await createServerCert(`${rig.dir}/tls`);
    let proxy: RunningProxy | null = null;
    const grants: string[] = [];
    try {
      proxy = await startProxy(rig, {
        label: "tls",
        tls: cert,
      });
      const origin = proxy.origin;
      const host = proxy.host;

      await t.step(
        "started with --allow-read of the two PEM files",
        async () => {
          assert.ok(origin.startsWith("https://"));
          assert.deepEqual(
            proxy!.permissions.filter((f) => f.startsWith("--allow-read")),
            [`--allow-read=${rig.az.azPath},${cert.certFile},${cert.keyFile}`],
          );
          const flags = proxy!.flags;
          assert.ok(
            flags.includes("--tls-cert") && flags.includes("--tls-key"),
          );
          const listening = (await proxy!.log()).split("\n").find((l) =>
            /msg=listening/.test(l)
          );
          assert.match(listening ?? "", /tls=true/);
        },
      );

      await t.step(
        "fetch: refused without the anchor, pulls with it",
        async () => {
          await assert.rejects(fetch(`${origin}/v2/`));
          const client = Deno.createHttpClient({ caCerts: [cert.certPem] });
          try {
            const res = await fetch(`${origin}/v2/`, { client });
            await res.body?.cancel();
            const realm = parseChallenge(res.headers.get("www-authenticate"))
              ?.params.realm;
            assert.equal(realm, `${origin}/token`, "realm stays on https");
            const registry = new RegistryClient({ origin, client });
            const got = await registry.pull(busybox.name, busybox.tag);
            assert.equal(got.topDigest, busybox.digest);
            assert.equal(got.manifestDigest, busybox.amd64.digest);
            assert.deepEqual(
              got.layers.map((l) => l.actual),
              busybox.amd64.layers.map((l) => l.digest),
            );
            grants.push(...registry.received);
          } finally {
            client.close();
          }
        },
      );

      const skopeo = await Skopeo.create(`${rig.dir}/skopeo`);
      await t.step(
        "skopeo: --src-tls-verify=true fails without --src-cert-dir, works with it",
        async () => {
          const source = `docker://${host}/library/busybox:1.36`;
          const bad = await skopeo.copy(source, `${rig.dir}/skopeo/bad`, {
            insecure: false,
            verifyTls: true,
          });
          assert.notEqual(bad.code, 0);
          assert.match(bad.stderr, UNTRUSTED, bad.stderr);
          const out = `${rig.dir}/skopeo/plain`;
          const ok = await skopeo.copy(source, out, {
            insecure: false,
            verifyTls: true,
            certDir: cert.certDir,
          });
          assert.equal(ok.code, 0, ok.stderr);
          await assertCopyHasManifest(out, busybox.amd64);
        },
      );

      await t.step(
        "skopeo: docker.io mirror without insecure, trusted through --src-cert-dir",
        async () => {
          const conf = await skopeo.conf("tls", {
            "docker.io": { host, insecure: false },
          });
          const text = await Deno.readTextFile(conf);
          assert.doesNotMatch(text, /insecure/);
          const source = "docker://docker.io/someorg/tool:1.0";
          const bad = await skopeo.copy(source, `${rig.dir}/skopeo/bad2`, {
            registriesConf: conf,
            insecure: false,
          });
          assert.notEqual(bad.code, 0);
          assert.match(bad.stderr, UNTRUSTED, bad.stderr);
          const out = `${rig.dir}/skopeo/mirror`;
          const ok = await skopeo.copy(source, out, {
            registriesConf: conf,
            insecure: false,
            certDir: cert.certDir,
          });
          assert.equal(ok.code, 0, ok.stderr);
          await assertCopyHasManifest(out, tool.amd64);
        },
      );

      await t.step(
        "podman: docker.io mirror without insecure, --cert-dir",
        async () => {
          const podman = await Podman.create(`${rig.dir}/pt`, {
            "docker.io": { host, insecure: false },
          });
          const ref = "docker.io/library/busybox:1.36";
          const ok = await podman.pull(ref, { certDir: cert.certDir });
          assert.equal(ok.code, 0, ok.stderr);
          assertStoredImage(
            await podman.inspect(ref),
            busybox.amd64,
            busybox.digest,
          );
        },
      );

      await t.step(
        "ctr: https host with `ca` in hosts.toml; refused without it",
        async () => {
          const ctrd = await Containerd.start(`${rig.dir}/ctrd`);
          try {
            const untrusted = await ctrd.hostsDir("hosts-untrusted", {
              "docker.io": { url: origin },
            });
            const ref = "docker.io/library/busybox:1.36";
            const bad = await ctrd.pull(ref, untrusted);
            assert.notEqual(bad.code, 0);
            assert.match(bad.stderr, UNTRUSTED, bad.stderr);
            const trusted = await ctrd.hostsDir("hosts", {
              "docker.io": { url: origin, ca: cert.certFile },
            });
            const ok = await ctrd.pull(ref, trusted);
            assert.equal(ok.code, 0, ok.stderr);
            await assertCtrImage(ctrd, ref, busybox, busybox.digest);
          } finally {
            await ctrd.stop();
          }
        },
      );

      await t.step("proxy log: challenge flow, no 5xx, no leaks", async () => {
        await assertModeSeen(proxy!);
        await assertCleanLog(proxy!, rig, grants);
      });
    } finally {
      await proxy?.stop();
      await rig.stop();
    }
  },
);
