/**
 * A rig plus running proxies: one proxy ({@linkcode startSession}) or
 * one per auth mode on the same rig ({@linkcode startModeSession}), and
 * the checks every suite runs on the proxies' logs.
 *
 * @module
 */

import assert from "node:assert/strict";
import { findLeaks, loggedRequests } from "./logscan.ts";
import {
  AUTH_MODES,
  type AuthMode,
  type ProxyOptions,
  type RunningProxy,
  startProxy,
} from "./proxy.ts";
import { type Rig, type RigOptions, startRig } from "./rig.ts";

export { type LoggedRequest, loggedRequests } from "./logscan.ts";

/** A rig with the proxy in front. */
export interface Session {
  /** Everything upstream. */
  rig: Rig;
  /** The proxy under test. */
  proxy: RunningProxy;
  /** Stops the proxy, then the rig; returns the proxy's exit status. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Starts a rig and the proxy against it.
 *
 * @param proxy proxy options (credential, flags)
 * @param rig rig options
 * @returns the session
 */
export async function startSession(
  proxy: ProxyOptions = {},
  rig: RigOptions = {},
): Promise<Session> {
  const r = await startRig(rig);
  let p: RunningProxy;
  try {
    p = await startProxy(r, proxy);
  } catch (err) {
    await r.stop();
    throw err;
  }
  return {
    rig: r,
    proxy: p,
    async stop() {
      try {
        return await p.stop();
      } finally {
        await r.stop();
      }
    },
  };
}

/** One rig with a proxy per auth mode in front. */
export interface ModeSession {
  /** Everything upstream, shared by both proxies. */
  rig: Rig;
  /** The proxy for each mode. */
  proxies: Record<AuthMode, RunningProxy>;
  /** Starts one more proxy on the same rig (stopped with the session). */
  add(options: ProxyOptions): Promise<RunningProxy>;
  /** Every proxy started so far. */
  all(): RunningProxy[];
  /** Stops every proxy, then the rig. */
  stop(): Promise<void>;
}

/**
 * Starts one rig and one proxy per auth mode (`--auth-mode challenge`
 * and `--auth-mode inject`), both at `--log-level debug`.
 *
 * @param proxy options shared by both proxies
 * @param rig rig options
 * @returns the session
 */
export async function startModeSession(
  proxy: ProxyOptions = {},
  rig: RigOptions = {},
): Promise<ModeSession> {
  const r = await startRig(rig);
  const started: RunningProxy[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.map((p) => p.stop()));
    await r.stop();
  };
  const add = async (options: ProxyOptions): Promise<RunningProxy> => {
    const p = await startProxy(r, options);
    started.push(p);
    return p;
  };
  try {
    const proxies = {} as Record<AuthMode, RunningProxy>;
    for (const mode of AUTH_MODES) {
      proxies[mode] = await add({ ...proxy, mode, label: mode });
    }
    return { rig: r, proxies, add, all: () => [...started], stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Asserts from the proxy's request log that clients went through the
 * auth mode it runs: in `challenge` they fetched tokens from `/token`
 * after a 401; in `inject` `/v2/` answered 200 and nobody asked for a
 * token.
 *
 * @param proxy the proxy
 */
export async function assertModeSeen(proxy: RunningProxy): Promise<void> {
  const lines = loggedRequests(await proxy.log());
  const tokens = lines.filter((l) => l.kind === "token");
  const pings = lines.filter((l) => l.kind === "ping");
  const seen = `${lines.length} request lines, e.g.\n` +
    lines.slice(0, 6).map((l) => l.line).join("\n");
  if (proxy.mode === "challenge") {
    assert.ok(tokens.some((l) => l.status === 200), `no /token: ${seen}`);
    assert.ok(lines.some((l) => l.status === 401), `no 401: ${seen}`);
  } else {
    assert.deepEqual(tokens.map((l) => l.line), [], "tokens in inject mode");
    assert.deepEqual(
      lines.filter((l) => l.status === 401).map((l) => l.line),
      [],
      "401 in inject mode",
    );
    assert.ok(pings.every((l) => l.status === 200), seen);
  }
}

/**
 * Asserts a proxy log holds no 5xx request line and nothing the leak
 * scan flags (credentials handed out by the fakes, JWTs, SAS queries,
 * `Bearer`/`Basic` values, proxy tokens, upstream names).
 *
 * @param proxy the proxy
 * @param rig the rig (for the credentials it handed out)
 * @param extraSecrets more exact strings that must not appear
 * @param expected5xx tells a 5xx line a test provoked on purpose
 */
export async function assertCleanLog(
  proxy: RunningProxy,
  rig: Rig,
  extraSecrets: readonly string[] = [],
  expected5xx: (line: string) => boolean = () => false,
): Promise<void> {
  const log = await proxy.log();
  const bad = loggedRequests(log).filter((l) =>
    l.status >= 500 && !expected5xx(l.line)
  );
  assert.deepEqual(bad.map((l) => l.line), [], "5xx in the proxy log");
  assert.deepEqual(
    findLeaks(log, {
      secrets: [...rig.secrets(), ...extraSecrets],
      prefixes: ["hub", "ghcr"],
    }),
    [],
    `leaks in ${proxy.daemon.logPath}`,
  );
}
