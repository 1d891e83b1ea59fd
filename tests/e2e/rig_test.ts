/**
 * Self-tests of the e2e rig, without the proxy: the fake ACR token
 * service, its /v2 front and storage redirects, the fake Entra pieces,
 * and real clients pulling straight from the fake ACR.
 */

import assert from "node:assert/strict";
import { NULL_GUID } from "./rig/fake_acr.ts";
import { ACR_RESOURCE } from "./rig/fake_entra.ts";
import { parseChallenge, RegistryClient } from "./rig/fetch_client.ts";
import { gatedTest } from "./rig/gate.ts";
import { decodeJwt } from "./rig/jwt.ts";
import { run } from "./rig/proc.ts";
import { type Rig, startRig } from "./rig/rig.ts";
import { Skopeo } from "./rig/clients/skopeo.ts";
import { assertCopyHasImage, assertCopyHasManifest } from "./rig/verify.ts";

async function exchange(rig: Rig, entraToken: string): Promise<Response> {
  return await fetch(`${rig.acr.origin}/oauth2/exchange`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "access_token",
      service: rig.acr.service,
      tenant: rig.entra.tenant,
      access_token: entraToken,
    }),
  });
}

async function refreshToken(rig: Rig): Promise<string> {
  const { token } = await rig.entra.mint(ACR_RESOURCE);
  const res = await exchange(rig, token);
  assert.equal(res.status, 200);
  return (await res.json()).refresh_token;
}

async function accessToken(
  rig: Rig,
  rt: string,
  scopes: string[],
): Promise<Response> {
  const body = new URLSearchParams({
    grant_type: "refresh_token",
    service: rig.acr.service,
    refresh_token: rt,
  });
  for (const s of scopes) body.append("scope", s);
  return await fetch(`${rig.acr.origin}/oauth2/token`, {
    method: "POST",
    body,
  });
}

async function status(url: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(url, { redirect: "manual", ...init });
  await res.body?.cancel();
  return res;
}

