/**
 * Deterministic test images built in TypeScript and written as an OCI
 * image layout: a multi-arch OCI index, a single-arch OCI image, a Docker
 * schema 2 image, a Docker manifest list, an image with one incompressible
 * layer of 64 MiB+, and an image for a second cache rule (`ghcr/`).
 *
 * @module
 */

import {
  buildTar,
  gzip,
  prngBytes,
  sha256Digest,
  type TarEntry,
} from "./tar.ts";

/** Media types used by the test images. */
export const MediaType = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
} as const;

/** A content descriptor. */
export interface Descriptor {
  /** Media type. */
  mediaType: string;
  /** `sha256:<hex>` */
  digest: string;
  /** Byte size. */
  size: number;
}

/** One platform-specific image manifest. */
export interface ManifestInfo extends Descriptor {
  /** Platform it runs on. */
  platform: { os: string; architecture: string };
  /** Config blob. */
  config: Descriptor;
  /** Layer blobs, in order. */
  layers: Descriptor[];
  /** Uncompressed layer digests (config `rootfs.diff_ids`). */
  diffIds: string[];
}

/** An image as pushed, with every digest the clients must reproduce. */
export interface SeedImage {
  /** Client-side repository name, e.g. `library/busybox`. */
  name: string;
  /** Cache rule prefix it is pushed under (`hub` or `ghcr`). */
  prefix: string;
  /** Tag. */
  tag: string;
  /** More tags pointing at the same digest (for tag list paging). */
  extraTags: string[];
  /** Digest of what the tag points at (index or manifest). */
  digest: string;
  /** Media type of what the tag points at. */
  mediaType: string;
  /** Byte size of what the tag points at. */
  size: number;
  /** Platform manifests (one for single-arch images). */
  manifests: ManifestInfo[];
  /** The manifest a linux/amd64 client resolves to. */
  amd64: ManifestInfo;
}

/** The built image set. */
export interface ImageSet {
  /** OCI image layout directory holding every blob. */
  layoutDir: string;
  /** `library/busybox:1.36`: OCI index, amd64 + arm64, 3 layers each. */
  busybox: SeedImage;
  /** `someorg/tool:1.0`: OCI manifest, 2 layers. */
  tool: SeedImage;
  /** `library/alpine:3.19`: Docker schema 2 manifest, 2 layers. */
  alpine: SeedImage;
  /** `library/big:1.0`: OCI manifest with one layer of at least 64 MiB. */
  big: SeedImage;
  /** `library/debian:12`: Docker manifest list, amd64 + arm64, 2 layers. */
  debian: SeedImage;
  /** `org/app:1.0` under `ghcr/`: OCI index, amd64 + arm64, 2 layers each. */
  app: SeedImage;
  /** Path of a blob (or manifest) in the layout. */
  blobPath(digest: string): string;
  /** Every image (check `prefix` for where it lives upstream). */
  all(): SeedImage[];
}

const encoder = new TextEncoder();
const EPOCH = "1970-01-01T00:00:00Z";

/** Size of the random file in the big layer: 64 MiB plus 4 KiB. */
export const BIG_FILE_BYTES = 64 * 1024 * 1024 + 4096;

class LayoutWriter {
  readonly dir: string;
  readonly refs: {
    digest: string;
    mediaType: string;
    size: number;
    ref: string;
  }[] = [];

  constructor(dir: string) {
    this.dir = dir;
  }

  path(digest: string): string {
    return `${this.dir}/blobs/sha256/${digest.slice("sha256:".length)}`;
  }

  async put(mediaType: string, bytes: Uint8Array): Promise<Descriptor> {
    const digest = sha256Digest(bytes);
    await Deno.writeFile(this.path(digest), bytes);
    return { mediaType, digest, size: bytes.length };
  }

  async putJson(mediaType: string, value: unknown): Promise<Descriptor> {
    return await this.put(mediaType, encoder.encode(JSON.stringify(value)));
  }
}

interface LayerSpec {
  entries: TarEntry[];
  comment: string;
  /** gzip level (default 9; 0 stores random data quickly). */
  level?: number;
}

function text(content: string): Uint8Array {
  return encoder.encode(content);
}

async function buildManifest(
  w: LayoutWriter,
  docker: boolean,
  platform: { os: string; architecture: string },
  layers: LayerSpec[],
): Promise<ManifestInfo> {
  const layerDescs: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const layer of layers) {
    const tar = buildTar(layer.entries);
    diffIds.push(sha256Digest(tar));
    layerDescs.push(
      await w.put(
        docker ? MediaType.dockerLayer : MediaType.ociLayer,
        gzip(tar, layer.level),
      ),
    );
  }
  const config = await w.putJson(
    docker ? MediaType.dockerConfig : MediaType.ociConfig,
    {
      architecture: platform.architecture,
      os: platform.os,
      created: EPOCH,
      config: { Env: ["PATH=/bin:/usr/bin"], Cmd: ["/bin/hello"] },
      rootfs: { type: "layers", diff_ids: diffIds },
      history: layers.map((l) => ({ created: EPOCH, created_by: l.comment })),
    },
  );
  const manifest = await w.putJson(
    docker ? MediaType.dockerManifest : MediaType.ociManifest,
    {
      schemaVersion: 2,
      mediaType: docker ? MediaType.dockerManifest : MediaType.ociManifest,
      config,
      layers: layerDescs,
    },
  );
  return { ...manifest, platform, config, layers: layerDescs, diffIds };
}

