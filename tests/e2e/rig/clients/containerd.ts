/**
 * containerd as a client: a private containerd daemon (own root, state
 * and sockets, CRI disabled) and `ctr images pull --hosts-dir` with the
 * proxy as docker.io host and a dead loopback `server`.
 *
 * @module
 */

import {
  type Daemon,
  run,
  runOk,
  type RunResult,
  spawnDaemon,
  waitFor,
} from "../proc.ts";
import { sha256Digest } from "../tar.ts";

/** A running private containerd plus ctr helpers. */
export class Containerd {
  readonly #dir: string;
  readonly #daemon: Daemon;
  readonly #socket: string;
  readonly #hostsDir: string;
  /** Namespace used for every ctr call. */
  readonly namespace = "e2e";

  private constructor(dir: string, daemon: Daemon, hostsDir: string) {
    this.#dir = dir;
    this.#daemon = daemon;
    this.#socket = `${dir}/containerd.sock`;
    this.#hostsDir = hostsDir;
  }

  /**
   * Starts containerd and writes a hosts dir for docker.io.
   *
   * @param dir private directory
   * @param mirrorHost `127.0.0.1:<port>` of the proxy
   * @returns the running daemon
   */
  static async start(dir: string, mirrorHost: string): Promise<Containerd> {
    await Deno.mkdir(`${dir}/hosts/docker.io`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/hosts/docker.io/hosts.toml`,
      [
        'server = "http://127.0.0.1:1"',
        "",
        `[host."http://${mirrorHost}"]`,
        '  capabilities = ["pull", "resolve"]',
        "",
      ].join("\n"),
    );
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
    const c = new Containerd(dir, daemon, `${dir}/hosts`);
    await waitFor(
      async () => (await c.ctr(["version"])).code === 0,
      { what: "containerd socket", daemon, timeoutMs: 20_000, intervalMs: 100 },
    );
    return c;
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
   * `ctr images pull` for linux/amd64 through the hosts dir.
   *
   * @param reference e.g. `docker.io/library/busybox:1.36`
   * @returns the command result
   */
  pull(reference: string): Promise<RunResult> {
    return this.ctr([
      "images",
      "pull",
      "--hosts-dir",
      this.#hostsDir,
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
    void this.#dir;
  }
}