gatedTest(
  "rig: fake ACR, storage and fake Entra behave like Azure",
  {},
  async (t) => {
    const rig = await startRig();
    const busybox = rig.images.busybox;
    const repo = `hub/${busybox.name}`;
    try {
      await t.step(
        "exchange accepts only tokens the fake Entra issued",
        async () => {
          const bad = await exchange(rig, "eyJhbGciOiJub25lIn0.e30.x");
          assert.equal(bad.status, 401);
          assert.ok((await bad.json()).errors[0].code);
          const rt = await refreshToken(rig);
          assert.equal(decodeJwt(rt)?.payload.grant_type, "refresh_token");
          const { token: old } = await rig.entra.mint(ACR_RESOURCE);
          rig.entra.revokeAll();
          const revoked = await exchange(rig, old);
          assert.equal(revoked.status, 401);
          await revoked.body?.cancel();
          await rig.az.refresh();
        },
      );

      await t.step(
        "token grants the intersection of asked and allowed",
        async () => {
          const rt = await refreshToken(rig);
          const res = await accessToken(rig, rt, [
            `repository:${repo}:pull,push`,
            "repository:hub/someorg/tool:pull repository:hub/library/alpine:delete",
          ]);
          assert.equal(res.status, 200);
          const access = decodeJwt((await res.json()).access_token)?.payload
            .access;
          assert.deepEqual(access, [
            { type: "repository", name: repo, actions: ["pull"] },
            { type: "repository", name: "hub/someorg/tool", actions: ["pull"] },
          ]);
          const last = rig.acr.find({ endpoint: "token" }).at(-1)!;
          assert.equal(last.scopes.length, 2);
        },
      );

      await t.step(
        "unknown or expired refresh token: 401 with challenge",
        async () => {
          const res = await accessToken(rig, "not-a-token", [
            `repository:${repo}:pull`,
          ]);
          assert.equal(res.status, 401);
          assert.equal(
            parseChallenge(res.headers.get("www-authenticate"))?.scheme,
            "bearer",
          );
          assert.equal((await res.json()).errors[0].code, "UNAUTHORIZED");
          const rt = await refreshToken(rig);
          rig.acr.invalidateRefreshTokens();
          const gone = await accessToken(rig, rt, [`repository:${repo}:pull`]);
          assert.equal(gone.status, 401);
          await gone.body?.cancel();
        },
      );

      await t.step(
        "GET token: null-GUID Basic works, anonymous only when on",
        async () => {
          const rt = await refreshToken(rig);
          const url = `${rig.acr.origin}/oauth2/token?service=${
            encodeURIComponent(rig.acr.service)
          }&scope=repository:${repo}:pull`;
          const basic = await fetch(url, {
            headers: { authorization: "Basic " + btoa(`${NULL_GUID}:${rt}`) },
          });
          assert.equal(basic.status, 200);
          await basic.body?.cancel();
          assert.equal((await status(url)).status, 401);
          rig.acr.settings.anonymous = true;
          assert.equal((await status(url)).status, 200);
          rig.acr.settings.anonymous = false;
          const wrongUser = await status(url, {
            headers: { authorization: "Basic " + btoa(`admin:${rt}`) },
          });
          assert.equal(wrongUser.status, 401);
        },
      );

      await t.step(
        "registry challenge points at the fake ACR realm",
        async () => {
          const res = await status(
            `${rig.acr.origin}/v2/${repo}/manifests/1.36`,
          );
          assert.equal(res.status, 401);
          const c = parseChallenge(res.headers.get("www-authenticate"))!;
          assert.equal(c.params.realm, `${rig.acr.origin}/oauth2/token`);
          assert.equal(c.params.service, rig.acr.service);
          assert.equal(c.params.scope, `repository:${repo}:pull`);
        },
      );

      await t.step(
        "invalidated or expired access tokens answer 401",
        async () => {
          const rt = await refreshToken(rig);
          const get = async (token: string): Promise<Response> =>
            await status(`${rig.acr.origin}/v2/${repo}/manifests/1.36`, {
              headers: {
                authorization: `Bearer ${token}`,
                accept: busybox.mediaType,
              },
            });
          const token =
            (await (await accessToken(rig, rt, [`repository:${repo}:pull`]))
              .json())
              .access_token;
          assert.equal((await get(token)).status, 200);
          rig.acr.invalidateAccessTokens();
          const stale = await get(token);
          assert.equal(stale.status, 401);
          assert.match(
            stale.headers.get("www-authenticate")!,
            /error="invalid_token"/,
          );
          rig.acr.settings.accessTokenTtlSeconds = -1;
          const expired = await rig.acr.mintAccessToken([
            `repository:${repo}:pull`,
          ]);
          assert.equal((await get(expired)).status, 401);
          rig.acr.settings.accessTokenTtlSeconds = 4500;
          const fresh = await rig.acr.mintAccessToken([
            `repository:${repo}:pull`,
          ]);
          assert.equal((await get(fresh)).status, 200);
        },
      );

      await t.step(
        "blob GET: 307 to signed storage URL; storage rules",
        async () => {
          const layer = busybox.amd64.layers[2]!;
          const blobUrl = `${rig.acr.origin}/v2/${repo}/blobs/${layer.digest}`;
          assert.equal((await status(blobUrl)).status, 401);
          const token = await rig.acr.mintAccessToken([
            `repository:${repo}:pull`,
          ]);
          const auth = { authorization: `Bearer ${token}` };
          const redirect = await status(blobUrl, { headers: auth });
          assert.equal(redirect.status, 307);
          const location = redirect.headers.get("location")!;
          assert.ok(location.startsWith(rig.acr.storageOrigin + "/"));
          const withAuth = await status(location, { headers: auth });
          assert.equal(withAuth.status, 400);
          const ok = await fetch(location);
          assert.equal(ok.status, 200);
          assert.equal((await ok.arrayBuffer()).byteLength, layer.size);
          const tampered = location.replace(/sig=.{4}/, "sig=AAAA");
          assert.equal((await status(tampered)).status, 403);
          const range = await fetch(location, {
            headers: { range: "bytes=10-19" },
          });
          assert.equal(range.status, 206);
          assert.equal(
            range.headers.get("content-range"),
            `bytes 10-19/${layer.size}`,
          );
          const part = new Uint8Array(await range.arrayBuffer());
          const whole = await Deno.readFile(rig.images.blobPath(layer.digest));
          assert.deepEqual(part, whole.subarray(10, 20));
          const suffix = await fetch(location, {
            headers: { range: "bytes=-5" },
          });
          assert.deepEqual(
            new Uint8Array(await suffix.arrayBuffer()),
            whole.subarray(whole.length - 5),
          );
          const beyond = await status(location, {
            headers: { range: `bytes=${layer.size}-` },
          });
          assert.equal(beyond.status, 416);
          rig.acr.settings.redirectTtlSeconds = -1;
          const old = await status(blobUrl, { headers: auth });
          rig.acr.settings.redirectTtlSeconds = 1200;
          assert.equal(
            (await status(old.headers.get("location")!)).status,
            403,
          );
          const missing = await status(
            `${rig.acr.origin}/v2/${repo}/blobs/sha256:${"0".repeat(64)}`,
            { headers: auth },
          );
          assert.equal(missing.status, 404);
        },
      );

      await t.step(
        "tag lists paged like ACR; blobs inline when redirects are off",
        async () => {
          const token = await rig.acr.mintAccessToken([
            "repository:hub/someorg/tool:pull",
            `repository:${repo}:pull`,
          ]);
          const auth = { authorization: `Bearer ${token}` };
          const tags = `${rig.acr.origin}/v2/hub/someorg/tool/tags/list`;
          const page = await fetch(`${tags}?n=2&last=1.0`, { headers: auth });
          assert.deepEqual((await page.json()).tags, ["1.1", "1.2"]);
          assert.equal(
            page.headers.get("link"),
            '</v2/hub/someorg/tool/tags/list?last=1.2&n=2&orderby=>; rel="next"',
          );
          const last = await fetch(`${tags}?n=2&last=2.0`, { headers: auth });
          assert.deepEqual((await last.json()).tags, ["latest"]);
          assert.equal(last.headers.get("link"), null);
          const layer = busybox.amd64.layers[0]!;
          const blobUrl = `${rig.acr.origin}/v2/${repo}/blobs/${layer.digest}`;
          const ranged = await status(blobUrl, {
            headers: { ...auth, range: "bytes=0-9" },
          });
          assert.equal(ranged.status, 307, "a Range GET is redirected too");
          rig.acr.settings.redirectBlobs = false;
          try {
            const inline = await fetch(blobUrl, {
              headers: auth,
              redirect: "manual",
            });
            assert.equal(inline.status, 200);
            assert.equal((await inline.arrayBuffer()).byteLength, layer.size);
          } finally {
            rig.acr.settings.redirectBlobs = true;
          }
          const secrets = rig.secrets();
          assert.ok(secrets.includes(token), "minted tokens are recorded");
          const sig = new URL(ranged.headers.get("location")!).searchParams
            .get("sig")!;
          assert.ok(secrets.includes(sig), "storage signatures are recorded");
        },
      );

      await t.step("request log counts per endpoint", () => {
        assert.ok(rig.acr.count({ endpoint: "exchange" }) >= 3);
        assert.ok(rig.acr.count({ endpoint: "storage", status: 403 }) >= 2);
        assert.ok(
          rig.acr.count({ endpoint: "blob", method: "GET", status: 307 }) >= 2,
        );
        assert.equal(
          rig.acr.count({ endpoint: "storage", auth: "bearer", status: 200 }),
          0,
        );
      });

      await t.step(
        "fake az prints a token only for get-access-token",
        async () => {
          const ok = await run(rig.az.azPath, [
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            ACR_RESOURCE,
          ]);
          assert.equal(ok.code, 0, ok.stderr);
          const out = JSON.parse(ok.stdout);
          assert.equal(typeof out.expires_on, "number");
          assert.equal(
            decodeJwt(out.accessToken)?.payload.tid,
            rig.entra.tenant,
          );
          assert.ok(await rig.entra.verify(out.accessToken));
          const other = await run(rig.az.azPath, ["acr", "login"]);
          assert.notEqual(other.code, 0);
          assert.match(other.stderr, /az login/);
          await rig.az.logout();
          const out2 = await run(rig.az.azPath, [
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            ACR_RESOURCE,
          ]);
          await rig.az.login();
          assert.notEqual(out2.code, 0);
          assert.match(out2.stderr, /Please run 'az login'/);
          assert.equal((await rig.az.calls()).length, 3);
        },
      );

      await t.step("fake managed identity endpoint", async () => {
        const url =
          `${rig.msi.endpoint}?api-version=2019-08-01&resource=${ACR_RESOURCE}`;
        const res = await fetch(url, {
          headers: { "x-identity-header": rig.msi.secret },
        });
        assert.equal(res.status, 200);
        const body = await res.json();
        assert.match(body.expires_on, /^\d+$/);
        assert.ok(await rig.entra.verify(body.access_token));
        assert.equal((await status(url)).status, 401);
      });

      await t.step(
        "fetch client pulls every image straight from the fake ACR",
        async () => {
          const client = new RegistryClient({
            origin: rig.acr.origin,
            basic: { user: NULL_GUID, password: await refreshToken(rig) },
          });
          for (const image of rig.images.all()) {
            const got = await client.pull(
              `${image.prefix}/${image.name}`,
              image.tag,
            );
            assert.equal(got.topDigest, image.digest);
            assert.equal(got.manifestDigest, image.amd64.digest);
            assert.equal(got.config.actual, image.amd64.config.digest);
            assert.deepEqual(
              got.layers.map((l) => [l.actual, l.size]),
              image.amd64.layers.map((l) => [l.digest, l.size]),
            );
          }
          assert.ok(
            rig.images.big.amd64.layers.some((l) => l.size >= 64 * 1024 * 1024),
          );
        },
      );
    } finally {
      await rig.stop();
    }
  },
);

