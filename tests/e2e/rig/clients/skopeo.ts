/**
 * skopeo as a client: copies from the proxy (plain registry or as a
 * registry mirror) into a `dir:` destination, which keeps manifests and
 * blobs byte for byte (an `oci:` destination converts Docker schema 2).
 * Every call passes its own registries.conf and policy, so nothing from
 * /etc applies.
 *
 * @module
 */

import { run, type RunResult } from "../proc.ts";

/** Options for {@linkcode Skopeo.copy}. */
export interface SkopeoCopyOptions {
  /** Copy every platform of an index (`--all`). */
  all?: boolean;
  /** Use this registries.conf (else one with no registries at all). */
  registriesConf?: string;
  /** Pass `--src-tls-verify=false` (default true; not for mirror pulls). */
  insecure?: boolean;
  /** `--src-cert-dir` (CA files to trust for TLS). */
  certDir?: string;
  /** Pass `--src-tls-verify=true` (overrides `insecure` in registries.conf). */
  verifyTls?: boolean;
  /** Deadline in milliseconds (default 120000). */
  timeoutMs?: number;
}

/** A skopeo runner with private config files. */
export class Skopeo {
  readonly #dir: string;

  /**
   * @param dir private directory for config and HOME
   */
  constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Writes the private policy and an empty registries.conf.
   *
   * @param dir private directory
   * @returns the runner
   */
  static async create(dir: string): Promise<Skopeo> {
    await Deno.mkdir(`${dir}/home`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/policy.json`,
      JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }),
    );
    await Deno.writeTextFile(
      `${dir}/registries-none.conf`,
      "unqualified-search-registries = []\n",
    );
    return new Skopeo(dir);
  }

  /**
   * Writes a registries.conf making `mirror` a docker.io mirror with a dead
   * loopback primary (127.0.0.1:1), so no fallback can reach the internet.
   *
   * @param mirrorHost `127.0.0.1:<port>` of the proxy
   * @param name file name suffix (one file per proxy)
   * @returns path of the file
   */
  async mirrorConf(mirrorHost: string, name = "mirror"): Promise<string> {
    return await this.conf(name, { "docker.io": { host: mirrorHost } });
  }

  /**
   * Writes a registries.conf with a mirror per registry.
   *
   * @param name file name suffix
   * @param mirrors registry prefix to mirror
   * @returns path of the file
   */
  async conf(
    name: string,
    mirrors: Record<string, MirrorSpec>,
  ): Promise<string> {
    const path = `${this.#dir}/registries-${name}.conf`;
    await Deno.writeTextFile(path, registriesConf(mirrors));
    return path;
  }

  /**
   * `skopeo copy` from a docker reference into `dir:<destDir>`,
   * anonymously, resolving indexes to linux/amd64.
   *
   * @param source `docker://...` reference
   * @param destDir directory for the OCI layout
   * @param options mirror config, --all, TLS
   * @returns the command result
   */
  copy(
    source: string,
    destDir: string,
    options: SkopeoCopyOptions = {},
  ): Promise<RunResult> {
    const args = [
      "--registries-conf",
      options.registriesConf ?? `${this.#dir}/registries-none.conf`,
      "--policy",
      `${this.#dir}/policy.json`,
      "--override-os",
      "linux",
      "--override-arch",
      "amd64",
      "copy",
      "--retry-times",
      "0",
      "--src-no-creds",
      ...(options.insecure ?? true ? ["--src-tls-verify=false"] : []),
      ...(options.verifyTls ? ["--src-tls-verify=true"] : []),
      ...(options.certDir ? ["--src-cert-dir", options.certDir] : []),
      ...(options.all ? ["--all"] : []),
      source,
      `dir:${destDir}`,
    ];
    return run("skopeo", args, {
      env: {
        HOME: `${this.#dir}/home`,
        REGISTRY_AUTH_FILE: `${this.#dir}/auth.json`,
      },
      timeoutMs: options.timeoutMs ?? 120_000,
    });
  }

  /**
   * `skopeo copy` with an explicit source token or credentials (used to
   * validate the fake ACR without the proxy).
   *
   * @param source `docker://...` reference
   * @param destDir directory for the OCI layout
   * @param auth `--src-registry-token` or `--src-creds` value
   * @param all copy every platform of an index
   * @returns the command result
   */
  copyWithAuth(
    source: string,
    destDir: string,
    auth: { token: string } | { creds: string },
    all = false,
  ): Promise<RunResult> {
    const args = [
      "--registries-conf",
      `${this.#dir}/registries-none.conf`,
      "--policy",
      `${this.#dir}/policy.json`,
      "--override-os",
      "linux",
      "--override-arch",
      "amd64",
      "copy",
      "--retry-times",
      "0",
      "--src-tls-verify=false",
      ...("token" in auth
        ? ["--src-registry-token", auth.token]
        : ["--src-creds", auth.creds]),
      ...(all ? ["--all"] : []),
      source,
      `dir:${destDir}`,
    ];
    return run("skopeo", args, {
      env: {
        HOME: `${this.#dir}/home`,
        REGISTRY_AUTH_FILE: `${this.#dir}/auth.json`,
      },
      timeoutMs: 120_000,
    });
  }
}

/** One registry mirror of a registries.conf. */
export interface MirrorSpec {
  /** `127.0.0.1:<port>` of the proxy (optionally with a path). */
  host: string;
  /** Plain HTTP (`insecure = true`, the default); false for TLS. */
  insecure?: boolean;
}

/**
 * registries.conf text with, per registry, a dead loopback primary
 * (127.0.0.1:1, so no fallback can leave the machine) and the proxy as
 * its only mirror.
 *
 * @param mirrors registry prefix (`docker.io`, `ghcr.io`) to mirror
 * @returns TOML text
 */
export function registriesConf(mirrors: Record<string, MirrorSpec>): string {
  const lines = ['unqualified-search-registries = ["docker.io"]', ""];
  for (const [prefix, m] of Object.entries(mirrors)) {
    lines.push(
      "[[registry]]",
      `prefix = "${prefix}"`,
      'location = "127.0.0.1:1"',
      "",
      "[[registry.mirror]]",
      `location = "${m.host}"`,
      ...(m.insecure ?? true ? ["insecure = true"] : []),
      "",
    );
  }
  return lines.join("\n");
}

/**
 * registries.conf text for a docker.io mirror over plain HTTP with a dead
 * loopback primary.
 *
 * @param mirrorHost `127.0.0.1:<port>`
 * @returns TOML text
 */
export function dockerIoMirrorConf(mirrorHost: string): string {
  return registriesConf({ "docker.io": { host: mirrorHost } });
}
