/**
 * The real registry: Debian's `docker-registry serve` (distribution 2.8)
 * on a loopback port with filesystem storage and token auth.
 *
 * @module
 */

import { type Daemon, freePort, probe, spawnDaemon, waitFor } from "./proc.ts";

/** Options for {@linkcode startRegistry}. */
export interface RegistryOptions {
  /** Directory for config and log. */
  workDir: string;
  /** Storage root (`storage.filesystem.rootdirectory`). */
  rootDir: string;
  /** Token realm URL announced in challenges. */
  realm: string;
  /** Token service (must equal the JWT `aud`). */
  service: string;
  /** Token issuer (must equal the JWT `iss`). */
  issuer: string;
  /** PEM bundle holding the signing certificate. */
  bundlePath: string;
}

/** A running registry. */
export interface Registry {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** Storage root. */
  rootDir: string;
  /** The process. */
  daemon: Daemon;
  /** Stops the registry. */
  stop(): Promise<void>;
}

function yamlString(value: string): string {
  return JSON.stringify(value);
}

/**
 * Starts `docker-registry serve` and waits until `/v2/` answers 401.
 *
 * @param options storage, auth and where to write files
 * @returns the running registry
 */
export async function startRegistry(
  options: RegistryOptions,
): Promise<Registry> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = freePort();
    const configPath = `${options.workDir}/registry-${port}.yml`;
    await Deno.writeTextFile(
      configPath,
      [
        "version: 0.1",
        "log: { level: info, formatter: text }",
        "storage:",
        `  filesystem: { rootdirectory: ${yamlString(options.rootDir)} }`,
        "  delete: { enabled: true }",
        "  cache: { blobdescriptor: inmemory }",
        "http:",
        `  addr: 127.0.0.1:${port}`,
        "  secret: e2e-rig-fixed-secret",
        "auth:",
        "  token:",
        `    realm: ${yamlString(options.realm)}`,
        `    service: ${yamlString(options.service)}`,
        `    issuer: ${yamlString(options.issuer)}`,
        `    rootcertbundle: ${yamlString(options.bundlePath)}`,
        "",
      ].join("\n"),
    );
    const daemon = await spawnDaemon({
      name: "docker-registry",
      cmd: "docker-registry",
      args: ["serve", configPath],
      logPath: `${options.workDir}/registry-${port}.log`,
      env: { OTEL_TRACES_EXPORTER: "none" },
    });
    const origin = `http://127.0.0.1:${port}`;
    try {
      await waitFor(async () => (await probe(`${origin}/v2/`)) === 401, {
        what: `registry on ${origin}`,
        daemon,
        timeoutMs: 15_000,
      });
      return {
        origin,
        rootDir: options.rootDir,
        daemon,
        async stop() {
          await daemon.stop();
        },
      };
    } catch (err) {
      lastError = err;
      await daemon.stop("SIGKILL");
    }
  }
  throw lastError;
}
