/**
 * A tiny deterministic ustar writer and gzip/sha256 helpers for building
 * image layers in memory (mtime 0, uid/gid 0, sorted entries).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

/** One entry of a layer tarball. */
export interface TarEntry {
  /** Relative path without leading `./` or `/`, e.g. `bin/hello`. */
  path: string;
  /** Directory or regular file. */
  type: "dir" | "file";
  /** Permission bits (default 0o755 for dirs, 0o644 for files). */
  mode?: number;
  /** File content. */
  content?: Uint8Array;
}

const encoder = new TextEncoder();

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(entry: TarEntry, size: number): Uint8Array {
  const h = new Uint8Array(512);
  const put = (text: string, offset: number, width: number): void => {
    const bytes = encoder.encode(text);
    if (bytes.length > width) {
      throw new RangeError(`tar field too long: ${text}`);
    }
    h.set(bytes, offset);
  };
  const name = entry.type === "dir" ? entry.path + "/" : entry.path;
  put(name, 0, 100);
  put(octal(entry.mode ?? (entry.type === "dir" ? 0o755 : 0o644), 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(0, 12), 136, 12);
  put("        ", 148, 8);
  put(entry.type === "dir" ? "5" : "0", 156, 1);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  put("root", 265, 32);
  put("root", 297, 32);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
  return h;
}

/**
 * Builds an uncompressed tar archive from entries, sorted by path.
 *
 * @param entries files and directories
 * @returns the tarball bytes
 */
export function buildTar(entries: TarEntry[]): Uint8Array {
  const sorted = [...entries].sort((a, b) => a.path < b.path ? -1 : 1);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (const entry of sorted) {
    const content = entry.type === "file"
      ? entry.content ?? new Uint8Array()
      : new Uint8Array();
    const h = header(entry, content.length);
    chunks.push(h, content);
    const pad = (512 - content.length % 512) % 512;
    chunks.push(new Uint8Array(pad));
    total += 512 + content.length + pad;
  }
  chunks.push(new Uint8Array(1024));
  total += 1024;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/**
 * Gzips bytes with zlib (deterministic for a given zlib build). Level 0
 * stores the data uncompressed inside the gzip framing: right for random
 * data, where compressing 64 MiB costs seconds and saves nothing.
 *
 * @param data raw bytes
 * @param level zlib level, 0 (store) to 9 (default)
 * @returns gzip bytes
 */
export function gzip(data: Uint8Array, level = 9): Uint8Array {
  return new Uint8Array(gzipSync(data, { level }));
}

/**
 * `sha256:<hex>` digest of bytes.
 *
 * @param data bytes
 * @returns OCI digest string
 */
export function sha256Digest(data: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(data).digest("hex");
}

/**
 * `sha256:<hex>` digest of a file, read in chunks.
 *
 * @param path file path
 * @returns OCI digest string
 */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return "sha256:" + hash.digest("hex");
}

/**
 * `sha256:<hex>` digest and byte count of a stream, consumed fully.
 *
 * @param stream byte stream
 * @returns digest and size
 */
export async function sha256Stream(
  stream: ReadableStream<Uint8Array>,
): Promise<{ digest: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: "sha256:" + hash.digest("hex"), size };
}

/**
 * Deterministic pseudo-random bytes (splitmix32-style mixer over a counter)
 * that gzip cannot shrink.
 *
 * @param length number of bytes (multiple of 4 is fastest)
 * @param seed 32-bit seed
 * @returns the bytes
 */
export function prngBytes(length: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  let s = seed >>> 0;
  for (let i = 0; i < words.length; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    words[i] = (z ^ (z >>> 14)) >>> 0;
  }
  return new Uint8Array(words.buffer, 0, length);
}
