/**
 * The credential chain on a simulated clock: a {@link MisbehavingUpstream}
 * whose fake ACR and token classes read the same hand-moved clock, an
 * Entra ID stand-in that can be switched off, and `createHandler` wired as
 * `main.ts` wires it (inject mode, readiness from the refresh token's
 * expiry). Only the clock is simulated; requests go over loopback.
 *
 * @module
 */

import { createHandler, type ProxyHandler } from "../../src/handler.ts";
import {
  AccessTokenCache,
  RefreshTokenSource,
  type RenewalEvent,
} from "../../src/tokens.ts";
import { UPSTREAM_REPO } from "./_rig.ts";
import { MisbehavingUpstream } from "./misbehaving_upstream.ts";

/** How long before refresh-token expiry `main.ts` reports not ready. */
export const READY_EXPIRY_MARGIN_MS = 2 * 60_000;
/** The exchange endpoint's path, as a pattern for counting. */
export const EXCHANGE = /^\/oauth2\/exchange/;
/** The token endpoint's path, as a pattern for counting. */
export const TOKEN = /^\/oauth2\/token/;

/** A renewal attempt with the simulated time it finished at. */
export type TimedRenewal = RenewalEvent & { at: number };

/** The rig. */
export interface TokenRig extends AsyncDisposable {
  /** The upstream. */
  up: MisbehavingUpstream;
  /** The simulated clock, epoch ms; move it by assigning `now`. */
  clock: { now: number };
  /** Entra ID: switch it off with `up = false`; `calls` counts sign-ins. */
  entra: { up: boolean; calls: number };
  /** The refresh token source. */
  refresh: RefreshTokenSource;
  /** The handler, in inject mode. */
  handler: ProxyHandler;
  /** Every renewal attempt. */
  renewals: TimedRenewal[];
  /** Readiness as `main.ts` computes it from the refresh token. */
  ready(): boolean;
  /**
   * Pulls the manifest through the handler.
   *
   * @returns The response, body read.
   */
  pull(): Promise<{ status: number; body: string }>;
  /**
   * The refresh token sent with the latest `/oauth2/token` request.
   *
   * @returns The token, if any was sent.
   */
  lastRefreshTokenUsed(): string | undefined;
  /**
   * Runs the background loop as `main.ts` does (`tick()`, then wait what
   * it says) on the simulated clock.
   *
   * @param untilMs Stop when the clock reaches this.
   * @param each Called after every step.
   * @returns The number of steps.
   */
  runLoop(untilMs: number, each?: () => Promise<void> | void): Promise<number>;
}

/** Options for {@link startTokenRig}. */
export interface TokenRigOptions {
  /** Jitter source for the backoff. */
  random?: () => number;
  /** ACR access-token lifetime in seconds. */
  accessTokenTtl?: number;
  /** ACR refresh-token lifetime in seconds. Default three hours. */
  refreshTokenTtl?: number;
}

/**
 * Starts the upstream, signs in once, and builds the handler.
 *
 * @param options Jitter and token lifetimes.
 * @returns The rig; dispose of it to stop the upstream.
 */
export async function startTokenRig(
  options: TokenRigOptions = {},
): Promise<TokenRig> {
  const clock = { now: Date.now() };
  const now = (): number => clock.now;
  const up = new MisbehavingUpstream({
    acr: {
      now,
      accessTokenTtl: options.accessTokenTtl ?? 600,
      refreshTokenTtl: options.refreshTokenTtl ?? 3 * 3600,
    },
  });
  await up.acr.pushSampleImage(UPSTREAM_REPO, "latest");
  up.start();

  const entra = { up: true, calls: 0 };
  const renewals: TimedRenewal[] = [];
  const refresh = new RefreshTokenSource({
    exchangeUrl: `${up.origin}/oauth2/exchange`,
    service: "fakeacr.azurecr.io",
    getEntraToken: () => {
      entra.calls++;
      return entra.up
        ? Promise.resolve({ token: "entra-token", expiresAt: now() + 3600e3 })
        : Promise.reject(new Error("AADSTS90033: Entra ID is unavailable"));
    },
    now,
    ...(options.random ? { random: options.random } : {}),
    onRenewal: (event) => renewals.push({ ...event, at: now() }),
  });
  const tokens = new AccessTokenCache({
    realm: `${up.origin}/oauth2/token`,
    service: "fakeacr.azurecr.io",
    refreshToken: () => refresh.token(),
    onRefreshRejected: () => refresh.renew(),
    now,
  });
  const ready = (): boolean =>
    (refresh.expiresAt ?? 0) - now() > READY_EXPIRY_MARGIN_MS;
  const handler = createHandler({
    upstream: up.origin,
    defaultRoute: { registry: "docker.io", prefix: "hub" },
    tokens,
    mode: "inject",
    now,
    ready,
    headerTimeoutMs: 5000,
    idleTimeoutMs: 5000,
  });
  try {
    await refresh.renew();
  } catch (e) {
    await up.stop();
    throw e;
  }

  return {
    up,
    clock,
    entra,
    refresh,
    handler,
    renewals,
    ready,
    async pull(): Promise<{ status: number; body: string }> {
      const res = await handler.fetch(
        new Request("http://127.0.0.1/v2/library/hello/manifests/latest"),
      );
      return { status: res.status, body: await res.text() };
    },
    lastRefreshTokenUsed(): string | undefined {
      const last = up.requests.findLast((r) => TOKEN.test(r.path));
      return last?.form?.get("refresh_token") ?? undefined;
    },
    async runLoop(
      untilMs: number,
      each?: () => Promise<void> | void,
    ): Promise<number> {
      let steps = 0;
      while (clock.now < untilMs) {
        const wait = await refresh.tick();
        clock.now += wait;
        steps++;
        await each?.();
      }
      return steps;
    },
    async [Symbol.asyncDispose](): Promise<void> {
      await up.stop();
    },
  };
}

/**
 * A small deterministic generator in [0, 1) (mulberry32).
 *
 * @param seed The seed.
 * @returns The generator.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
