/**
 * A client download as the fault suite judges it: status, the promised
 * length, the bytes that arrived, whether the body read failed, and when
 * each thing happened.
 *
 * @module
 */

import { concat } from "./_raw_http.ts";

/** What a client saw of one download. */
export interface Download {
  /** Response status. */
  status: number;
  /** Response headers. */
  headers: Headers;
  /** `Content-Length`, when the response had one. */
  contentLength: number | undefined;
  /** Body bytes received. */
  bytes: Uint8Array<ArrayBuffer>;
  /** Why the body read failed, if it did. */
  error?: string;
  /** `performance.now()` when the headers arrived. */
  headersAt: number;
  /** `performance.now()` when the last body bytes arrived. */
  lastByteAt: number;
  /** `performance.now()` when the body ended, failed or was given up. */
  endedAt: number;
}

/** Options for {@link download}. */
export interface DownloadOptions {
  /** Request headers. */
  headers?: Record<string, string>;
  /** Give up (abort the request) once this many bytes arrived. */
  abortAfterBytes?: number;
  /** Called after each chunk with the running total. */
  onProgress?: (received: number) => void;
  /** The HTTP client to use. */
  client?: Deno.HttpClient;
}

/**
 * GETs a URL and reads its body to the end or to the first failure.
 *
 * @param url What to fetch.
 * @param options Headers, an early abort, a progress callback.
 * @returns What arrived.
 * @throws {TypeError} When no response arrived at all.
 */
export async function download(
  url: string,
  options: DownloadOptions = {},
): Promise<Download> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: options.headers ?? {},
    signal: abort.signal,
    ...(options.client ? { client: options.client } : {}),
  });
  const headersAt = performance.now();
  const length = res.headers.get("content-length");
  const out: Download = {
    status: res.status,
    headers: res.headers,
    contentLength: length === null ? undefined : Number(length),
    bytes: new Uint8Array(0),
    headersAt,
    lastByteAt: headersAt,
    endedAt: headersAt,
  };
  if (!res.body) return out;
  const parts: Uint8Array[] = [];
  let received = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
      received += value.length;
      out.lastByteAt = performance.now();
      options.onProgress?.(received);
      if (
        options.abortAfterBytes !== undefined &&
        received >= options.abortAfterBytes
      ) {
        abort.abort();
        out.error = "aborted by the client";
        break;
      }
    }
  } catch (e) {
    out.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
  out.endedAt = performance.now();
  out.bytes = concat(parts);
  return out;
}

/**
 * Tells whether a download is one a client would take for a complete,
 * successful transfer.
 *
 * @param d The download.
 * @returns True when the body read ended cleanly with every promised byte
 * (or with no promise made).
 */
export function looksComplete(d: Download): boolean {
  if (d.error !== undefined) return false;
  return d.contentLength === undefined ||
    d.bytes.length === d.contentLength;
}
