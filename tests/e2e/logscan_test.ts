/**
 * "No credential leaks" in the logs: skopeo (plain and mirror), podman
 * and the fetch client pull through four proxies on one rig, both auth
 * modes in both log formats at `--log-level debug`; then every line each
 * proxy printed is scanned for JWTs, SAS queries, `Bearer`/`Basic`
 * values, proxy-issued tokens, every credential the fakes handed out,
 * and upstream (`hub/`, `ghcr/`) names outside the fields that document
 * the upstream. The scanner itself is tested on planted lines first.
 */

import assert from "node:assert/strict";
import { Podman } from "./rig/clients/podman.ts";
import { Skopeo } from "./rig/clients/skopeo.ts";
import { RegistryClient } from "./rig/fetch_client.ts";
import { gatedTest } from "./rig/gate.ts";
import { findLeaks, loggedRequests, parseLog } from "./rig/logscan.ts";
import {
  AUTH_MODES,
  type LogFormat,
  type RunningProxy,
  startProxy,
} from "./rig/proxy.ts";
import { startRig } from "./rig/rig.ts";
import { assertCleanLog, assertModeSeen } from "./rig/session.ts";
import { assertCopyHasManifest, assertStoredImage } from "./rig/verify.ts";

const FORMATS: readonly LogFormat[] = ["text", "json"];
const JWT =
  "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4IiwiYWNjZXNzIjpbXX0.c2lnbmF0dXJlLXBhcnQtb25l";
const OPTIONS = {
  secrets: ["refresh-token-value-0123456789abcdef"],
  prefixes: ["hub", "ghcr"],
};

Deno.test("leak scan: flags every forbidden shape, passes clean lines", () => {
  const planted = [
    `ts=t level=info msg=request error="token ${JWT}"`,
    JSON.stringify({ ts: "t", level: "info", msg: "x", token: JWT }),
    'ts=t level=info msg=request error="GET https://s/blob?sp=r&se=1&sig=abc"',
    'ts=t level=debug msg=x url="https://s/blob?se=2026-01-01"',
    `ts=t level=debug msg=x header="Bearer abcdefgh.ijkl"`,
    JSON.stringify({ msg: "x", authorization: "Basic YWJjOmRlZmdoaWpr" }),
    "ts=t level=info msg=x value=acp1.abcdefghijklmnop.sig",
    "ts=t level=info msg=x note=refresh-token-value-0123456789abcdef",
    "ts=t level=info msg=request kind=manifests name=hub/library/busybox",
    "ts=t level=info msg=request name=ghcr/org/app route=ghcr.io status=200",
    JSON.stringify({ msg: "request", name: "ghcr/org/app", status: 200 }),
    'ts=t level=warn msg=request error="upstream said hub/library/x"',
    "Uncaught Error: hub/library/busybox not found",
  ];
  for (const line of planted) {
    assert.equal(findLeaks(line, OPTIONS).length, 1, `not flagged: ${line}`);
  }
  const clean = [
    "ts=t level=info msg=starting upstream=http://127.0.0.1:5 " +
    'default_route="docker.io=hub" routes="ghcr.io=ghcr" auth_mode=challenge',
    JSON.stringify({
      msg: "starting",
      default_route: "docker.io=hub",
      routes: "ghcr.io=ghcr",
    }),
    "ts=t level=info msg=request method=GET kind=manifests " +
    "name=library/busybox route=docker.io status=200 upstream_status=200",
    JSON.stringify({ msg: "request", name: "org/app", route: "ghcr.io" }),
    // the client itself asked for ghcr/org/app on the Docker Hub route
    "ts=t level=info msg=request name=ghcr/org/app route=docker.io status=404",
    'ts=t level=info msg=x challenge="Bearer realm=\\"http://p/token\\""',
    "ts=t level=info msg=request name=someorg/github-hub/tool status=200",
  ];
  for (const line of clean) {
    assert.deepEqual(findLeaks(line, OPTIONS), [], line);
  }
});

