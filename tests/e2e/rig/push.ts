/**
 * Pushes the built images straight into the real registry with a
 * self-minted push token (blob upload POST + PUT, then manifests).
 *
 * @module
 */

import type { Descriptor, ImageSet, SeedImage } from "./images.ts";
import { type Es256Signer, nowSeconds, signEs256 } from "./jwt.ts";

/** Where and how to push. */
export interface PushTarget {
  /** Registry origin, e.g. `http://127.0.0.1:5000`. */
  origin: string;
  /** Token signer trusted by the registry. */
  signer: Es256Signer;
  /** Registry token issuer. */
  issuer: string;
  /** Registry token service. */
  service: string;
}

/**
 * Mints a registry token granting `actions` on `repository`.
 *
 * @param target signer, issuer and service
 * @param repository upstream repository name
 * @param actions e.g. `["pull", "push"]`
 * @param ttlSeconds lifetime
 * @returns compact JWS
 */
export function mintRegistryToken(
  target: Pick<PushTarget, "signer" | "issuer" | "service">,
  repository: string,
  actions: string[],
  ttlSeconds = 600,
): Promise<string> {
  const now = nowSeconds();
  return signEs256(target.signer, {
    iss: target.issuer,
    sub: "e2e-rig",
    aud: target.service,
    iat: now,
    nbf: now - 5,
    exp: now + ttlSeconds,
    jti: crypto.randomUUID(),
    access: [{ type: "repository", name: repository, actions }],
  });
}

async function expectStatus(
  res: Response,
  ok: number[],
  what: string,
): Promise<void> {
  if (!ok.includes(res.status)) {
    throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  }
  await res.body?.cancel();
}

async function pushBlob(
  base: string,
  auth: HeadersInit,
  images: ImageSet,
  desc: Descriptor,
): Promise<void> {
  const head = await fetch(`${base}/blobs/${desc.digest}`, {
    method: "HEAD",
    headers: auth,
  });
  await head.body?.cancel();
  if (head.status === 200) return;
  const start = await fetch(`${base}/blobs/uploads/`, {
    method: "POST",
    headers: auth,
  });
  await expectStatus(start, [202], `start upload ${desc.digest}`);
  const location = new URL(start.headers.get("location")!, base);
  location.searchParams.set("digest", desc.digest);
  const body = await Deno.readFile(images.blobPath(desc.digest));
  const put = await fetch(location, {
    method: "PUT",
    headers: {
      ...auth,
      "content-type": "application/octet-stream",
    },
    body,
  });
  await expectStatus(put, [201], `upload ${desc.digest}`);
}

async function pushManifest(
  base: string,
  auth: HeadersInit,
  images: ImageSet,
  desc: Descriptor,
  reference: string,
): Promise<void> {
  const body = await Deno.readFile(images.blobPath(desc.digest));
  const res = await fetch(`${base}/manifests/${reference}`, {
    method: "PUT",
    headers: { ...auth, "content-type": desc.mediaType },
    body,
  });
  await expectStatus(res, [201], `put manifest ${reference}`);
  const got = res.headers.get("docker-content-digest");
  if (got !== desc.digest) {
    throw new Error(`registry stored ${got}, expected ${desc.digest}`);
  }
}

/**
 * Pushes one image under its own prefix (blobs, platform manifests, then
 * the tag and any extra tags).
 *
 * @param target registry and credentials
 * @param images the built image set (for blob bytes)
 * @param image the image to push
 */
export async function pushImage(
  target: PushTarget,
  images: ImageSet,
  image: SeedImage,
): Promise<void> {
  const repo = `${image.prefix}/${image.name}`;
  const token = await mintRegistryToken(target, repo, ["pull", "push"]);
  const auth = { authorization: `Bearer ${token}` };
  const base = `${target.origin}/v2/${repo}`;
  for (const m of image.manifests) {
    for (const blob of [m.config, ...m.layers]) {
      await pushBlob(base, auth, images, blob);
    }
  }
  if (
    image.manifests.length > 1 || image.manifests[0]!.digest !== image.digest
  ) {
    for (const m of image.manifests) {
      await pushManifest(base, auth, images, m, m.digest);
    }
  }
  for (const tag of [image.tag, ...image.extraTags]) {
    await pushManifest(base, auth, images, image, tag);
  }
}
