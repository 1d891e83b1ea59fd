/**
 * podman as a client: pulls through the proxy set up as a registry
 * mirror (docker.io by default), with private storage (vfs), run root,
 * tmp dir and events file, then reports what it stored.
 *
 * @module
 */

import { run, runOk, type RunResult } from "../proc.ts";
import { type MirrorSpec, registriesConf } from "./skopeo.ts";

/** What podman stored for an image. */
export interface PodmanImage {
  /** Image ID (config digest hex). */
  id: string;
  /** Digest podman records for the image. */
  digest: string;
  /** `name@digest` entries. */
  repoDigests: string[];
  /** Layer diff IDs. */
  diffIds: string[];
}

/** A podman runner with private storage. */
export class Podman {
  readonly #dir: string;
  readonly #env: Record<string, string>;

  private constructor(dir: string, env: Record<string, string>) {
    this.#dir = dir;
    this.#env = env;
  }

  /**
   * Writes private config (registries.conf with the proxy as mirror and
   * a dead loopback primary, storage.conf, containers.conf).
   *
   * @param dir private directory
   * @param mirrors `127.0.0.1:<port>` of the proxy (docker.io mirror), or
   * a mirror per registry
   * @returns the runner
   */
  static async create(
    dir: string,
    mirrors: string | Record<string, MirrorSpec>,
  ): Promise<Podman> {
    for (const d of ["root", "runroot", "tmp", "home"]) {
      await Deno.mkdir(`${dir}/${d}`, { recursive: true });
    }
    await Deno.writeTextFile(
      `${dir}/registries.conf`,
      registriesConf(
        typeof mirrors === "string"
          ? { "docker.io": { host: mirrors } }
          : mirrors,
      ),
    );
    await Deno.writeTextFile(
      `${dir}/storage.conf`,
      [
        "[storage]",
        'driver = "vfs"',
        `graphroot = "${dir}/root"`,
        `runroot = "${dir}/runroot"`,
        "",
      ].join("\n"),
    );
    await Deno.writeTextFile(
      `${dir}/containers.conf`,
      [
        "[engine]",
        'events_logger = "file"',
        `events_logfile_path = "${dir}/events.log"`,
        'cgroup_manager = "cgroupfs"',
        "",
      ].join("\n"),
    );
    await Deno.writeTextFile(`${dir}/auth.json`, JSON.stringify({ auths: {} }));
    await Deno.writeTextFile(
      `${dir}/policy.json`,
      JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }),
    );
    return new Podman(dir, {
      CONTAINERS_REGISTRIES_CONF: `${dir}/registries.conf`,
      CONTAINERS_STORAGE_CONF: `${dir}/storage.conf`,
      CONTAINERS_CONF: `${dir}/containers.conf`,
      REGISTRY_AUTH_FILE: `${dir}/auth.json`,
      HOME: `${dir}/home`,
    });
  }

  #args(rest: string[]): string[] {
    const d = this.#dir;
    return [
      "--root",
      `${d}/root`,
      "--runroot",
      `${d}/runroot`,
      "--tmpdir",
      `${d}/tmp`,
      "--storage-driver",
      "vfs",
      "--events-backend",
      "file",
      "--cgroup-manager",
      "cgroupfs",
      ...rest,
    ];
  }

  /**
   * `podman pull` (linux/amd64, private policy).
   *
   * @param reference e.g. `docker.io/library/busybox:1.36`
   * @param options `--cert-dir` for a TLS mirror
   * @returns the command result
   */
  pull(
    reference: string,
    options: { certDir?: string } = {},
  ): Promise<RunResult> {
    return run(
      "podman",
      this.#args([
        "pull",
        "--signature-policy",
        `${this.#dir}/policy.json`,
        ...(options.certDir ? ["--cert-dir", options.certDir] : []),
        "--arch",
        "amd64",
        "--os",
        "linux",
        reference,
      ]),
      { env: this.#env, timeoutMs: 120_000 },
    );
  }

  /**
   * `podman image inspect` of a pulled image.
   *
   * @param reference image reference
   * @returns ID, digests and diff IDs
   */
  async inspect(reference: string): Promise<PodmanImage> {
    const out = await runOk(
      "podman",
      this.#args(["image", "inspect", "--format", "json", reference]),
      { env: this.#env, timeoutMs: 60_000 },
    );
    const [img] = JSON.parse(out.stdout);
    return {
      id: img.Id,
      digest: img.Digest,
      repoDigests: img.RepoDigests ?? [],
      diffIds: img.RootFS?.Layers ?? [],
    };
  }

  /**
   * `podman save --uncompressed --format oci-dir` of a pulled image: layer
   * blobs are the uncompressed tars, so their digests are the diff IDs.
   *
   * @param reference image reference
   * @param destDir directory to write
   * @returns the command result
   */
  save(reference: string, destDir: string): Promise<RunResult> {
    return runOk(
      "podman",
      this.#args([
        "save",
        "--uncompressed",
        "--format",
        "oci-dir",
        "-o",
        destDir,
        reference,
      ]),
      { env: this.#env, timeoutMs: 120_000 },
    );
  }
}
