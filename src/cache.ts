/**
 * A bounded in-memory cache of content-addressed answers: manifests and
 * small blobs fetched by digest. What a digest names never changes, so an
 * entry is only stored after its bytes hash to that digest, and it is
 * served to later requests for the same repository, digest and `Accept`
 * without asking the upstream again. Entries expire after a time to live
 * so that content withdrawn upstream stops being served; the least
 * recently used go first when the byte budget is spent.
 *
 * @module
 */

/** One stored answer. */
export interface CachedAnswer {
  /** Response headers, as the client receives them. */
  readonly headers: readonly (readonly [string, string])[];
  /** The body; its digest was checked when it was stored. */
  readonly body: Uint8Array;
}

/** Options for {@link ContentCache}. */
export interface ContentCacheOptions {
  /** Most bytes held in all (bodies, keys, headers). Default 16 MiB. */
  maxBytes?: number;
  /** Largest body stored. Default 256 KiB. */
  maxEntryBytes?: number;
  /** How long an entry is served, in milliseconds. Default 10 minutes. */
  ttlMs?: number;
  /** The clock, in epoch milliseconds. */
  now?: () => number;
}

interface Entry {
  answer: CachedAnswer;
  /** Bytes counted against the budget. */
  size: number;
  expires: number;
}

const HASHES: ReadonlyMap<string, string> = new Map([
  ["sha256", "SHA-256"],
  ["sha512", "SHA-512"],
]);

// What an entry costs beyond its body: the map entry and the objects around
// it. Counted so that empty bodies and long keys are bounded too.
const ENTRY_OVERHEAD = 256;

/**
 * Checks that `body` hashes to `digest` (`sha256:` or `sha512:`, lower-case
 * hex). Other algorithms are never confirmed.
 *
 * @param digest The digest the body should have.
 * @param body The bytes.
 * @returns Whether the bytes match.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { digestMatches } from "./cache.ts";
 * const empty =
 *   "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
 * assert(await digestMatches(empty, new Uint8Array()));
 * assert(!(await digestMatches(empty, new Uint8Array([1]))));
 * ```
 */
export async function digestMatches(
  digest: string,
  body: Uint8Array,
): Promise<boolean> {
  const colon = digest.indexOf(":");
  const hash = HASHES.get(digest.slice(0, colon));
  if (colon < 0 || !hash) return false;

  const sum = new Uint8Array(
    await crypto.subtle.digest(hash, body as Uint8Array<ArrayBuffer>),
  );
  let hex = "";
  for (const b of sum) hex += b.toString(16).padStart(2, "0");
  return hex === digest.slice(colon + 1);
}

/**
 * Normalises an `Accept` header into a cache key part: media types without
 * parameters, lower-cased, de-duplicated and sorted. Types refused with
 * `q=0` are left out.
 *
 * @param accept The request's `Accept` header, if any.
 * @returns The key part; empty for no header.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptKey } from "./cache.ts";
 * assert(
 *   acceptKey("b/x; q=0.5, A/Y,b/x") === acceptKey("a/y, b/x"),
 * );
 * ```
 */
export function acceptKey(accept: string | null): string {
  if (!accept) return "";
  const types = new Set<string>();
  for (const part of accept.split(",")) {
    const [type = "", ...params] = part.split(";");
    if (params.some((p) => /^\s*q\s*=\s*0(\.0*)?\s*$/i.test(p))) continue;
    const name = type.trim().toLowerCase();
    if (name) types.add(name);
  }
  return [...types].sort().join(",");
}

/**
 * The cache. Keys are built by the caller and must name everything the
 * answer depends on (upstream repository, digest, normalised `Accept`).
 * The byte budget counts each entry's body, key and headers plus a fixed
 * overhead, so it bounds the memory held whatever the keys look like.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ContentCache } from "./cache.ts";
 * const cache = new ContentCache({ ttlMs: 60_000 });
 * const digest =
 *   "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
 * const stored = await cache.put("k", digest, {
 *   headers: [["content-length", "0"]],
 *   body: new Uint8Array(),
 * });
 * assert(stored);
 * assert.equal(cache.get("k")?.body.length, 0);
 * ```
 */
export class ContentCache {
  #entries = new Map<string, Entry>();
  #bytes = 0;
  #maxBytes: number;
  #maxEntryBytes: number;
  #ttlMs: number;
  #now: () => number;

  /**
   * Creates an empty cache.
   *
   * @param options Budget, entry size limit, time to live and clock.
   * @throws {RangeError} When a limit is negative or not a number.
   */
  constructor(options: ContentCacheOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.#maxEntryBytes = options.maxEntryBytes ?? 256 * 1024;
    this.#ttlMs = options.ttlMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
    for (
      const [what, n] of Object.entries({
        maxBytes: this.#maxBytes,
        maxEntryBytes: this.#maxEntryBytes,
        ttlMs: this.#ttlMs,
      })
    ) {
      if (!(n >= 0)) {
        throw new RangeError(`${what} must be zero or more, not ${n}`);
      }
    }
  }

  /** Bytes held now (bodies, keys, headers and overhead). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Looks an answer up. A live entry becomes the most recently used; an
   * expired one is dropped.
   *
   * @param key The caller's key.
   * @returns The answer, or `undefined`.
   */
  get(key: string): CachedAnswer | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;

    if (entry.expires <= this.#now()) {
      this.#drop(key);
      return undefined;
    }
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.answer;
  }

  /**
   * Stores an answer if its body hashes to `digest` and fits the limits,
   * evicting the least recently used entries to make room.
   *
   * @param key The caller's key.
   * @param digest The digest the request named.
   * @param answer Headers and body to store.
   * @returns Whether it was stored.
   */
  async put(
    key: string,
    digest: string,
    answer: CachedAnswer,
  ): Promise<boolean> {
    const size = entrySize(key, answer);
    if (answer.body.byteLength > this.#maxEntryBytes) return false;
    if (size > this.#maxBytes) return false;
    if (this.#ttlMs === 0) return false;
    if (!(await digestMatches(digest, answer.body))) return false;

    this.#drop(key);
    for (const [old, entry] of this.#entries) {
      if (this.#bytes + size <= this.#maxBytes) break;
      this.#entries.delete(old);
      this.#bytes -= entry.size;
    }

    this.#entries.set(key, {
      answer,
      size,
      expires: this.#now() + this.#ttlMs,
    });
    this.#bytes += size;
    return true;
  }

  #drop(key: string): void {
    const old = this.#entries.get(key);
    if (!old) return;
    this.#entries.delete(key);
    this.#bytes -= old.size;
  }
}

function entrySize(key: string, answer: CachedAnswer): number {
  let size = ENTRY_OVERHEAD + answer.body.byteLength + key.length * 2;
  for (const [name, value] of answer.headers) {
    size += (name.length + value.length) * 2;
  }
  return size;
}
