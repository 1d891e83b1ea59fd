/**
 * One fault scenario's moving parts: a {@link MisbehavingUpstream} holding
 * a manifest and blobs of chosen sizes, and `main.ts` started in front of
 * it as a subprocess with short timeouts.
 *
 * @module
 */

import { type ProxyProcess, startProxy } from "../_process.ts";
import {
  MisbehavingUpstream,
  type MisbehavingUpstreamOptions,
} from "./misbehaving_upstream.ts";

/** The header timeout the fault suite gives the proxy, in ms. */
export const HEADER_TIMEOUT_MS = 1000;
/** The idle timeout the fault suite gives the proxy, in ms. */
export const IDLE_TIMEOUT_MS = 1000;
/** Repository as clients name it. */
export const CLIENT_REPO = "library/hello";
/** The same repository upstream, under the cache-rule prefix. */
export const UPSTREAM_REPO = `hub/${CLIENT_REPO}`;

/** A running scenario. */
export interface FaultRig extends AsyncDisposable {
  /** The upstream. */
  up: MisbehavingUpstream;
  /** The proxy. */
  proxy: ProxyProcess;
  /** The manifest digest of `library/hello:latest`. */
  manifest: string;
  /** Digests of blobs by size in bytes. */
  blobs: Map<number, string>;
  /** A scratch directory. */
  dir: string;
  /** The flags the proxy was started with. */
  args: string[];
  /** Environment the proxy was started with. */
  env: Record<string, string>;
  /**
   * Starts `main.ts` again with the same flags on the same port (after
   * the previous process was stopped).
   *
   * @returns The new process.
   */
  restartProxy(): Promise<ProxyProcess>;
  /**
   * The proxy URL of a blob.
   *
   * @param size The blob's size.
   * @returns The URL.
   */
  blobUrl(size: number): string;
  /** The proxy URL of the manifest. */
  manifestUrl: string;
}

/** Options for {@link startRig}. */
export interface RigOptions {
  /** Blob sizes to store. */
  blobSizes?: number[];
  /** Extra proxy flags (later flags win). */
  args?: string[];
  /** Extra proxy environment. */
  env?: Record<string, string>;
  /** Upstream options; anonymous by default. */
  upstream?: MisbehavingUpstreamOptions;
}

/**
 * Bytes that do not compress, reproducible from a seed.
 *
 * @param size How many.
 * @param seed Which.
 * @returns The bytes.
 */
export function filler(size: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * Starts an anonymous misbehaving upstream with content and `main.ts` in
 * inject mode in front of it, with 1 s header and idle timeouts.
 *
 * @param options Blob sizes, extra flags and environment.
 * @returns The scenario; dispose of it to stop everything.
 */
export async function startRig(options: RigOptions = {}): Promise<FaultRig> {
  const dir = await Deno.makeTempDir({ prefix: "acr-faults-" });
  const up = new MisbehavingUpstream(
    options.upstream ?? { acr: { anonymous: true } },
  );
  const image = await up.acr.pushSampleImage(UPSTREAM_REPO, "latest");
  const blobs = new Map<number, string>();
  for (const [i, size] of (options.blobSizes ?? []).entries()) {
    blobs.set(size, await up.acr.putBlob(filler(size, i + 7)));
  }
  up.start();

  // An anonymous upstream asks for no credential; this `az` must not run.
  const az = `${dir}/az`;
  await Deno.writeTextFile(az, "#!/bin/sh\nexit 9\n");
  await Deno.chmod(az, 0o755);
  const args = [
    "--upstream-domain",
    up.origin,
    "--upstream-prefix",
    "hub",
    "--auth-mode",
    "inject",
    "--header-timeout",
    `${HEADER_TIMEOUT_MS}ms`,
    "--idle-timeout",
    `${IDLE_TIMEOUT_MS}ms`,
    ...(options.args ?? []),
  ];
  const env = options.env ?? {};
  let proxy: ProxyProcess;
  try {
    proxy = await startProxy(args, { azPath: az, env });
  } catch (e) {
    await up.stop();
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  const port = Number(new URL(proxy.url).port);

  const rig: FaultRig = {
    up,
    proxy,
    manifest: image.manifest,
    blobs,
    dir,
    args,
    env,
    manifestUrl: `${proxy.url}/v2/${CLIENT_REPO}/manifests/latest`,
    blobUrl(size: number): string {
      const digest = blobs.get(size);
      if (!digest) throw new RangeError(`no blob of ${size} bytes`);
      return `${rig.proxy.url}/v2/${CLIENT_REPO}/blobs/${digest}`;
    },
    async restartProxy(): Promise<ProxyProcess> {
      rig.proxy = await startProxy(args, { azPath: az, env, port });
      return rig.proxy;
    },
    async [Symbol.asyncDispose](): Promise<void> {
      await rig.proxy.stop("SIGKILL");
      await up.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
  return rig;
}