function smallLayers(name: string, arch: string, count: number): LayerSpec[] {
  const specs: LayerSpec[] = [
    {
      comment: `${name} base`,
      entries: [
        { path: "bin", type: "dir" },
        {
          path: "bin/hello",
          type: "file",
          mode: 0o755,
          content: text(`#!/bin/sh\necho hello from ${name} ${arch}\n`),
        },
        { path: "etc", type: "dir" },
        {
          path: "etc/os-release",
          type: "file",
          content: text(`NAME=${name}\nARCH=${arch}\n`),
        },
      ],
    },
    {
      comment: `${name} motd`,
      entries: [
        { path: "etc", type: "dir" },
        {
          path: "etc/motd",
          type: "file",
          content: text(`welcome to ${name} on ${arch}\n`.repeat(50)),
        },
      ],
    },
    {
      comment: `${name} docs`,
      entries: [
        { path: "usr", type: "dir" },
        { path: "usr/share", type: "dir" },
        { path: `usr/share/${name}`, type: "dir" },
        {
          path: `usr/share/${name}/README`,
          type: "file",
          content: prngBytes(20_000, name.length * 7919 + arch.length),
        },
      ],
    },
  ];
  return specs.slice(0, count);
}

function seedImage(
  name: string,
  tag: string,
  top: Descriptor,
  manifests: ManifestInfo[],
  more: { prefix?: string; extraTags?: string[] } = {},
): SeedImage {
  const amd64 = manifests.find((m) => m.platform.architecture === "amd64")!;
  return {
    name,
    prefix: more.prefix ?? "hub",
    tag,
    extraTags: more.extraTags ?? [],
    ...top,
    manifests,
    amd64,
  };
}

async function putIndex(
  w: LayoutWriter,
  mediaType: string,
  manifests: ManifestInfo[],
): Promise<Descriptor> {
  return await w.putJson(mediaType, {
    schemaVersion: 2,
    mediaType,
    manifests: manifests.map((m) => ({
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      platform: m.platform,
    })),
  });
}

/**
 * Builds every test image into an OCI layout under `dir`. Digests are the
 * same on every run with the same Deno build.
 *
 * @param dir empty directory for the layout
 * @returns image metadata and blob paths
 */
export async function buildImages(dir: string): Promise<ImageSet> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  const w = new LayoutWriter(dir);
  const linux = (
    architecture: string,
  ): { os: string; architecture: string } => ({
    os: "linux",
    architecture,
  });

  const bbAmd = await buildManifest(
    w,
    false,
    linux("amd64"),
    smallLayers("busybox", "amd64", 3),
  );
  const bbArm = await buildManifest(
    w,
    false,
    linux("arm64"),
    smallLayers("busybox", "arm64", 3),
  );
  const index = await putIndex(w, MediaType.ociIndex, [bbAmd, bbArm]);
  const busybox = seedImage("library/busybox", "1.36", index, [bbAmd, bbArm]);

  const toolM = await buildManifest(
    w,
    false,
    linux("amd64"),
    smallLayers("tool", "amd64", 2),
  );
  const tool = seedImage("someorg/tool", "1.0", toolM, [toolM], {
    extraTags: ["1.1", "1.2", "2.0", "latest"],
  });

  const alpineM = await buildManifest(
    w,
    true,
    linux("amd64"),
    smallLayers("alpine", "amd64", 2),
  );
  const alpine = seedImage("library/alpine", "3.19", alpineM, [alpineM]);

  const bigM = await buildManifest(w, false, linux("amd64"), [
    smallLayers("big", "amd64", 1)[0]!,
    {
      comment: "big random",
      level: 0,
      entries: [
        { path: "data", type: "dir" },
        {
          path: "data/random.bin",
          type: "file",
          content: prngBytes(BIG_FILE_BYTES, 0x5eed),
        },
      ],
    },
  ]);
  const big = seedImage("library/big", "1.0", bigM, [bigM]);

  const debAmd = await buildManifest(
    w,
    true,
    linux("amd64"),
    smallLayers("debian", "amd64", 2),
  );
  const debArm = await buildManifest(
    w,
    true,
    linux("arm64"),
    smallLayers("debian", "arm64", 2),
  );
  const list = await putIndex(w, MediaType.dockerList, [debAmd, debArm]);
  const debian = seedImage("library/debian", "12", list, [debAmd, debArm]);

  const appAmd = await buildManifest(
    w,
    false,
    linux("amd64"),
    smallLayers("app", "amd64", 2),
  );
  const appArm = await buildManifest(
    w,
    false,
    linux("arm64"),
    smallLayers("app", "arm64", 2),
  );
  const appIndex = await putIndex(w, MediaType.ociIndex, [appAmd, appArm]);
  const app = seedImage("org/app", "1.0", appIndex, [appAmd, appArm], {
    prefix: "ghcr",
  });

  const all = [busybox, tool, alpine, big, debian, app];
  await Deno.writeTextFile(
    `${dir}/oci-layout`,
    JSON.stringify({ imageLayoutVersion: "1.0.0" }),
  );
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: all.map((img) => ({
        mediaType: img.mediaType,
        digest: img.digest,
        size: img.size,
        annotations: {
          "org.opencontainers.image.ref.name": `${img.prefix}-${
            img.name.replace("/", "-")
          }-${img.tag}`,
        },
      })),
    }),
  );
  return {
    layoutDir: dir,
    busybox,
    tool,
    alpine,
    big,
    debian,
    app,
    blobPath: (digest) => w.path(digest),
    all: () => all,
  };
}

/**
 * Every blob digest an image consists of (manifests, configs, layers).
 *
 * @param image a seed image
 * @returns digests, top-level first
 */
export function imageDigests(image: SeedImage): string[] {
  const out = new Set<string>([image.digest]);
  for (const m of image.manifests) {
    out.add(m.digest);
    out.add(m.config.digest);
    for (const l of m.layers) out.add(l.digest);
  }
  return [...out];
}
