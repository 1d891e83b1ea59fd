/**
 * A minimal registry pull client on `fetch`: answers the Bearer challenge
 * (anonymously or with Basic credentials), resolves a tag or digest to a
 * linux/amd64 manifest, downloads config and layers following redirects
 * (fetch drops Authorization across origins, like real clients) and
 * hashes everything.
 *
 * @module
 */

import { sha256Digest, sha256Stream } from "./tar.ts";

/** Accept header sent for manifests (what skopeo sends). */
export const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.index.v1+json",
].join(", ");

const INDEX_TYPES = new Set([
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.index.v1+json",
]);

/** Parsed `WWW-Authenticate: Bearer k="v",...`. */
export interface Challenge {
  /** Scheme, lower case. */
  scheme: string;
  /** Parameters (keys lower case). */
  params: Record<string, string>;
}

/**
 * Parses a single-challenge `WWW-Authenticate` header value.
 *
 * @param header header value
 * @returns scheme and parameters, or null
 */
export function parseChallenge(header: string | null): Challenge | null {
  if (!header) return null;
  const m = header.match(/^\s*(\S+)\s*(.*)$/);
  if (!m) return null;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  for (const p of m[2]!.matchAll(re)) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined
      ? p[2].replace(/\\(.)/g, "$1")
      : p[3]!;
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

/** Options for {@linkcode RegistryClient}. */
export interface ClientOptions {
  /** Registry origin, e.g. the proxy's `http://127.0.0.1:<port>`. */
  origin: string;
  /** Basic credentials for the token endpoint (else anonymous). */
  basic?: { user: string; password: string };
  /** Query string appended to every registry request (e.g. `ns=docker.io`). */
  query?: string;
  /** HTTP client for the registry and its realm (e.g. trusting a CA). */
  client?: Deno.HttpClient;
}

/** Result of a fetch with the token dance done. */
export interface RegistryResponse {
  /** The final response (body unread). */
  res: Response;
  /** Whether a token was fetched for this request. */
  fetchedToken: boolean;
}

/** A downloaded blob. */
export interface PulledBlob {
  /** Digest asked for. */
  digest: string;
  /** Digest of the bytes received. */
  actual: string;
  /** Bytes received. */
  size: number;
}

/** A pulled image. */
export interface PulledImage {
  /** Digest of what the reference resolved to (index or manifest). */
  topDigest: string;
  /** Media type of it. */
  topMediaType: string;
  /** Platform manifest digest. */
  manifestDigest: string;
  /** Platform manifest media type. */
  manifestMediaType: string;
  /** Config blob. */
  config: PulledBlob;
  /** Layer blobs in order. */
  layers: PulledBlob[];
}

/** Minimal pull-only registry client with a per-scope token cache. */
export class RegistryClient {
  readonly #opts: ClientOptions;
  readonly #tokens = new Map<string, string>();
  /** Every token received from a realm, oldest first. */
  readonly received: string[] = [];
  /** How many requests were answered with a challenge. */
  challenges = 0;

  /**
   * @param options origin and credentials
   */
  constructor(options: ClientOptions) {
    this.#opts = options;
  }

  /** Drops cached tokens. */
  forgetTokens(): void {
    this.#tokens.clear();
  }

  /**
   * Fetches a token for a challenge from its realm.
   *
   * @param challenge parsed Bearer challenge
   * @returns the token
   */
  async token(challenge: Challenge): Promise<string> {
    const realm = new URL(challenge.params.realm!);
    if (challenge.params.service) {
      realm.searchParams.set("service", challenge.params.service);
    }
    if (challenge.params.scope) {
      for (const s of challenge.params.scope.split(" ")) {
        realm.searchParams.append("scope", s);
      }
    }
    const headers: Record<string, string> = {};
    if (this.#opts.basic) {
      headers.authorization = "Basic " +
        btoa(`${this.#opts.basic.user}:${this.#opts.basic.password}`);
    }
    const res = await this.#fetch(realm, { headers });
    const text = await res.text();
    if (res.status !== 200) {
      throw new Error(
        `token endpoint ${realm} answered ${res.status}: ${text}`,
      );
    }
    const body = JSON.parse(text);
    const token = body.token ?? body.access_token;
    if (typeof token !== "string") throw new Error(`no token in ${text}`);
    this.received.push(token);
    return token;
  }

  /**
   * GET/HEAD a registry path, answering a Bearer challenge once.
   *
   * @param path path starting with `/v2/`
   * @param init method and headers
   * @returns the response and whether a token was fetched
   */
  async request(
    path: string,
    init: RequestInit = {},
  ): Promise<RegistryResponse> {
    const url = this.#opts.origin + path +
      (this.#opts.query
        ? (path.includes("?") ? "&" : "?") + this.#opts.query
        : "");
    const scopeKey =
      path.match(/^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\//)?.[1] ??
        "";
    const send = (token: string | undefined): Promise<Response> => {
      const headers = new Headers(init.headers);
      if (token) headers.set("authorization", `Bearer ${token}`);
      return this.#fetch(url, { ...init, headers });
    };
    let res = await send(this.#tokens.get(scopeKey));
    if (res.status !== 401) return { res, fetchedToken: false };
    this.challenges++;
    const challenge = parseChallenge(res.headers.get("www-authenticate"));
    await res.body?.cancel();
    if (
      !challenge || challenge.scheme !== "bearer" || !challenge.params.realm
    ) {
      return { res, fetchedToken: false };
    }
    const token = await this.token(challenge);
    this.#tokens.set(scopeKey, token);
    res = await send(token);
    return { res, fetchedToken: true };
  }

  #fetch(input: string | URL, init: RequestInit): Promise<Response> {
    const client = this.#opts.client;
    return client ? fetch(input, { ...init, client }) : fetch(input, init);
  }

  /**
   * Fetches a manifest and checks its digest.
   *
   * @param name repository name
   * @param reference tag or digest
   * @returns digest, media type and parsed body
   */
  async manifest(
    name: string,
    reference: string,
  ): Promise<
    { digest: string; mediaType: string; body: Record<string, unknown> }
  > {
    const { res } = await this.request(`/v2/${name}/manifests/${reference}`, {
      headers: { accept: MANIFEST_ACCEPT },
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (res.status !== 200) {
      throw new Error(
        `GET manifest ${name}:${reference} -> ${res.status} ${
          new TextDecoder().decode(bytes)
        }`,
      );
    }
    const digest = sha256Digest(bytes);
    const header = res.headers.get("docker-content-digest");
    if (header !== null && header !== digest) {
      throw new Error(
        `manifest digest header ${header} but body hashes to ${digest}`,
      );
    }
    if (reference.startsWith("sha256:") && reference !== digest) {
      throw new Error(`asked for ${reference}, body hashes to ${digest}`);
    }
    const body = JSON.parse(new TextDecoder().decode(bytes));
    const mediaType = body.mediaType ??
      res.headers.get("content-type")?.split(";")[0] ?? "";
    return { digest, mediaType, body };
  }

  /**
   * Downloads a blob (following redirects) and hashes it.
   *
   * @param name repository name
   * @param digest blob digest
   * @returns what arrived
   */
  async blob(name: string, digest: string): Promise<PulledBlob> {
    const { res } = await this.request(`/v2/${name}/blobs/${digest}`);
    if (res.status !== 200) {
      const text = await res.text();
      throw new Error(`GET blob ${name}@${digest} -> ${res.status} ${text}`);
    }
    const { digest: actual, size } = await sha256Stream(res.body!);
    return { digest, actual, size };
  }

  /**
   * Pulls an image for linux/amd64: manifest (via the index if any),
   * config and layers.
   *
   * @param name repository name
   * @param reference tag or digest
   * @returns digests of everything received
   */
  async pull(name: string, reference: string): Promise<PulledImage> {
    const top = await this.manifest(name, reference);
    let m = top;
    if (INDEX_TYPES.has(top.mediaType)) {
      const list = top.body.manifests as {
        digest: string;
        platform?: { os?: string; architecture?: string };
      }[];
      const pick = list.find((d) =>
        d.platform?.os === "linux" && d.platform?.architecture === "amd64"
      );
      if (!pick) throw new Error(`no linux/amd64 entry in ${top.digest}`);
      m = await this.manifest(name, pick.digest);
    }
    const config = await this.blob(
      name,
      (m.body.config as { digest: string }).digest,
    );
    const layers: PulledBlob[] = [];
    for (const l of m.body.layers as { digest: string }[]) {
      layers.push(await this.blob(name, l.digest));
    }
    return {
      topDigest: top.digest,
      topMediaType: top.mediaType,
      manifestDigest: m.digest,
      manifestMediaType: m.mediaType,
      config,
      layers,
    };
  }
}
