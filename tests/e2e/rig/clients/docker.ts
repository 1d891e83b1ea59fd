/**
 * The Docker engine as a client: a private dockerd (own data-root,
 * exec-root, pidfile, unix socket; no bridge, no iptables, vfs) with the
 * proxy as its only registry mirror, driven by the docker CLI.
 *
 * @module
 */

import {
  type Daemon,
  run,
  type RunResult,
  spawnDaemon,
  waitFor,
} from "../proc.ts";

/** What dockerd stored for an image. */
export interface DockerImage {
  /** Image ID (config digest). */
  id: string;
  /** `name@digest` entries. */
  repoDigests: string[];
  /** Layer diff IDs. */
  diffIds: string[];
}

/** A running private dockerd. */
export class Dockerd {
  readonly #daemon: Daemon;
  readonly #socket: string;
  readonly #env: Record<string, string>;

  private constructor(
    daemon: Daemon,
    socket: string,
    env: Record<string, string>,
  ) {
    this.#daemon = daemon;
    this.#socket = socket;
    this.#env = env;
  }

  /**
   * Starts dockerd with the proxy as registry mirror.
   *
   * @param dir private directory (short path: it holds unix sockets)
   * @param mirrorOrigin `http://127.0.0.1:<port>` of the proxy
   * @returns the running daemon
   */
  static async start(dir: string, mirrorOrigin: string): Promise<Dockerd> {
    for (const d of ["data", "exec", "config"]) {
      await Deno.mkdir(`${dir}/${d}`, { recursive: true });
    }
    const socket = `${dir}/docker.sock`;
    await Deno.writeTextFile(
      `${dir}/daemon.json`,
      JSON.stringify(
        {
          "data-root": `${dir}/data`,
          "exec-root": `${dir}/exec`,
          pidfile: `${dir}/docker.pid`,
          hosts: [`unix://${socket}`],
          iptables: false,
          ip6tables: false,
          bridge: "none",
          "storage-driver": "vfs",
          "registry-mirrors": [mirrorOrigin],
          "max-download-attempts": 1,
        },
        null,
        2,
      ),
    );
    const daemon = await spawnDaemon({
      name: "dockerd",
      cmd: "dockerd",
      args: [
        "--config-file",
        `${dir}/daemon.json`,
        "--containerd-namespace",
        "e2e-docker",
        "--containerd-plugins-namespace",
        "e2e-docker-plugins",
      ],
      logPath: `${dir}/dockerd.log`,
    });
    const env = { DOCKER_CONFIG: `${dir}/config`, HOME: dir };
    const d = new Dockerd(daemon, socket, env);
    await waitFor(
      async () =>
        (await d.docker(["info", "--format", "{{.ID}}"], 10_000)).code === 0,
      { what: "dockerd socket", daemon, timeoutMs: 60_000, intervalMs: 250 },
    );
    return d;
  }

  /**
   * Runs the docker CLI against the private daemon.
   *
   * @param args CLI arguments after `-H`
   * @param timeoutMs deadline (default 120000)
   * @returns the command result
   */
  docker(args: string[], timeoutMs = 120_000): Promise<RunResult> {
    return run("docker", ["-H", `unix://${this.#socket}`, ...args], {
      env: this.#env,
      timeoutMs,
    });
  }

  /**
   * `docker pull` (Docker Hub naming; goes through the mirror).
   *
   * @param reference e.g. `busybox:1.36`
   * @returns the command result
   */
  pull(reference: string): Promise<RunResult> {
    return this.docker(["pull", "--platform", "linux/amd64", reference]);
  }

  /**
   * `docker image inspect` of a pulled image.
   *
   * @param reference image reference
   * @returns ID, repo digests and diff IDs
   */
  async inspect(reference: string): Promise<DockerImage> {
    const out = await this.docker(["image", "inspect", reference]);
    if (out.code !== 0) throw new Error(`docker image inspect: ${out.stderr}`);
    const [img] = JSON.parse(out.stdout);
    return {
      id: img.Id,
      repoDigests: img.RepoDigests ?? [],
      diffIds: img.RootFS?.Layers ?? [],
    };
  }

  /** Path of the daemon log. */
  get logPath(): string {
    return this.#daemon.logPath;
  }

  /** Stops dockerd (which stops the containerd it started). */
  async stop(): Promise<void> {
    await this.#daemon.stop("SIGTERM", 20_000);
  }
}
