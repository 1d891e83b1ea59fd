/**
 * containerd as a client: a private containerd daemon (own root, state
 * and sockets, CRI disabled) and `ctr images pull --hosts-dir` with the
 * proxy as host of docker.io (or any registry) and a dead loopback
 * `server`.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { SeedImage } from "../images.ts";
import {
  type Daemon,
  run,
  runOk,
  type RunResult,
  spawnDaemon,
  waitFor,
} from "../proc.ts";
import { sha256Digest } from "../tar.ts";

/** A mirror host entry of a `hosts.toml`. */
export interface HostEntry {
  /** `http://127.0.0.1:<port>` or `https://...` of the proxy. */
  url: string;
  /** CA file to trust for an `https` host (else the system roots). */
  ca?: string;
}

/**
 * `hosts.toml` text: the dead loopback `server` (so containerd can never
 * fall back to the real registry) and the proxy as pull/resolve host.
 *
 * @param host the proxy
 * @returns TOML text
 */
export function hostsToml(host: HostEntry): string {
  return [
    'server = "http://127.0.0.1:1"',
    "",
    `[host."${host.url}"]`,
    '  capabilities = ["pull", "resolve"]',
    ...(host.ca ? [`  ca = "${host.ca}"`] : []),
    "",
  ].join("\n");
}

/** A running private containerd plus ctr helpers. */
export class Containerd {
  readonly #dir: string;
  readonly #daemon: Daemon;
  readonly #socket: string;
  /** Namespace used for every ctr call. */
  readonly namespace = "e2e";

  private constructor(dir: string, daemon: Daemon) {
    this.#dir = dir;
    this.#daemon = daemon;
    this.#socket = `${dir}/containerd.sock`;
  }

  /**
   * Starts containerd with its own root, state and sockets.
   *
   * @param dir private directory
   * @returns the running daemon
   */
  static async start(dir: string): Promise<Containerd> {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/config.toml`,
      [
        "version = 2",
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri", ' +
        '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", ' +
        '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
        "[grpc]",
        `  address = "${dir}/containerd.sock"`,
        "[ttrpc]",
        `  address = "${dir}/containerd.sock.ttrpc"`,
        "",
      ].join("\n"),
    );
    const daemon = await spawnDaemon({
      name: "containerd",
      cmd: "containerd",
      args: ["--config", `${dir}/config.toml`],
      logPath: `${dir}/containerd.log`,
    });
    const c = new Containerd(dir, daemon);
    await waitFor(
      async () => (await c.ctr(["version"])).code === 0,
      { what: "containerd socket", daemon, timeoutMs: 20_000, intervalMs: 100 },
    );
    return c;
  }

  /**
   * Writes a hosts directory with one `hosts.toml` per registry.
   *
   * @param name directory name under the daemon's directory
   * @param registries registry (`docker.io`, `ghcr.io`, ...) to proxy
   * @returns the directory for `--hosts-dir`
   */
  async hostsDir(
    name: string,
    registries: Record<string, HostEntry>,
  ): Promise<string> {
    const dir = `${this.#dir}/${name}`;
    for (const [registry, host] of Object.entries(registries)) {
      await Deno.mkdir(`${dir}/${registry}`, { recursive: true });
      await Deno.writeTextFile(
        `${dir}/${registry}/hosts.toml`,
        hostsToml(host),
      );
    }
    return dir;
  }

  /**
   * Runs ctr against the private daemon.
   *
   * @param args ctr arguments after the global flags
   * @returns the command result
   */
  ctr(args: string[]): Promise<RunResult> {
    return run(
      "ctr",
      ["--address", this.#socket, "--namespace", this.namespace, ...args],
      { timeoutMs: 120_000 },
    );
  }

  /**
   * `ctr images pull` for linux/amd64 through a hosts dir.
   *
   * @param reference e.g. `docker.io/library/busybox:1.36`
   * @param hostsDir from {@linkcode Containerd.hostsDir}
   * @returns the command result
   */
  pull(reference: string, hostsDir: string): Promise<RunResult> {
    return this.ctr([
      "images",
      "pull",
      "--hosts-dir",
      hostsDir,
      "--snapshotter",
      "native",
      "--platform",
      "linux/amd64",
      reference,
    ]);
  }

  /**
   * Target digest of an image from `ctr images ls`.
   *
   * @param reference image name as pulled
   * @returns digest or null
   */
  async imageDigest(reference: string): Promise<string | null> {
    const out = await runOk("ctr", [
      "--address",
      this.#socket,
      "--namespace",
      this.namespace,
      "images",
      "ls",
    ]);
    for (const line of out.stdout.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[0] === reference) return cols[2] ?? null;
    }
    return null;
  }

  /**
   * Reads a content blob and returns the digest of the bytes.
   *
   * @param digest blob digest
   * @returns digest of what containerd holds, or null when absent
   */
  async contentDigest(digest: string): Promise<string | null> {
    const out = await this.ctr(["content", "get", digest]);
    return out.code === 0 ? sha256Digest(out.stdoutBytes) : null;
  }

  /** Path of the daemon log. */
  get logPath(): string {
    return this.#daemon.logPath;
  }

  /** Stops the daemon. */
  async stop(): Promise<void> {
    await this.#daemon.stop("SIGTERM", 10_000);
  }
}

/**
 * Asserts containerd holds `ref` at `top` with the amd64 manifest, its
 * config and its layers, each re-hashed.
 *
 * @param ctrd the daemon
 * @param ref image name as pulled
 * @param image what was pushed
 * @param top digest the reference resolves to
 */
export async function assertCtrImage(
  ctrd: Containerd,
  ref: string,
  image: SeedImage,
  top: string,
): Promise<void> {
  assert.equal(await ctrd.imageDigest(ref), top, "ctr images ls digest");
  const m = image.amd64;
  for (
    const d of [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)]
  ) {
    assert.equal(await ctrd.contentDigest(d), d, `content ${d}`);
  }
}
