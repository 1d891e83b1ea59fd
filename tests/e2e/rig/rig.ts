/**
 * The whole rig for one test file: the real registry (on the shared seed
 * storage), the fake ACR with its storage origin, and the fake Entra ID
 * (`az` script and managed identity endpoint).
 *
 * @module
 */

import { type FakeAcr, type FakeAcrOptions, startFakeAcr } from "./fake_acr.ts";
import {
  createFakeAz,
  type FakeAz,
  FakeEntra,
  type FakeMsi,
  startFakeMsi,
} from "./fake_entra.ts";
import type { ImageSet } from "./images.ts";
import { type Registry, startRegistry } from "./registry.ts";
import { getSeed, ISSUER, keepTemp, PREFIX, type Seed } from "./seed.ts";

/** Options for {@linkcode startRig}. */
export type RigOptions = Partial<
  Pick<
    FakeAcrOptions,
    | "anonymous"
    | "accessTokenTtlSeconds"
    | "refreshTokenTtlSeconds"
    | "redirectTtlSeconds"
    | "redirectBlobs"
    | "grants"
  >
>;

/** Everything upstream of the proxy. */
export interface Rig {
  /** Shared seed (key, images, storage). */
  seed: Seed;
  /** Images with the digests clients must reproduce. */
  images: ImageSet;
  /** Per-rig temp directory (logs, client state). */
  dir: string;
  /** Upstream repository prefix. */
  prefix: string;
  /** Fake Entra token issuer. */
  entra: FakeEntra;
  /** Fake `az`. */
  az: FakeAz;
  /** Fake managed identity endpoint. */
  msi: FakeMsi;
  /** Fake ACR login server and storage. */
  acr: FakeAcr;
  /** Real registry behind the fake ACR. */
  registry: Registry;
  /**
   * Every credential the fakes handed out so far (Entra tokens, ACR
   * refresh and access tokens, storage signatures): none may show up in
   * a proxy log.
   */
  secrets(): string[];
  /** Stops everything and removes the per-rig directory. */
  stop(): Promise<void>;
}

/**
 * Starts the rig (seed is built on first use in the process).
 *
 * @param options fake ACR behaviour
 * @returns the running rig
 */
export async function startRig(options: RigOptions = {}): Promise<Rig> {
  const seed = await getSeed();
  const dir = await Deno.makeTempDir({ prefix: "acr-e2e-rig-" });
  const entra = new FakeEntra();
  const az = await createFakeAz(`${dir}/az`, entra);
  const msi = startFakeMsi(entra);
  const acr = await startFakeAcr({
    ...options,
    signer: seed.pki.signer,
    issuer: ISSUER,
    verifyEntraToken: (t) => entra.verify(t),
  });
  let registry: Registry;
  try {
    registry = await startRegistry({
      workDir: dir,
      rootDir: seed.registryRoot,
      realm: `${acr.origin}/oauth2/token`,
      service: acr.service,
      issuer: ISSUER,
      bundlePath: seed.pki.bundlePath,
    });
  } catch (err) {
    await acr.stop();
    await msi.stop();
    throw err;
  }
  acr.setUpstream(registry.origin, seed.registryRoot);
  return {
    seed,
    images: seed.images,
    dir,
    prefix: PREFIX,
    entra,
    az,
    msi,
    acr,
    registry,
    secrets: () => [...entra.minted(), ...acr.secrets()],
    async stop() {
      await registry.stop();
      await acr.stop();
      await msi.stop();
      if (!keepTemp()) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  };
}
