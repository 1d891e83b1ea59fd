/**
 * Upstream credentials: the ACR refresh token obtained by exchanging an
 * Entra ID access token, kept fresh in the background, and a bounded cache
 * of scoped ACR access tokens. Clock, fetch and randomness are parameters.
 *
 * @module
 */

import { readJwtClaims, readJwtExpiry } from "./jwt.ts";
import { redact } from "./redact.ts";

/** An Entra ID access token with its expiry in epoch milliseconds. */
export interface EntraToken {
  /** The bearer token. */
  token: string;
  /** When it expires, in epoch milliseconds. */
  expiresAt: number;
}

/** Something that yields Entra ID access tokens for the ACR audience. */
export type EntraTokenProvider = () => Promise<EntraToken>;

/** A failure to obtain an upstream token; its message holds no secret. */
export class TokenError extends Error {
  /** The upstream HTTP status, when there was a response. */
  readonly status: number | undefined;

  /**
   * Creates a token failure.
   *
   * @param message What failed, with no token in it.
   * @param status The upstream status, if any.
   */
  constructor(message: string, status?: number) {
    super(redact(message));
    this.name = "TokenError";
    this.status = status;
  }
}

/** What a renewal attempt reports. */
export interface RenewalEvent {
  /** Whether a new refresh token is held. */
  ok: boolean;
  /** The failure, without secrets, when `ok` is false. */
  error?: string;
  /** Expiry of the token now in use, if any. */
  expiresAt?: number;
}

/** Options for {@link RefreshTokenSource}. */
export interface RefreshTokenSourceOptions {
  /** ACR's `/oauth2/exchange` URL. */
  exchangeUrl: string | URL;
  /** The registry's service name (its login server). */
  service: string;
  /** Yields Entra ID tokens. */
  getEntraToken: EntraTokenProvider;
  /** The fetch to use. */
  fetch?: typeof fetch;
  /** The clock, in epoch milliseconds. */
  now?: () => number;
  /** Randomness in [0, 1) for backoff jitter. */
  random?: () => number;
  /** How often the background loop looks at the token. Default 30 s. */
  checkIntervalMs?: number;
  /** Called after every renewal attempt. */
  onRenewal?: (event: RenewalEvent) => void;
}

interface Held {
  token: string;
  expiresAt: number;
  renewAt: number;
}

const MINUTE = 60_000;

/**
 * Holds the ACR refresh token. Renewal starts when a third of the token's
 * life is left (at least 15 minutes before expiry, or half-way for short
 * tokens); concurrent renewals share one request; a failed renewal keeps
 * the old token while it is valid and retries with jittered exponential
 * backoff.
 *
 * @example Keep a token fresh
 * ```ts ignore
 * import { RefreshTokenSource } from "./tokens.ts";
 * const source = new RefreshTokenSource({
 *   exchangeUrl: "https://example.azurecr.io/oauth2/exchange",
 *   service: "example.azurecr.io",
 *   getEntraToken: async () => ({ token: "t", expiresAt: Date.now() + 3e6 }),
 * });
 * await source.renew();
 * const refreshToken = await source.token();
 * ```
 */
export class RefreshTokenSource {
  #opts: Required<Omit<RefreshTokenSourceOptions, "onRenewal">>;
  #onRenewal: ((event: RenewalEvent) => void) | undefined;
  #held: Held | undefined;
  #pending: Promise<void> | undefined;
  #failures = 0;
  #nextAttemptAt = 0;
  #lastError: string | undefined;