gatedTest(
  "rig: skopeo pulls straight from the fake ACR",
  { isolated: true, tools: ["skopeo"] },
  async (t) => {
    const rig = await startRig();
    try {
      const skopeo = await Skopeo.create(`${rig.dir}/skopeo`);
      const host = rig.acr.origin.slice("http://".length);
      const rt = await refreshToken(rig);
      await t.step("with null-GUID creds, amd64 from the index", async () => {
        const out = `${rig.dir}/out-creds`;
        const r = await skopeo.copyWithAuth(
          `docker://${host}/hub/library/busybox:1.36`,
          out,
          { creds: `${NULL_GUID}:${rt}` },
        );
        assert.equal(r.code, 0, r.stderr);
        await assertCopyHasManifest(out, rig.images.busybox.amd64);
      });
      await t.step(
        "with a pre-minted token, --all keeps the index",
        async () => {
          const out = `${rig.dir}/out-token`;
          const token = await rig.acr.mintAccessToken([
            "repository:hub/library/busybox:pull",
          ]);
          const r = await skopeo.copyWithAuth(
            `docker://${host}/hub/library/busybox:1.36`,
            out,
            { token },
          );
          assert.equal(r.code, 0, r.stderr);
          await assertCopyHasManifest(out, rig.images.busybox.amd64);
          assert.ok(rig.acr.count({ endpoint: "storage", status: 200 }) > 0);
        },
      );
      await t.step("docker schema 2 image keeps its digest", async () => {
        const out = `${rig.dir}/out-alpine`;
        const r = await skopeo.copyWithAuth(
          `docker://${host}/hub/library/alpine:3.19`,
          out,
          { creds: `${NULL_GUID}:${rt}` },
        );
        assert.equal(r.code, 0, r.stderr);
        await assertCopyHasImage(out, rig.images.alpine);
      });
    } finally {
      await rig.stop();
    }
  },
);
