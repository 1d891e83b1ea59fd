/**
 * Protocol edges through the proxy against the real registry, in both
 * auth modes, checked by comparing what the proxy answers with what the
 * fake ACR answers directly for the same request (names rewritten):
 * HEAD on manifests and blobs, Range on the storage redirect target and
 * on inline blobs, Accept negotiation for an OCI index and a Docker
 * manifest list, the referrers API, tag list paging with its `Link`, and
 * `X-Forwarded-*` honoured only with `--trust-forwarded`. No client
 * tools: runs outside a network namespace too.
 */

import assert from "node:assert/strict";
import { parseChallenge, RegistryClient } from "./rig/fetch_client.ts";
import { gatedTest } from "./rig/gate.ts";
import { type Descriptor, MediaType } from "./rig/images.ts";
import { AUTH_MODES, type RunningProxy } from "./rig/proxy.ts";
import type { Rig } from "./rig/rig.ts";
import {
  assertCleanLog,
  loggedRequests,
  startModeSession,
} from "./rig/session.ts";

const LIST = MediaType.dockerList;
const INDEX = MediaType.ociIndex;
const SCHEMA1_SIGNED =
  "application/vnd.docker.distribution.manifest.v1+prettyjws";

/** An answer reduced to what a client relies on. */
interface Answer {
  status: number;
  type: string | null;
  digest: string | null;
  length: string | null;
  body: Uint8Array;
}

async function answer(res: Response): Promise<Answer> {
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    digest: res.headers.get("docker-content-digest"),
    length: res.headers.get("content-length"),
    body: new Uint8Array(await res.arrayBuffer()),
  };
}

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/**
 * Requests the fake ACR directly with an access token for every hub
 * repository, as the upstream answers the proxy.
 */
class Upstream {
  readonly #rig: Rig;
  #token: Promise<string> | undefined;

  constructor(rig: Rig) {
    this.#rig = rig;
  }

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    this.#token ??= this.#rig.acr.mintAccessToken(
      this.#rig.images.all().map((i) =>
        `repository:${i.prefix}/${i.name}:pull`
      ),
    );
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${await this.#token}`);
    return await fetch(
      `${this.#rig.acr.origin}${path.replace(/^\/v2\//, "/v2/hub/")}`,
      { redirect: "manual", ...init, headers },
    );
  }
}

/**
 * Asserts the proxy's answer is the upstream's: same status, type,
 * digest; same bytes (error bodies with `hub/` names turned into client
 * names).
 */
function assertSameAnswer(got: Answer, want: Answer, what: string): void {
  assert.equal(got.status, want.status, `${what}: status`);
  assert.equal(got.type, want.type, `${what}: content-type`);
  assert.equal(got.digest, want.digest, `${what}: docker-content-digest`);
  if (want.type === SCHEMA1_SIGNED) {
    // signed anew on every request: compare the signed payload
    const payload = (b: Uint8Array): unknown => {
      const { signatures: _, ...rest } = JSON.parse(text(b));
      return rest;
    };
    assert.deepEqual(payload(got.body), payload(want.body), what);
  } else if (want.status < 400) {
    assert.equal(got.length, want.length, `${what}: content-length`);
    assert.deepEqual(got.body, want.body, `${what}: body bytes`);
  } else {
    assert.equal(
      text(got.body),
      text(want.body).replaceAll('"hub/', '"'),
      `${what}: error body`,
    );
  }
}

