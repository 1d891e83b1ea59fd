/**
 * Test content served by the upstream: pseudo-random blobs and an OCI image
 * manifest that references them, written once per run into a temp folder.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** OCI image manifest media type served for the manifest. */
export const MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";

/** Content type served for blobs. */
export const BLOB_MEDIA_TYPE = "application/octet-stream";

/** Repository name clients ask for. */
export const REPOSITORY = "library/bench";

/** Tag of the manifest. */
export const TAG = "latest";

/** One file served by the upstream. */
export interface ServedFile {
  /** `sha256:<hex>` of the content. */
  readonly digest: string;
  /** Size in bytes. */
  readonly size: number;
  /** Absolute path of the file. */
  readonly path: string;
  /** Content-Type the upstream sends. */
  readonly mediaType: string;
}

/** Everything the upstream serves. */
export interface Fixtures {
  readonly manifest: ServedFile;
  readonly config: ServedFile;
  readonly large: ServedFile;
  readonly parallel: readonly ServedFile[];
}

const CHUNK_BYTES = 4 * 1024 * 1024;
const RANDOM_CALL_BYTES = 65536;

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await file.write(data.subarray(written));
  }
}

async function writeRandomBlob(path: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(CHUNK_BYTES);
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
    mode: 0o644,
  });
  try {
    for (let offset = 0; offset < size; offset += CHUNK_BYTES) {
      const chunk = buffer.subarray(0, Math.min(CHUNK_BYTES, size - offset));
      for (let i = 0; i < chunk.length; i += RANDOM_CALL_BYTES) {
        crypto.getRandomValues(chunk.subarray(i, i + RANDOM_CALL_BYTES));
      }
      hash.update(chunk);
      await writeAll(file, chunk);
    }
  } finally {
    file.close();
  }
  return `sha256:${hash.digest("hex")}`;
}

async function writeSmallFile(
  path: string,
  content: Uint8Array,
  mediaType: string,
): Promise<ServedFile> {
  await Deno.writeFile(path, content, { mode: 0o644 });
  const digest = `sha256:${createHash("sha256").update(content).digest("hex")}`;
  return { digest, size: content.length, path, mediaType };
}

async function randomBlob(
  dir: string,
  name: string,
  size: number,
): Promise<ServedFile> {
  const path = `${dir}/${name}`;
  const digest = await writeRandomBlob(path, size);
  return { digest, size, path, mediaType: BLOB_MEDIA_TYPE };
}

function descriptor(file: ServedFile, mediaType: string): object {
  return { mediaType, digest: file.digest, size: file.size };
}

/**
 * Writes the blobs and the manifest into `dir` (which must exist).
 * Blobs are distinct pseudo-random content, so every digest is real.
 */
export async function createFixtures(
  dir: string,
  sizes: {
    readonly largeBlobBytes: number;
    readonly parallelBlobBytes: number;
    readonly parallelStreams: number;
  },
): Promise<Fixtures> {
  const encoder = new TextEncoder();
  const config = await writeSmallFile(
    `${dir}/config.json`,
    encoder.encode(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [] },
    })),
    "application/vnd.oci.image.config.v1+json",
  );
  const large = await randomBlob(dir, "large.bin", sizes.largeBlobBytes);
  const parallel: ServedFile[] = [];
  for (let i = 0; i < sizes.parallelStreams; i++) {
    parallel.push(
      await randomBlob(dir, `parallel-${i}.bin`, sizes.parallelBlobBytes),
    );
  }
  const layerType = "application/vnd.oci.image.layer.v1.tar+gzip";
  const manifestJson = JSON.stringify(
    {
      schemaVersion: 2,
      mediaType: MANIFEST_MEDIA_TYPE,
      config: descriptor(config, config.mediaType),
      layers: [large, ...parallel].map((b) => descriptor(b, layerType)),
    },
    null,
    3,
  );
  const manifest = await writeSmallFile(
    `${dir}/manifest.json`,
    encoder.encode(manifestJson),
    MANIFEST_MEDIA_TYPE,
  );
  return { manifest, config, large, parallel };
}

/** Every blob of the fixtures (config, large, parallel). */
export function allBlobs(fixtures: Fixtures): ServedFile[] {
  return [fixtures.config, fixtures.large, ...fixtures.parallel];
}
