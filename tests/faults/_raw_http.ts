/**
 * Just enough HTTP/1.1 over raw sockets for the fault suite: reading a
 * request head and body from a connection, writing a response head, and a
 * one-request-per-connection client that reports exactly what arrived.
 *
 * @module
 */

const enc = new TextEncoder();
const dec = new TextDecoder();
const CRLFCRLF = [13, 10, 13, 10];

/** A connection both ends of this file read from and write to. */
export type Stream = Deno.Conn | Deno.TlsConn;

/** A request head as it arrived. */
export interface RequestHead {
  /** Method, as sent. */
  method: string;
  /** Request target: path and query. */
  target: string;
  /** Header fields. */
  headers: Headers;
}

/** A response as a raw client saw it. */
export interface RawResponse {
  /** Status code. */
  status: number;
  /** Header fields. */
  headers: Headers;
  /** The decoded body bytes (chunked framing removed). */
  body: Uint8Array;
  /** Whether the body ended as its framing says it should. */
  complete: boolean;
}

/**
 * Reads from a connection through a buffer, so a head can be split from
 * the bytes after it.
 */
export class ConnReader {
  #conn: Stream;
  #buf: Uint8Array = new Uint8Array(0);

  /** @param conn The connection to read. */
  constructor(conn: Stream) {
    this.#conn = conn;
  }