gatedTest(
  "log scan: both auth modes, text and json, debug level, no leaks",
  { isolated: true, root: true, tools: ["skopeo", "podman"] },
  async (t) => {
    const rig = await startRig();
    const { busybox, tool } = rig.images;
    const proxies: RunningProxy[] = [];
    const grants: string[] = [];
    try {
      for (const mode of AUTH_MODES) {
        for (const logFormat of FORMATS) {
          proxies.push(
            await startProxy(rig, {
              mode,
              logFormat,
              logLevel: "debug",
              label: `${mode}-${logFormat}`,
            }),
          );
        }
      }
      const skopeo = await Skopeo.create(`${rig.dir}/skopeo`);

      for (const [i, proxy] of proxies.entries()) {
        const tag = `${proxy.mode} ${proxy.logFormat}`;
        await t.step(`${tag}: skopeo plain and as mirror`, async () => {
          const plain = `${rig.dir}/skopeo/plain-${i}`;
          const r = await skopeo.copy(
            `docker://${proxy.host}/library/busybox:1.36`,
            plain,
          );
          assert.equal(r.code, 0, r.stderr);
          await assertCopyHasManifest(plain, busybox.amd64);
          const conf = await skopeo.mirrorConf(proxy.host, `log-${i}`);
          const mirror = `${rig.dir}/skopeo/mirror-${i}`;
          const m = await skopeo.copy(
            "docker://docker.io/someorg/tool:1.0",
            mirror,
            { registriesConf: conf, insecure: false },
          );
          assert.equal(m.code, 0, m.stderr);
          await assertCopyHasManifest(mirror, tool.amd64);
        });

        await t.step(`${tag}: podman as mirror`, async () => {
          const podman = await Podman.create(`${rig.dir}/l${i}`, proxy.host);
          const ref = "docker.io/library/busybox:1.36";
          const r = await podman.pull(ref);
          assert.equal(r.code, 0, r.stderr);
          assertStoredImage(
            await podman.inspect(ref),
            busybox.amd64,
            busybox.digest,
          );
        });

        await t.step(`${tag}: fetch client`, async () => {
          const client = new RegistryClient({ origin: proxy.origin });
          const got = await client.pull(tool.name, tool.tag);
          assert.equal(got.topDigest, tool.digest);
          assert.deepEqual(
            got.layers.map((l) => l.actual),
            tool.amd64.layers.map((l) => l.digest),
          );
          const missing = await client.request(
            "/v2/library/doesnotexist/manifests/1.0",
          );
          assert.equal(missing.res.status, 404);
          await missing.res.body?.cancel();
          grants.push(...client.received);
        });

        await t.step(`${tag}: every line in the format asked for`, async () => {
          assert.ok(proxy.flags.join(" ").includes("--log-level debug"));
          const lines = parseLog(await proxy.log());
          const odd = lines.filter((l) => l.format !== proxy.logFormat);
          assert.deepEqual(
            odd.map((l) => l.raw),
            [],
            "lines in another format",
          );
          const requests = loggedRequests(await proxy.log());
          assert.ok(requests.length >= 20, `${requests.length} request lines`);
          assert.ok(requests.some((l) => l.name === "library/busybox"));
          await assertModeSeen(proxy);
        });
      }

      await t.step("every proxy log is clean", async () => {
        assert.ok(grants.length > 0, "challenge mode handed out tokens");
        assert.ok(rig.secrets().length > 10, "the fakes handed out tokens");
        for (const p of proxies) await assertCleanLog(p, rig, grants);
      });

      await t.step("the same scan flags a planted credential", async () => {
        const refreshToken = rig.acr.secrets()[0]!;
        const storageSig = rig.acr.secrets().find((s) => !s.includes("."))!;
        for (const p of proxies) {
          const log = await p.log();
          const options = {
            secrets: [...rig.secrets(), ...grants],
            prefixes: ["hub", "ghcr"],
          };
          assert.deepEqual(findLeaks(log, options), []);
          const base = log.split("\n").findLast((l) =>
            l.includes("library/busybox")
          )!;
          for (
            const plant of [
              refreshToken,
              refreshToken.split(".")[2]!,
              storageSig,
              grants[0]!,
              "hub/library/busybox",
            ]
          ) {
            const line = base.replace("library/busybox", plant);
            assert.ok(
              findLeaks(`${log}${line}\n`, options).length > 0,
              `scan missed ${plant.slice(0, 12)}... in ${line}`,
            );
          }
        }
      });
    } finally {
      await Promise.all(proxies.map((p) => p.stop()));
      await rig.stop();
    }
  },
);
