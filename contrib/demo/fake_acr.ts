/**
 * An in-memory stand-in for Azure Container Registry, for the demo and for
 * tests: ACR's token service (`/oauth2/exchange`, `/oauth2/token`), a small
 * registry serving manifests, tags and referrers, and blob downloads
 * answered with a `307` to a separate storage origin carrying a signed,
 * expiring query string, as ACR redirects to its data endpoints.
 *
 * Web-standard only: `handle` and `storage` are `Request -> Response`
 * functions that tests may call directly or serve on loopback.
 *
 * @module
 */

/** One request the fake saw. */
export interface SeenRequest {
  /** Which origin: `registry` or `storage`. */
  origin: "registry" | "storage";
  /** HTTP method. */
  method: string;
  /** Path and query. */
  path: string;
  /** Whether an Authorization header came along. */
  authorized: boolean;
  /** Scopes asked at `/oauth2/token`. */
  scopes?: string[];
}

/** Options for {@link FakeAcr}. */
export interface FakeAcrOptions {
  /** The service name (login server). Default `fakeacr.azurecr.io`. */
  service?: string;
  /** Answer `/v2/` with 200 and serve everything without tokens. */
  anonymous?: boolean;
  /** Which Entra tokens the exchange accepts. Default: any. */
  acceptEntraToken?: (token: string) => boolean;
  /** Access-token lifetime in seconds. Default 4500 (as ACR samples show). */
  accessTokenTtl?: number;
  /** Refresh-token lifetime in seconds. Default 10800 (three hours). */
  refreshTokenTtl?: number;
  /** Origin of the storage server; blobs are served inline when unset. */
  storageOrigin?: string;
  /** The clock in epoch milliseconds. */
  now?: () => number;
}

interface Manifest {
  body: Uint8Array<ArrayBuffer>;
  mediaType: string;
  digest: string;
}

const NULL_GUID = "00000000-0000-0000-0000-000000000000";
const enc = new TextEncoder();

/**
 * The fake registry and token service.
 *
 * @example
 * ```ts ignore
 * import { FakeAcr } from "./fake_acr.ts";
 * const acr = new FakeAcr();
 * const image = await acr.pushSampleImage("hub/library/hello", "latest");
 * Deno.serve({ hostname: "127.0.0.1", port: 5000 }, acr.handle);
 * ```
 */