  /**
   * Creates a source; nothing is fetched until the first renewal.
   *
   * @param options Where and how to exchange tokens.
   */
  constructor(options: RefreshTokenSourceOptions) {
    this.#opts = {
      exchangeUrl: options.exchangeUrl,
      service: options.service,
      getEntraToken: options.getEntraToken,
      fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
      checkIntervalMs: options.checkIntervalMs ?? 30_000,
    };
    this.#onRenewal = options.onRenewal;
  }

  /** Expiry of the held token in epoch milliseconds, if one is held. */
  get expiresAt(): number | undefined {
    return this.#held?.expiresAt;
  }

  /** The last renewal failure, cleared by a success. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /**
   * Tells whether a token is held that has not expired.
   *
   * @returns Whether {@link token} can answer without a renewal.
   */
  isValid(): boolean {
    return this.#held !== undefined &&
      this.#held.expiresAt > this.#opts.now();
  }

  /**
   * Returns a valid refresh token, renewing first when none is held.
   *
   * @returns The ACR refresh token.
   * @throws {TokenError} When no valid token can be had.
   */
  async token(): Promise<string> {
    if (!this.isValid()) await this.renew();
    if (!this.#held || !this.isValid()) {
      throw new TokenError(
        `no valid ACR refresh token: ${this.#lastError ?? "renewal failed"}`,
      );
    }
    return this.#held.token;
  }

  /**
   * Exchanges a fresh Entra ID token for a new refresh token. Concurrent
   * calls share one exchange; after a failure, calls made before the
   * backoff has passed fail at once with that failure.
   *
   * @returns When the attempt has finished.
   * @throws {TokenError} When the exchange fails.
   */
  renew(): Promise<void> {
    // While backing off after a failure, callers get that failure at once:
    // client requests must not turn into a storm of sign-ins.
    if (this.#failures > 0 && this.#opts.now() < this.#nextAttemptAt) {
      const wait = Math.ceil((this.#nextAttemptAt - this.#opts.now()) / 1000);
      return Promise.reject(
        new TokenError(`${this.#lastError} (next attempt in ${wait} s)`),
      );
    }
    this.#pending ??= this.#exchange().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  /**
   * One step of the background loop: renews when due and not backing off.
   *
   * @returns Milliseconds until the next step should run.
   */
  async tick(): Promise<number> {
    const now = this.#opts.now();
    const due = !this.#held || now >= this.#held.renewAt;
    if (due && now >= this.#nextAttemptAt) {
      try {
        await this.renew();
      } catch {
        // Already recorded and reported by #exchange.
      }
    }
    return this.#nextDelay();
  }

  #nextDelay(): number {
    const now = this.#opts.now();
    let wait = this.#opts.checkIntervalMs;
    if (this.#failures > 0) wait = Math.min(wait, this.#nextAttemptAt - now);
    else if (this.#held) wait = Math.min(wait, this.#held.renewAt - now);
    return Math.max(wait, 100);
  }

  async #exchange(): Promise<void> {
    try {
      const held = await this.#requestRefreshToken();
      this.#held = held;
      this.#failures = 0;
      this.#nextAttemptAt = 0;
      this.#lastError = undefined;
      this.#onRenewal?.({ ok: true, expiresAt: held.expiresAt });
    } catch (e) {
      this.#failures++;
      const base = Math.min(5 * MINUTE, 1000 * 2 ** this.#failures);
      const delay = base / 2 + this.#opts.random() * base / 2;
      this.#nextAttemptAt = this.#opts.now() + delay;
      this.#lastError = redact(e instanceof Error ? e.message : String(e));
      const event: RenewalEvent = { ok: false, error: this.#lastError };
      if (this.#held) event.expiresAt = this.#held.expiresAt;
      this.#onRenewal?.(event);
      throw e instanceof TokenError ? e : new TokenError(this.#lastError);
    }
  }

  async #requestRefreshToken(): Promise<Held> {
    let entra: EntraToken;
    try {
      entra = await this.#opts.getEntraToken();
    } catch (e) {
      const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
      throw new TokenError(`Entra ID sign-in failed: ${why}`);
    }

    const form = new URLSearchParams({
      grant_type: "access_token",
      service: this.#opts.service,
      access_token: entra.token,
    });
    const tenant = readJwtClaims(entra.token)?.tid;
    if (typeof tenant === "string") form.set("tenant", tenant);

    const res = await postForm(this.#opts.fetch, this.#opts.exchangeUrl, form);
    const body = await readTokenBody(res, "refresh_token", "token exchange");
    const token = body.refresh_token as string;

    const now = this.#opts.now();
    const expiresAt = readJwtExpiry(token) ?? entra.expiresAt;
    const lifetime = Math.max(expiresAt - now, 0);
    const margin = Math.min(Math.max(15 * MINUTE, lifetime / 3), lifetime / 2);
    return { token, expiresAt, renewAt: expiresAt - margin };
  }
}

/** Yields scoped upstream access tokens. */
export interface AccessTokenProvider {
  /**
   * Returns a token for the scopes.
   *
   * @param scopes Upstream scope strings, already clamped to pull.
   * @returns The token and whether it came from the cache.
   */
  get(scopes: readonly string[]): Promise<{ token: string; cached: boolean }>;
  /**
   * Forgets a token the upstream refused.
   *
   * @param scopes The scopes it was fetched for.
   * @param token The refused token.
   */
  invalidate(scopes: readonly string[], token: string): void;
}

/** Options for {@link AccessTokenCache}. */
export interface AccessTokenCacheOptions {
  /** The upstream token realm (ACR's `/oauth2/token`). */
  realm: string | URL;
  /** The upstream service name. */
  service: string;
  /** Yields the current ACR refresh token. */
  refreshToken: () => Promise<string>;
  /** Called when the realm rejects the refresh token, before one retry. */
  onRefreshRejected?: () => Promise<void>;
  /** The fetch to use. */
  fetch?: typeof fetch;
  /** The clock, in epoch milliseconds. */
  now?: () => number;
  /** Most entries kept; the least recently used go first. Default 1024. */
  maxEntries?: number;
  /** Lifetime assumed when a token says nothing. Default 60 s. */
  defaultTtlMs?: number;
  /** Called for every lookup with whether it hit. */
  onLookup?: (hit: boolean) => void;
}

interface Entry {
  token: string;
  useUntil: number;
}

/**
 * A bounded cache of upstream access tokens keyed by scope set. Entries are
 * used until shortly before they expire (read from `exp`, else
 * `expires_in`, else a default), concurrent misses for one key share one
 * request, and a refused token can be dropped.
 *
 * @example
 * ```ts ignore
 * import { AccessTokenCache } from "./tokens.ts";
 * const cache = new AccessTokenCache({
 *   realm: "https://example.azurecr.io/oauth2/token",
 *   service: "example.azurecr.io",
 *   refreshToken: async () => "refresh",
 * });
 * const { token } = await cache.get(["repository:hub/library/nginx:pull"]);
 * ```
 */
export class AccessTokenCache implements AccessTokenProvider {
  #opts: AccessTokenCacheOptions;
  #fetch: typeof fetch;
  #now: () => number;
  #max: number;
  #entries = new Map<string, Entry>();
  #pending = new Map<string, Promise<Entry>>();

  /**
   * Creates an empty cache.
   *
   * @param options Where to get tokens and how many to keep.
   */
  constructor(options: AccessTokenCacheOptions) {
    this.#opts = options;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#now = options.now ?? Date.now;
    this.#max = options.maxEntries ?? 1024;
  }

  /** Number of cached tokens. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Returns a token for the scopes, from the cache when one is fresh.
   *
   * @param scopes Upstream scope strings.
   * @returns The token and whether it was cached.
   * @throws {TokenError} When the realm refuses or cannot be reached.
   */
  async get(
    scopes: readonly string[],
  ): Promise<{ token: string; cached: boolean }> {
    const key = cacheKey(scopes);
    const hit = this.#entries.get(key);
    if (hit && hit.useUntil > this.#now()) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      this.#opts.onLookup?.(true);
      return { token: hit.token, cached: true };
    }
    this.#opts.onLookup?.(false);

    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#fetchEntry(scopes).finally(() => {
        this.#pending.delete(key);
      });
      this.#pending.set(key, pending);
    }
    const entry = await pending;
    return { token: entry.token, cached: false };
  }

  /**
   * Drops a cached token if it is still the one held for the scopes.
   *
   * @param scopes The scopes it was fetched for.
   * @param token The token the upstream refused.
   */
  invalidate(scopes: readonly string[], token: string): void {
    const key = cacheKey(scopes);
    if (this.#entries.get(key)?.token === token) this.#entries.delete(key);
  }

  async #fetchEntry(scopes: readonly string[]): Promise<Entry> {
    let res = await this.#request(scopes);
    if (res.status === 401 && this.#opts.onRefreshRejected) {
      await res.body?.cancel();
      await this.#opts.onRefreshRejected();
      res = await this.#request(scopes);
    }
    const body = await readTokenBody(res, "access_token", "token request");
    const token = (body.access_token ?? body.token) as string;

    const now = this.#now();
    const expiresIn = typeof body.expires_in === "number"
      ? body.expires_in * 1000
      : undefined;
    const expiresAt = readJwtExpiry(token) ??
      now + (expiresIn ?? this.#opts.defaultTtlMs ?? 60_000);
    const lifetime = Math.max(expiresAt - now, 0);
    const margin = Math.min(Math.max(lifetime / 10, 5_000), 60_000);
    const entry = { token, useUntil: expiresAt - margin };

    this.#store(cacheKey(scopes), entry);
    return entry;
  }

  async #request(scopes: readonly string[]): Promise<Response> {
    const form = new URLSearchParams({
      grant_type: "refresh_token",
      service: this.#opts.service,
      refresh_token: await this.#opts.refreshToken(),
    });
    for (const scope of scopes) form.append("scope", scope);
    return postForm(this.#fetch, this.#opts.realm, form);
  }

  #store(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    if (this.#entries.size <= this.#max) return;
    const now = this.#now();
    for (const [k, e] of this.#entries) {
      if (e.useUntil <= now) this.#entries.delete(k);
    }
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }
}

function cacheKey(scopes: readonly string[]): string {
  return [...new Set(scopes)].sort().join(" ");
}

async function postForm(
  fetchFn: typeof fetch,
  url: string | URL,
  form: URLSearchParams,
): Promise<Response> {
  try {
    return await fetchFn(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: form,
      redirect: "manual",
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    const why = e instanceof Error ? e.name : "error";
    throw new TokenError(`${new URL(url).host} could not be reached (${why})`);
  }
}

async function readTokenBody(
  res: Response,
  field: string,
  what: string,
): Promise<Record<string, unknown>> {
  const text = await res.text().catch(() => "");
  if (!res.ok) {
    throw new TokenError(
      `${what} answered ${res.status}${upstreamErrorCode(text)}`,
      res.status,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new TokenError(`${what} answered with a body that is not JSON`);
  }
  const record = body && typeof body === "object"
    ? body as Record<string, unknown>
    : {};
  const value = record[field] ??
    (field === "access_token" ? record.token : undefined);
  if (typeof value !== "string" || value === "") {
    throw new TokenError(`${what} answered without a ${field}`);
  }
  return record;
}

// Only the registry error code is kept: messages may echo request data.
function upstreamErrorCode(text: string): string {
  try {
    const code = JSON.parse(text)?.errors?.[0]?.code;
    return typeof code === "string" && /^[A-Z_]{1,40}$/.test(code)
      ? ` (${code})`
      : "";
  } catch {
    return "";
  }
}