  /**
   * Reads one chunk into the buffer.
   *
   * @returns False at end of stream.
   */
  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.#conn.read(chunk);
    if (n === null) return false;
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }

  /**
   * Reads up to and including the blank line ending a head.
   *
   * @param limit Most head bytes accepted.
   * @returns The head text, or undefined at end of stream.
   * @throws {RangeError} When the head is longer than `limit`.
   * @throws {SyntaxError} When the bytes are not an HTTP/1.x head.
   */
  async readHead(limit = 64 * 1024): Promise<string | undefined> {
    for (;;) {
      // An HTTP/1.x message starts with a token; anything else (a TLS
      // ClientHello, say) is refused at once, as real servers do.
      const first = this.#buf[0];
      if (first !== undefined && (first < 0x41 || first > 0x5a)) {
        throw new SyntaxError("not an HTTP/1.x message");
      }
      const end = indexOf(this.#buf, CRLFCRLF);
      if (end >= 0) {
        const head = dec.decode(this.#buf.subarray(0, end));
        this.#buf = this.#buf.subarray(end + 4);
        return head;
      }
      if (this.#buf.length > limit) throw new RangeError("head too large");
      if (!(await this.#fill())) return undefined;
    }
  }

  /**
   * Reads exactly `n` bytes, or fewer at end of stream.
   *
   * @param n How many bytes.
   * @returns The bytes.
   */
  async readBytes(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.#fill())) break;
    }
    const out = this.#buf.subarray(0, Math.min(n, this.#buf.length));
    this.#buf = this.#buf.subarray(out.length);
    return out;
  }

  /**
   * Reads one CRLF-terminated line.
   *
   * @returns The line without CRLF, or undefined at end of stream.
   */
  async readLine(): Promise<string | undefined> {
    for (;;) {
      const end = indexOf(this.#buf, [13, 10]);
      if (end >= 0) {
        const line = dec.decode(this.#buf.subarray(0, end));
        this.#buf = this.#buf.subarray(end + 2);
        return line;
      }
      if (!(await this.#fill())) return undefined;
    }
  }

  /**
   * Reads everything until the peer closes, tolerating a reset.
   *
   * @returns The bytes and whether the stream ended cleanly.
   */
  async readToEnd(): Promise<{ bytes: Uint8Array; clean: boolean }> {
    let clean = true;
    try {
      while (await this.#fill()) { /* keep reading */ }
    } catch {
      clean = false;
    }
    const bytes = this.#buf;
    this.#buf = new Uint8Array(0);
    return { bytes, clean };
  }
}

/**
 * Parses a request head.
 *
 * @param text The head without its final blank line.
 * @returns The method, target and headers, or undefined if malformed.
 */
export function parseRequestHead(text: string): RequestHead | undefined {
  const [line = "", ...fields] = text.split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(line);
  if (!m) return undefined;
  const headers = parseFields(fields);
  if (!headers) return undefined;
  return { method: m[1]!, target: m[2]!, headers };
}

/**
 * Serializes a response head.
 *
 * @param status The status code.
 * @param headers The header fields, written as given.
 * @returns The bytes of the status line, fields and blank line.
 */
export function responseHead(status: number, headers: Headers): Uint8Array {
  let text = `HTTP/1.1 ${status} ${reason(status)}\r\n`;
  for (const [k, v] of headers) text += `${k}: ${v}\r\n`;
  return enc.encode(text + "\r\n");
}

/**
 * Writes all of `bytes`.
 *
 * @param conn Where to write.
 * @param bytes What to write.
 * @returns When everything was written.
 */
export async function writeAll(conn: Stream, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

/**
 * Sends one request on a new connection with `Connection: close` and
 * reads the whole answer, reporting whether its framing was honoured.
 *
 * @param addr Where to connect.
 * @param method The method.
 * @param target Path and query.
 * @param extra Extra request header fields.
 * @returns The response.
 */
export async function requestOnce(
  addr: { hostname: string; port: number },
  method: string,
  target: string,
  extra: Record<string, string> = {},
): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: addr.hostname, port: addr.port });
  try {
    let head = `${method} ${target} HTTP/1.1\r\n` +
      `host: ${addr.hostname}:${addr.port}\r\nconnection: close\r\n`;
    for (const [k, v] of Object.entries(extra)) head += `${k}: ${v}\r\n`;
    await writeAll(conn, enc.encode(head + "\r\n"));
    const reader = new ConnReader(conn);
    const text = await reader.readHead();
    if (text === undefined) throw new Error("connection closed before a head");
    const [line = "", ...fields] = text.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(line);
    const headers = parseFields(fields);
    if (!m || !headers) throw new Error(`malformed response head: ${line}`);
    const status = Number(m[1]);
    if (method === "HEAD" || status === 204 || status === 304) {
      return { status, headers, body: new Uint8Array(0), complete: true };
    }
    const length = headers.get("content-length");
    if (length !== null) {
      const body = await reader.readBytes(Number(length));
      return {
        status,
        headers,
        body,
        complete: body.length === Number(length),
      };
    }
    if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
      return { status, headers, ...await readChunked(reader) };
    }
    const { bytes, clean } = await reader.readToEnd();
    return { status, headers, body: bytes, complete: clean };
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

async function readChunked(
  reader: ConnReader,
): Promise<{ body: Uint8Array; complete: boolean }> {
  const parts: Uint8Array[] = [];
  for (;;) {
    const line = await reader.readLine();
    if (line === undefined) return { body: concat(parts), complete: false };
    const size = parseInt(line.split(";")[0]!, 16);
    if (!Number.isFinite(size)) return { body: concat(parts), complete: false };
    if (size === 0) {
      const trailer = await reader.readLine();
      return { body: concat(parts), complete: trailer !== undefined };
    }
    const data = await reader.readBytes(size);
    parts.push(data);
    if (data.length < size || (await reader.readLine()) === undefined) {
      return { body: concat(parts), complete: false };
    }
  }
}

function parseFields(fields: string[]): Headers | undefined {
  const headers = new Headers();
  for (const field of fields) {
    const colon = field.indexOf(":");
    if (colon <= 0) return undefined;
    try {
      headers.append(
        field.slice(0, colon).trim(),
        field.slice(colon + 1).trim(),
      );
    } catch {
      return undefined;
    }
  }
  return headers;
}

/**
 * Joins byte arrays.
 *
 * @param parts The pieces.
 * @returns One array.
 */
export function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function indexOf(hay: Uint8Array, needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

function reason(status: number): string {
  const reasons: Record<number, string> = {
    200: "OK",
    206: "Partial Content",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
  };
  return reasons[status] ?? "Status";
}
