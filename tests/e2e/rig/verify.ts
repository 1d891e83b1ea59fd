/**
 * Checks that what a client stored is byte-for-byte what was pushed.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ManifestInfo, SeedImage } from "./images.ts";
import { sha256File } from "./tar.ts";

/** Content of an OCI layout written by a client (e.g. `podman save`). */
export interface LayoutContent {
  /** Digest of the single `index.json` entry. */
  top: string;
  /** Media type of that entry. */
  topMediaType: string;
  /** Every blob digest present (each re-hashed and checked). */
  blobs: Set<string>;
}

/**
 * Reads an OCI layout, re-hashes every blob (throws on a mismatch) and
 * returns the top-level digest.
 *
 * @param dir layout directory
 * @returns top digest and the verified blob set
 */
export async function readLayout(dir: string): Promise<LayoutContent> {
  const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  assert.equal(index.manifests.length, 1, `${dir}/index.json has one entry`);
  const blobs = new Set<string>();
  for await (const entry of Deno.readDir(`${dir}/blobs/sha256`)) {
    const digest = `sha256:${entry.name}`;
    const actual = await sha256File(`${dir}/blobs/sha256/${entry.name}`);
    assert.equal(actual, digest, `blob ${entry.name} content matches its name`);
    blobs.add(digest);
  }
  return {
    top: index.manifests[0].digest,
    topMediaType: index.manifests[0].mediaType,
    blobs,
  };
}

/** Content of a `skopeo copy ... dir:DIR` destination. */
export interface DirContent {
  /** Digest of `manifest.json` (what the reference resolved to). */
  top: string;
  /** Digests of every blob and per-instance manifest (each re-hashed). */
  blobs: Set<string>;
}

/**
 * Reads a skopeo `dir:` destination (which keeps manifests byte for
 * byte), re-hashes every file named by a digest (throws on a mismatch).
 *
 * @param dir destination directory
 * @returns the digest of `manifest.json` and the verified blob set
 */
export async function readCopyDir(dir: string): Promise<DirContent> {
  const blobs = new Set<string>();
  for await (const entry of Deno.readDir(dir)) {
    const m = entry.name.match(/^([a-f0-9]{64})(\.manifest\.json)?$/);
    if (!m) continue;
    const digest = `sha256:${m[1]}`;
    const actual = await sha256File(`${dir}/${entry.name}`);
    assert.equal(actual, digest, `${entry.name} content matches its name`);
    blobs.add(digest);
  }
  return { top: await sha256File(`${dir}/manifest.json`), blobs };
}

/**
 * Asserts a `dir:` copy holds exactly the platform manifest `expected`
 * (as resolved by the client) with its config and layers.
 *
 * @param dir destination directory
 * @param expected the manifest the client should have resolved
 */
export async function assertCopyHasManifest(
  dir: string,
  expected: ManifestInfo,
): Promise<void> {
  const got = await readCopyDir(dir);
  assert.equal(got.top, expected.digest, "manifest digest");
  const want = [
    expected.config.digest,
    ...expected.layers.map((l) => l.digest),
  ];
  assert.deepEqual(
    [...got.blobs].sort(),
    [...want].sort(),
    "config and layer blobs",
  );
}

/**
 * Asserts a `dir:` copy made with `--all` holds a whole image as pushed.
 *
 * @param dir destination directory
 * @param image the image pushed
 */
export async function assertCopyHasImage(
  dir: string,
  image: SeedImage,
): Promise<void> {
  const got = await readCopyDir(dir);
  assert.equal(got.top, image.digest, "top-level digest");
  const want = new Set<string>();
  for (const m of image.manifests) {
    if (m.digest !== image.digest) want.add(m.digest);
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
      want.add(d);
    }
  }
  assert.deepEqual([...got.blobs].sort(), [...want].sort(), "every blob");
}

/**
 * Asserts an image store's view (config digest, diff IDs, repo digests)
 * matches what was pushed.
 *
 * @param got what the client reports
 * @param expected platform manifest pushed
 * @param topDigest digest the tag/digest reference resolved to
 */
export function assertStoredImage(
  got: { id: string; diffIds: string[]; repoDigests: string[] },
  expected: ManifestInfo,
  topDigest: string,
): void {
  assert.equal(
    got.id.replace(/^sha256:/, ""),
    expected.config.digest.replace(/^sha256:/, ""),
    "image ID is the config digest",
  );
  assert.deepEqual(got.diffIds, expected.diffIds, "layer diff IDs");
  assert.ok(
    got.repoDigests.some((d) => d.endsWith(`@${topDigest}`)),
    `repo digests ${got.repoDigests.join(" ")} include ${topDigest}`,
  );
}
