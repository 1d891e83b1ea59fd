/**
 * A rig plus a running proxy, and checks on the proxy's request log.
 *
 * @module
 */

import { type ProxyOptions, type RunningProxy, startProxy } from "./proxy.ts";
import { type Rig, type RigOptions, startRig } from "./rig.ts";

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

/** One `msg=request` line of the proxy log (text format). */
export interface LoggedRequest {
  /** `method=` */
  method: string;
  /** `name=` (client-side repository) */
  name: string;
  /** `status=` */
  status: number;
  /** The raw line. */
  line: string;
}

/**
 * Parses the request lines of a text-format proxy log.
 *
 * @param log log text
 * @returns one entry per request line
 */
export function loggedRequests(log: string): LoggedRequest[] {
  const out: LoggedRequest[] = [];
  for (const line of log.split("\n")) {
    if (!/\bmsg="?request"?(\s|$)/.test(line)) continue;
    const field = (k: string): string =>
      line.match(new RegExp(`\\b${k}=("(?:[^"\\\\]|\\\\.)*"|\\S+)`))?.[1]
        ?.replace(/^"|"$/g, "") ?? "";
    out.push({
      method: field("method"),
      name: field("name"),
      status: Number(field("status")),
      line,
    });
  }
  return out;
}

/**
 * Lines of the proxy log that look like they carry a JWT (`eyJ...`).
 *
 * @param log log text
 * @returns offending lines
 */
export function linesWithTokens(log: string): string[] {
  return log.split("\n").filter((l) => /eyJ[A-Za-z0-9_-]{10,}/.test(l));
}