export class FakeAcr {
  /** Every request seen, in order. */
  readonly seen: SeenRequest[] = [];
  /** Fails the next N `/oauth2/*` calls with this status (429, 503...). */
  failTokenCalls: { status: number; count: number } = { status: 0, count: 0 };
  #opts: Required<Omit<FakeAcrOptions, "storageOrigin">> & {
    storageOrigin?: string;
  };
  #key = crypto.getRandomValues(new Uint8Array(32));
  #hmac: Promise<CryptoKey>;
  #blobs = new Map<string, Uint8Array<ArrayBuffer>>();
  #manifests = new Map<string, Map<string, Manifest>>();
  #generation = 0;

  /** @param options Behaviour switches. */
  constructor(options: FakeAcrOptions = {}) {
    this.#opts = {
      service: options.service ?? "fakeacr.azurecr.io",
      anonymous: options.anonymous ?? false,
      acceptEntraToken: options.acceptEntraToken ?? (() => true),
      accessTokenTtl: options.accessTokenTtl ?? 4500,
      refreshTokenTtl: options.refreshTokenTtl ?? 10800,
      now: options.now ?? Date.now,
      ...(options.storageOrigin
        ? { storageOrigin: options.storageOrigin }
        : {}),
    };
    this.#hmac = crypto.subtle.importKey(
      "raw",
      this.#key,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    this.handle = this.handle.bind(this);
    this.storage = this.storage.bind(this);
  }

  /** The storage origin, when blobs redirect there. */
  get storageOrigin(): string | undefined {
    return this.#opts.storageOrigin;
  }

  /** Sets the storage origin once its server is listening. */
  set storageOrigin(origin: string) {
    this.#opts.storageOrigin = origin;
  }

  /** Makes every access and refresh token issued so far invalid. */
  revokeTokens(): void {
    this.#generation++;
  }

  /**
   * Stores a blob.
   *
   * @param bytes The content.
   * @returns Its digest.
   */
  async putBlob(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
    const digest = await sha256(bytes);
    this.#blobs.set(digest, bytes);
    return digest;
  }

  /**
   * Stores a manifest under a tag and its digest.
   *
   * @param repo The upstream repository name.
   * @param tag The tag.
   * @param body The manifest bytes.
   * @param mediaType Its media type.
   * @returns Its digest.
   */
  async putManifest(
    repo: string,
    tag: string,
    body: Uint8Array<ArrayBuffer>,
    mediaType: string,
  ): Promise<string> {
    const digest = await sha256(body);
    const refs = this.#manifests.get(repo) ?? new Map<string, Manifest>();
    refs.set(tag, { body, mediaType, digest });
    refs.set(digest, { body, mediaType, digest });
    this.#manifests.set(repo, refs);
    return digest;
  }

  /**
   * Builds and stores a small runnable-looking image: one gzip layer
   * holding `/hello.txt`, a config, and an OCI manifest.
   *
   * @param repo The upstream repository name.
   * @param tag The tag.
   * @param layerBytes Extra incompressible bytes in the layer, for size.
   * @returns The digests of the manifest and of its blobs.
   */
  async pushSampleImage(
    repo: string,
    tag: string,
    layerBytes = 0,
  ): Promise<{ manifest: string; config: string; layers: string[] }> {
    const files: Record<string, Uint8Array> = {
      "hello.txt": enc.encode(`hello from ${repo}:${tag}\n`),
    };
    if (layerBytes > 0) files["random.bin"] = seeded(layerBytes, repo.length);
    const tar = makeTar(files);
    const layer = await gzip(tar);
    const layerDigest = await this.putBlob(layer);
    const config = enc.encode(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/hello.txt"] },
      rootfs: { type: "layers", diff_ids: [await sha256(tar)] },
    }));
    const configDigest = await this.putBlob(config);
    const manifest = enc.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: configDigest,
        size: config.length,
      },
      layers: [{
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: layerDigest,
        size: layer.length,
      }],
    }));
    const digest = await this.putManifest(
      repo,
      tag,
      manifest,
      "application/vnd.oci.image.manifest.v1+json",
    );
    return { manifest: digest, config: configDigest, layers: [layerDigest] };
  }

  /**
   * Answers a request to the registry origin.
   *
   * @param req The request.
   * @returns The response.
   */
  async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const record: SeenRequest = {
      origin: "registry",
      method: req.method,
      path: url.pathname + url.search,
      authorized: req.headers.has("authorization"),
    };
    this.seen.push(record);
    const origin = url.origin;

    if (url.pathname.startsWith("/oauth2/")) {
      if (this.failTokenCalls.count > 0) {
        this.failTokenCalls.count--;
        return errors(
          this.failTokenCalls.status,
          "UNKNOWN",
          "injected failure",
        );
      }
      const form = req.method === "POST"
        ? new URLSearchParams(await req.text())
        : url.searchParams;
      if (url.pathname === "/oauth2/exchange" && req.method === "POST") {
        return await this.#exchange(form);
      }
      if (url.pathname === "/oauth2/token") {
        record.scopes = form.getAll("scope");
        return await this.#token(req, form);
      }
      return errors(404, "UNSUPPORTED", "unknown oauth2 endpoint");
    }

    if (req.method !== "GET" && req.method !== "HEAD") {
      return errors(405, "UNSUPPORTED", "the fake is read-only");
    }
    if (url.pathname === "/v2/" || url.pathname === "/v2") {
      if (this.#opts.anonymous) return new Response("{}");
      if (await this.#bearerAccess(req) === undefined) {
        return this.#challenge(origin);
      }
      return new Response("{}");
    }

    const m = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/(.+)$/.exec(
      url.pathname,
    );
    if (!m) return errors(404, "UNSUPPORTED", "unknown endpoint");
    const [, repo = "", kind, ref = ""] = m;

    if (!this.#opts.anonymous) {
      const access = await this.#bearerAccess(req);
      if (!access?.includes(repo)) {
        const res = this.#challenge(origin, repo, access !== undefined);
        return res;
      }
    }

    const head = req.method === "HEAD";
    if (kind === "manifests") {
      const found = this.#manifests.get(repo)?.get(ref);
      if (!found) {
        return errors(404, "MANIFEST_UNKNOWN", "manifest unknown", {
          Name: repo,
          Revision: ref,
        });
      }
      return new Response(head ? null : found.body, {
        headers: {
          "content-type": found.mediaType,
          "content-length": String(found.body.length),
          "docker-content-digest": found.digest,
        },
      });
    }
    if (kind === "blobs") {
      const blob = this.#blobs.get(ref);
      if (!blob) return errors(404, "BLOB_UNKNOWN", "blob unknown", ref);
      if (this.#opts.storageOrigin && !head) {
        const expires = Math.floor(this.#opts.now() / 1000) + 1200;
        const sig = await this.#sign(`${ref}:${expires}`);
        return new Response(null, {
          status: 307,
          headers: {
            location:
              `${this.#opts.storageOrigin}/blobs/${ref}/data?se=${expires}&sig=${sig}`,
            "docker-content-digest": ref,
          },
        });
      }
      return serveBytes(req, blob, ref);
    }
    if (kind === "tags" && ref === "list") {
      const tags = [...(this.#manifests.get(repo)?.keys() ?? [])]
        .filter((t) => !t.includes(":")).sort();
      if (!tags.length) {
        return errors(404, "NAME_UNKNOWN", "repository name not known", {
          Name: repo,
        });
      }
      const n = Number(url.searchParams.get("n") ?? tags.length);
      const last = url.searchParams.get("last");
      const from = last ? tags.filter((t) => t > last) : tags;
      const page = from.slice(0, n);
      const headers = new Headers({ "content-type": "application/json" });
      if (page.length < from.length && page.length > 0) {
        headers.set(
          "link",
          `</v2/${repo}/tags/list?last=${page.at(-1)}&n=${n}>; rel="next"`,
        );
      }
      return new Response(JSON.stringify({ name: repo, tags: page }), {
        headers,
      });
    }
    if (kind === "referrers") {
      return new Response(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: [],
        }),
        {
          headers: {
            "content-type": "application/vnd.oci.image.index.v1+json",
          },
        },
      );
    }
    return errors(404, "UNSUPPORTED", "unknown endpoint");
  }

  /**
   * Answers a request to the storage origin: a signed, unexpired URL and
   * no Authorization header, as Azure storage wants.
   *
   * @param req The request.
   * @returns The response.
   */
  async storage(req: Request): Promise<Response> {
    const url = new URL(req.url);
    this.seen.push({
      origin: "storage",
      method: req.method,
      path: url.pathname,
      authorized: req.headers.has("authorization"),
    });
    if (req.headers.has("authorization")) {
      return new Response(
        "authentication information is not given in the correct format",
        { status: 400 },
      );
    }
    const m = /^\/blobs\/([^/]+)\/data$/.exec(url.pathname);
    const expires = Number(url.searchParams.get("se"));
    const ref = m?.[1] ?? "";
    const valid = m && expires * 1000 > this.#opts.now() &&
      url.searchParams.get("sig") === await this.#sign(`${ref}:${expires}`);
    const blob = this.#blobs.get(ref);
    if (!valid || !blob) return new Response("forbidden", { status: 403 });
    return serveBytes(req, blob, ref);
  }

  async #exchange(form: URLSearchParams): Promise<Response> {
    const entra = form.get("access_token") ?? "";
    if (
      form.get("grant_type") !== "access_token" ||
      form.get("service") !== this.#opts.service ||
      !entra || !this.#opts.acceptEntraToken(entra)
    ) {
      return errors(401, "UNAUTHORIZED", "invalid Entra ID token");
    }
    const now = Math.floor(this.#opts.now() / 1000);
    const token = await this.#jwt({
      grant_type: "refresh_token",
      aud: this.#opts.service,
      exp: now + this.#opts.refreshTokenTtl,
      gen: this.#generation,
    });
    return Response.json({ refresh_token: token });
  }

  async #token(req: Request, form: URLSearchParams): Promise<Response> {
    let refresh = form.get("refresh_token");
    const basic = req.headers.get("authorization");
    if (!refresh && basic?.startsWith("Basic ")) {
      const [user, pass] = atob(basic.slice(6)).split(":");
      if (user === NULL_GUID) refresh = pass ?? null;
    }
    const claims = refresh ? await this.#verify(refresh) : undefined;
    if (!this.#opts.anonymous && claims?.grant_type !== "refresh_token") {
      return errors(401, "UNAUTHORIZED", "invalid refresh token");
    }
    const names: string[] = [];
    for (const scope of form.getAll("scope").flatMap((s) => s.split(" "))) {
      const [type, name, actions = ""] = scope.split(":");
      if (
        type === "repository" && name && actions.split(",").includes("pull")
      ) {
        names.push(name);
      }
    }
    const now = Math.floor(this.#opts.now() / 1000);
    const token = await this.#jwt({
      aud: this.#opts.service,
      exp: now + this.#opts.accessTokenTtl,
      gen: this.#generation,
      access: names.map((name) => ({
        type: "repository",
        name,
        actions: ["pull"],
      })),
    });
    return Response.json({ access_token: token });
  }

  async #bearerAccess(req: Request): Promise<string[] | undefined> {
    const auth = req.headers.get("authorization");
    if (!auth?.startsWith("Bearer ")) return undefined;
    const claims = await this.#verify(auth.slice(7));
    const access = claims?.access;
    if (!Array.isArray(access)) return undefined;
    return access.map((a: { name: string }) => a.name);
  }

  #challenge(origin: string, repo?: string, insufficient = false): Response {
    let value =
      `Bearer realm="${origin}/oauth2/token",service="${this.#opts.service}"`;
    if (repo) value += `,scope="repository:${repo}:pull"`;
    if (insufficient) value += `,error="insufficient_scope"`;
    return errors(
      401,
      "UNAUTHORIZED",
      "authentication required",
      repo ? [{ Type: "repository", Name: repo, Action: "pull" }] : undefined,
      { "www-authenticate": value },
    );
  }

  async #jwt(claims: Record<string, unknown>): Promise<string> {
    const head = b64url(enc.encode('{"alg":"HS256","typ":"JWT"}'));
    const body = b64url(enc.encode(JSON.stringify(claims)));
    return `${head}.${body}.${await this.#sign(`${head}.${body}`)}`;
  }

  async #verify(token: string): Promise<Record<string, unknown> | undefined> {
    const [head, body, sig] = token.split(".");
    if (!head || !body || !sig) return undefined;
    if (sig !== await this.#sign(`${head}.${body}`)) return undefined;
    const claims = JSON.parse(
      new TextDecoder().decode(
        Uint8Array.from(
          atob(body.replace(/-/g, "+").replace(/_/g, "/")),
          (c) => c.charCodeAt(0),
        ),
      ),
    );
    if (claims.exp * 1000 <= this.#opts.now()) return undefined;
    if (claims.gen !== this.#generation) return undefined;
    return claims;
  }

  async #sign(text: string): Promise<string> {
    const sig = await crypto.subtle.sign(
      "HMAC",
      await this.#hmac,
      enc.encode(text),
    );
    return b64url(new Uint8Array(sig));
  }
}