gatedTest(
  "protocol edges through the proxy in both auth modes",
  {},
  async (t) => {
    const s = await startModeSession();
    const { rig } = s;
    const { busybox, debian, tool, alpine } = rig.images;
    const upstream = new Upstream(rig);
    const grants: string[] = [];
    const layer: Descriptor = busybox.amd64.layers[2]!;
    const whole = await Deno.readFile(rig.images.blobPath(layer.digest));
    try {
      for (const mode of AUTH_MODES) {
        const proxy = s.proxies[mode];
        const client = new RegistryClient({ origin: proxy.origin });
        const via = async (
          path: string,
          init: RequestInit = {},
        ): Promise<Answer> => answer((await client.request(path, init)).res);
        const direct = async (
          path: string,
          init: RequestInit = {},
        ): Promise<Answer> => answer(await upstream.request(path, init));

        await t.step(
          `${mode}: HEAD manifests keeps digest and length`,
          async () => {
            const cases: [string, Descriptor][] = [
              ["/v2/library/busybox/manifests/1.36", busybox],
              [
                `/v2/library/busybox/manifests/${busybox.amd64.digest}`,
                busybox.amd64,
              ],
              ["/v2/library/debian/manifests/12", debian],
              ["/v2/library/alpine/manifests/3.19", alpine],
            ];
            for (const [path, want] of cases) {
              const accept = { accept: `${want.mediaType}` };
              const got = await via(path, { method: "HEAD", headers: accept });
              assert.equal(got.status, 200, path);
              assert.equal(got.digest, want.digest, path);
              assert.equal(got.length, String(want.size), path);
              assert.equal(got.type, want.mediaType, path);
              assert.equal(got.body.length, 0, "HEAD has no body");
              const up = await direct(path, {
                method: "HEAD",
                headers: accept,
              });
              assertSameAnswer(got, up, `HEAD ${path}`);
            }
          },
        );

        await t.step(
          `${mode}: HEAD blobs keeps digest and length`,
          async () => {
            for (
              const blob of [layer, busybox.amd64.config, tool.amd64.layers[0]!]
            ) {
              const name = blob === tool.amd64.layers[0]
                ? tool.name
                : busybox.name;
              const path = `/v2/${name}/blobs/${blob.digest}`;
              const got = await via(path, { method: "HEAD" });
              assert.equal(got.status, 200, path);
              assert.equal(got.digest, blob.digest, path);
              assert.equal(got.length, String(blob.size), path);
              assert.equal(got.body.length, 0);
              assertSameAnswer(
                got,
                await direct(path, { method: "HEAD" }),
                path,
              );
            }
            const missing = `/v2/library/busybox/blobs/sha256:${
              "0".repeat(64)
            }`;
            const got = await via(missing, { method: "HEAD" });
            assert.equal(got.status, 404);
            assert.equal(got.body.length, 0);
          },
        );

        await t.step(
          `${mode}: Range on the storage redirect target: 206, right bytes`,
          async () => {
            const path = `/v2/library/busybox/blobs/${layer.digest}`;
            const range = { range: "bytes=10-19" };
            const { res } = await client.request(path, {
              headers: range,
              redirect: "manual",
            });
            await res.body?.cancel();
            assert.equal(res.status, 307);
            const location = res.headers.get("location")!;
            assert.ok(
              location.startsWith(`${rig.acr.storageOrigin}/`),
              `Location ${location} is not the storage URL`,
            );
            assert.match(location, /[?&]sig=/, "signed URL passed untouched");
            const part = await fetch(location, { headers: range });
            assert.equal(part.status, 206);
            assert.equal(
              part.headers.get("content-range"),
              `bytes 10-19/${layer.size}`,
            );
            assert.deepEqual(
              new Uint8Array(await part.arrayBuffer()),
              whole.subarray(10, 20),
            );
            // a client following the redirect keeps its Range header
            const followed = await client.request(path, {
              headers: { range: "bytes=-7" },
            });
            assert.equal(followed.res.status, 206);
            assert.deepEqual(
              new Uint8Array(await followed.res.arrayBuffer()),
              whole.subarray(whole.length - 7),
            );
            assert.equal(
              rig.acr.count({ endpoint: "storage", auth: "bearer" }),
              0,
            );
          },
        );

        await t.step(
          `${mode}: Range on an inline blob: 206 from the proxy`,
          async () => {
            rig.acr.settings.redirectBlobs = false;
            try {
              const path = `/v2/library/busybox/blobs/${layer.digest}`;
              for (
                const [range, from, to] of [
                  ["bytes=10-19", 10, 20],
                  ["bytes=20000-", 20000, layer.size],
                  ["bytes=-5", layer.size - 5, layer.size],
                ] as const
              ) {
                const got = await via(path, { headers: { range } });
                assert.equal(got.status, 206, range);
                assert.deepEqual(got.body, whole.subarray(from, to), range);
                assert.equal(got.length, String(to - from), range);
                const up = await upstream.request(path, { headers: { range } });
                assert.equal(up.status, 206, `upstream ${range}`);
                assert.equal(
                  (await client.request(path, { headers: { range } })).res
                    .headers.get("content-range"),
                  up.headers.get("content-range"),
                );
                await up.body?.cancel();
              }
              const full = await via(path);
              assert.equal(full.status, 200);
              assert.deepEqual(full.body, whole);
            } finally {
              rig.acr.settings.redirectBlobs = true;
            }
          },
        );

        await t.step(
          `${mode}: unsatisfiable Range on an inline blob`,
          async () => {
            rig.acr.settings.redirectBlobs = false;
            try {
              const path = `/v2/library/busybox/blobs/${layer.digest}`;
              const range = `bytes=${layer.size}-`;
              const up = await upstream.request(path, { headers: { range } });
              assert.equal(up.status, 416);
              const upBody = await up.text().catch(() => undefined);
              const { res } = await client.request(path, {
                headers: { range },
              });
              const got = await res.text();
              if (upBody !== undefined) {
                assert.equal(res.status, 416, got);
                return;
              }
              // distribution 2.8 (Go 1.19 ServeContent) answers 416 with
              // the blob's Content-Length and a short body; the proxy keeps
              // the status (what a resuming client acts on) and replaces
              // the broken body with a registry error of its own.
              assert.equal(res.status, 416, got);
              assert.equal(JSON.parse(got).errors[0].code, "UNKNOWN");
            } finally {
              rig.acr.settings.redirectBlobs = true;
            }
          },
        );

        await t.step(
          `${mode}: Accept on an OCI index and a Docker list`,
          async () => {
            const skopeoAccept = [
              MediaType.ociManifest,
              MediaType.dockerManifest,
              LIST,
              INDEX,
            ].join(", ");
            // what distribution 2.8 answers; the proxy must answer the same
            const table: [string, string | undefined, number, string][] = [
              [
                "/v2/library/busybox/manifests/1.36",
                INDEX,
                200,
                busybox.digest,
              ],
              [
                "/v2/library/busybox/manifests/1.36",
                `${LIST}, ${INDEX}`,
                200,
                busybox.digest,
              ],
              [
                "/v2/library/busybox/manifests/1.36",
                skopeoAccept,
                200,
                busybox.digest,
              ],
              ["/v2/library/busybox/manifests/1.36", LIST, 404, ""],
              ["/v2/library/busybox/manifests/1.36", undefined, 404, ""],
              ["/v2/library/debian/manifests/12", LIST, 200, debian.digest],
              [
                "/v2/library/debian/manifests/12",
                `${INDEX}, ${LIST}`,
                200,
                debian.digest,
              ],
              [
                "/v2/library/debian/manifests/12",
                skopeoAccept,
                200,
                debian.digest,
              ],
              [
                "/v2/library/debian/manifests/12",
                `${INDEX}, ${MediaType.dockerManifest}`,
                200,
                debian.amd64.digest,
              ],
              // 2.8 rewrites a list to a signed schema 1 manifest when no
              // Docker type is accepted; it names the upstream repository
              // inside the signed body, which the proxy cannot rewrite
              ["/v2/library/debian/manifests/12", INDEX, 200, "schema1"],
            ];
            for (const [path, accept, status, digest] of table) {
              const headers: Record<string, string> = accept ? { accept } : {};
              const what = `${path} Accept ${accept ?? "(none)"}`;
              const got = await via(path, { headers });
              assertSameAnswer(got, await direct(path, { headers }), what);
              assert.equal(got.status, status, what);
              if (digest === "schema1") {
                assert.equal(got.type, SCHEMA1_SIGNED, what);
              } else if (digest) {
                assert.equal(got.digest, digest, what);
              } else {
                assert.match(text(got.body), /MANIFEST_UNKNOWN/, what);
              }
              const head = await via(path, { method: "HEAD", headers });
              assert.equal(head.status, got.status, `HEAD ${what}`);
              assert.equal(head.digest, got.digest, `HEAD ${what}`);
            }
          },
        );

        await t.step(
          `${mode}: referrers: the registry's answer, faithfully`,
          async () => {
            for (
              const query of ["", "?artifactType=application/vnd.example+json"]
            ) {
              const path =
                `/v2/library/busybox/referrers/${busybox.digest}${query}`;
              const got = await via(path);
              const up = await direct(path);
              // distribution 2.8 has no referrers API: a plain-text 404
              assert.equal(up.status, 404, text(up.body));
              assertSameAnswer(got, up, path);
            }
            const lines = loggedRequests(await proxy.log()).filter((l) =>
              l.kind === "referrers"
            );
            assert.ok(lines.some((l) => l.status === 404));
          },
        );

        await t.step(
          `${mode}: tag list paging with n/last and a rewritten Link`,
          async () => {
            const all = [tool.tag, ...tool.extraTags].sort();
            const first = await client.request("/v2/someorg/tool/tags/list");
            assert.equal(first.res.status, 200);
            assert.deepEqual((await first.res.json()).tags, all);
            const seen: string[] = [];
            let next: string | null = "/v2/someorg/tool/tags/list?n=2";
            const links: string[] = [];
            for (let page = 0; next && page < 10; page++) {
              const { res } = await client.request(next);
              assert.equal(res.status, 200, next);
              seen.push(...(await res.json()).tags);
              const link = res.headers.get("link");
              next = null;
              if (link) {
                links.push(link);
                const m = link.match(/^<([^>]+)>;\s*rel="next"$/);
                assert.ok(m, `Link ${link}`);
                next = m[1]!;
              }
            }
            assert.deepEqual(seen, all, "pages add up to the whole list");
            assert.deepEqual(links, [
              '</v2/someorg/tool/tags/list?last=1.1&n=2&orderby=>; rel="next"',
              '</v2/someorg/tool/tags/list?last=2.0&n=2&orderby=>; rel="next"',
            ]);
            const ns = await client.request(
              "/v2/someorg/tool/tags/list?n=3&ns=docker.io",
            );
            await ns.res.body?.cancel();
            assert.equal(
              ns.res.headers.get("link"),
              '</v2/someorg/tool/tags/list?last=1.2&n=3&orderby=&ns=docker.io>; rel="next"',
            );
            const none = await client.request("/v2/someorg/tool/tags/list?n=0");
            assert.deepEqual((await none.res.json()).tags, []);
            assert.equal(none.res.headers.get("link"), null);
            const bad = await client.request("/v2/someorg/tool/tags/list?n=x");
            assert.equal(bad.res.status, 400);
            assert.match(await bad.res.text(), /PAGINATION_NUMBER_INVALID/);
          },
        );

        await t.step(
          `${mode}: tag list body names the client-side repository`,
          async () => {
            const { res } = await client.request("/v2/someorg/tool/tags/list");
            const body = await res.json();
            assert.equal(
              body.name,
              "someorg/tool",
              "GET /v2/someorg/tool/tags/list through the proxy answers " +
                `${
                  JSON.stringify(body)
                }: the upstream name (hub/...) reaches ` +
                "the client; the proxy rewrites error bodies, Link and " +
                "challenges but not the `name` of a 200 tag list",
            );
          },
        );
        grants.push(...client.received);
      }

      const trusted = await s.add({
        mode: "challenge",
        label: "trust-forwarded",
        args: ["--trust-forwarded"],
      });

      await t.step(
        "X-Forwarded-Proto/Host: ignored by default, honoured with --trust-forwarded",
        async () => {
          const forwarded = {
            "x-forwarded-proto": "https",
            "x-forwarded-host": "mirror.example:8443",
          };
          const realm = async (
            proxy: RunningProxy,
            path: string,
            headers: Record<string, string>,
          ): Promise<string | undefined> => {
            const res = await fetch(`${proxy.origin}${path}`, { headers });
            await res.body?.cancel();
            assert.equal(res.status, 401, path);
            return parseChallenge(res.headers.get("www-authenticate"))?.params
              .realm;
          };
          for (const path of ["/v2/", "/v2/library/busybox/manifests/1.36"]) {
            const plain = s.proxies.challenge;
            assert.equal(
              await realm(plain, path, forwarded),
              `${plain.origin}/token`,
              `without --trust-forwarded ${path}`,
            );
            assert.equal(
              await realm(trusted, path, forwarded),
              "https://mirror.example:8443/token",
              `with --trust-forwarded ${path}`,
            );
            assert.equal(
              await realm(trusted, path, {}),
              `${trusted.origin}/token`,
              `with --trust-forwarded, no headers ${path}`,
            );
            assert.equal(
              await realm(trusted, path, { "x-forwarded-proto": "gopher" }),
              `${trusted.origin}/token`,
              `with --trust-forwarded, unknown proto ${path}`,
            );
          }
          // the forwarded host changes what clients are told, never where
          // the proxy goes: the pull still comes from the fake ACR
          // (the token comes from the proxy's own /token: the realm now
          // names mirror.example, which must not be contacted)
          const mark = rig.acr.requests.length;
          const tokenRes = await fetch(
            `${trusted.origin}/token?service=registry.docker.io&scope=repository:library/busybox:pull`,
          );
          const token = (await tokenRes.json()).token as string;
          grants.push(token);
          const got = await fetch(
            `${trusted.origin}/v2/library/busybox/manifests/1.36`,
            {
              headers: {
                ...forwarded,
                accept: INDEX,
                authorization: `Bearer ${token}`,
              },
            },
          );
          assert.equal(got.status, 200);
          assert.equal(
            got.headers.get("docker-content-digest"),
            busybox.digest,
          );
          await got.body?.cancel();
          assert.ok(
            rig.acr.requests.slice(mark).some((r) =>
              r.endpoint === "manifest" && r.status === 200
            ),
          );
        },
      );

      await t.step("proxy logs: no 5xx, no leaks", async () => {
        // the unsatisfiable Range step provokes an upstream error
        const provoked = (line: string): boolean =>
          /upstream_status=416/.test(line);
        for (const p of s.all()) {
          await assertCleanLog(p, rig, grants, provoked);
        }
      });
    } finally {
      await s.stop();
    }
  },
);
