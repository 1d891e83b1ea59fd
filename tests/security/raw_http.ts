/**
 * Raw HTTP/1.1 over `Deno.connect` to a loopback port, for requests the
 * `Request` constructor would normalize or refuse. Connects to 127.0.0.1
 * only.
 *
 * @module
 */

/** A parsed raw response. */
export interface RawResponse {
  /** Status code, or 0 when the server closed without answering. */
  status: number;
  /** Header lines, lower-cased names. */
  headers: Headers;
  /** Everything after the blank line, undecoded. */
  body: string;
}

/**
 * Sends one request with `Connection: close` and reads until the server
 * closes or `timeoutMs` passes.
 *
 * @param port The loopback port.
 * @param head Request line and header lines, without the final CRLF CRLF.
 * @param body Bytes after the header block.
 * @param timeoutMs Longest wait for the whole answer.
 * @returns The response.
 */
export async function rawRequest(
  port: number,
  head: string,
  body = "",
  timeoutMs = 5000,
): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }, timeoutMs);
  const chunks: Uint8Array[] = [];
  try {
    const bytes = new TextEncoder().encode(
      `${head}\r\nConnection: close\r\n\r\n${body}`,
    );
    try {
      let written = 0;
      while (written < bytes.length) {
        written += await conn.write(bytes.subarray(written));
      }
    } catch {
      // The server may answer and close before reading everything.
    }
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        break;
      }
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer or the peer
    }
  }
  return parse(new TextDecoder().decode(concat(chunks)));
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function parse(text: string): RawResponse {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return { status: 0, headers: new Headers(), body: text };
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
  }
  return { status, headers, body: text.slice(end + 4) };
}