function serveBytes(
  req: Request,
  blob: Uint8Array<ArrayBuffer>,
  digest: string,
): Response {
  const headers = new Headers({
    "content-type": "application/octet-stream",
    "docker-content-digest": digest,
    "accept-ranges": "bytes",
  });
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.get("range") ?? "");
  let body = blob;
  let status = 200;
  if (range) {
    const start = Number(range[1]);
    const end = range[2]
      ? Math.min(Number(range[2]), blob.length - 1)
      : blob.length - 1;
    if (start > end) {
      headers.set("content-range", `bytes */${blob.length}`);
      return new Response(null, { status: 416, headers });
    }
    body = blob.subarray(start, end + 1);
    status = 206;
    headers.set("content-range", `bytes ${start}-${end}/${blob.length}`);
  }
  headers.set("content-length", String(body.length));
  return new Response(req.method === "HEAD" ? null : body, { status, headers });
}

function errors(
  status: number,
  code: string,
  message: string,
  detail?: unknown,
  headers: Record<string, string> = {},
): Response {
  return Response.json({ errors: [{ code, message, detail }] }, {
    status,
    headers,
  });
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", new Uint8Array(bytes));
  return "sha256:" +
    [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join(
      "",
    );
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([new Uint8Array(bytes)]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// A deterministic, incompressible filler (xorshift32).
function seeded(length: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

// A minimal POSIX ustar archive of regular files.
function makeTar(
  files: Record<string, Uint8Array>,
): Uint8Array<ArrayBuffer> {
  const blocks: Uint8Array[] = [];
  for (const [name, data] of Object.entries(files)) {
    const header = new Uint8Array(512);
    const put = (text: string, at: number): void =>
      header.set(enc.encode(text), at);
    put(name, 0);
    put("0000644\0", 100);
    put("0000000\0", 108);
    put("0000000\0", 116);
    put(data.length.toString(8).padStart(11, "0") + "\0", 124);
    put("00000000000\0", 136);
    put("        ", 148);
    put("0", 156);
    put("ustar\0", 257);
    put("00", 263);
    const sum = header.reduce((a, b) => a + b, 0);
    put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    blocks.push(
      header,
      data,
      new Uint8Array((512 - (data.length % 512)) % 512),
    );
  }
  blocks.push(new Uint8Array(1024));
  const size = blocks.reduce((a, b) => a + b.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
