/**
 * Process-wide seed: signing key, built images and a registry storage
 * directory with every image pushed. Built once per test process and
 * shared by every rig (each rig runs its own registry on this storage).
 *
 * @module
 */

import { buildImages, type ImageSet } from "./images.ts";
import { createPki, type Pki } from "./pki.ts";
import { pushImage } from "./push.ts";
import { startRegistry } from "./registry.ts";

/** Token issuer configured in every rig registry. */
export const ISSUER = "fake-acr-issuer";
/** Docker Hub cache rule prefix (`--upstream-prefix` of most proxies). */
export const PREFIX = "hub";

/** Shared, read-only state every rig starts from. */
export interface Seed {
  /** Temp directory holding everything below. */
  dir: string;
  /** Signing key and cert bundle. */
  pki: Pki;
  /** The images with their digests. */
  images: ImageSet;
  /** Registry storage root with every image (`hub/...`, `ghcr/...`). */
  registryRoot: string;
  /** Milliseconds spent building and pushing. */
  buildMs: number;
}

let seed: Promise<Seed> | null = null;

/**
 * Whether temp directories are kept after the run (`E2E_KEEP=1`).
 *
 * @returns true when kept
 */
export function keepTemp(): boolean {
  return Deno.env.get("E2E_KEEP") === "1";
}

async function createSeed(): Promise<Seed> {
  const started = performance.now();
  const dir = await Deno.makeTempDir({ prefix: "acr-e2e-seed-" });
  if (!keepTemp()) {
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // best effort
      }
    });
  }
  const pki = await createPki(dir);
  const images = await buildImages(`${dir}/oci`);
  const registryRoot = `${dir}/registry-data`;
  await Deno.mkdir(registryRoot);
  const service = "e2e-seed";
  const registry = await startRegistry({
    workDir: dir,
    rootDir: registryRoot,
    realm: "http://127.0.0.1:1/unused",
    service,
    issuer: ISSUER,
    bundlePath: pki.bundlePath,
  });
  try {
    const target = {
      origin: registry.origin,
      signer: pki.signer,
      issuer: ISSUER,
      service,
    };
    for (const image of images.all()) await pushImage(target, images, image);
  } finally {
    await registry.stop();
  }
  return {
    dir,
    pki,
    images,
    registryRoot,
    buildMs: performance.now() - started,
  };
}

/**
 * Returns the process-wide seed, building it on first use.
 *
 * @returns the seed
 */
export function getSeed(): Promise<Seed> {
  seed ??= createSeed();
  seed.catch(() => {
    seed = null;
  });
  return seed;
}
