/**
 * A fake ACR that misbehaves on command, for the fault suite. It speaks
 * HTTP/1.1 itself on a raw `Deno.listen` socket (or `Deno.listenTls`), so
 * it can do what a well-behaved server library will not: stall before the
 * headers, stall or hang up in the middle of a `Content-Length` body,
 * trickle a body, or answer token endpoints with 429/503. Requests without
 * a matching fault are answered by the in-memory {@link FakeAcr} from
 * `contrib/demo/fake_acr.ts`.
 *
 * Every request is recorded, with when the proxy closed the connection
 * before the answer was complete (which is how a cancelled upstream fetch
 * looks from this side). Every answer carries `Connection: close`, so one
 * connection is one request and a closed connection means exactly that
 * request was given up.
 *
 * @module
 */

import { FakeAcr, type FakeAcrOptions } from "../../contrib/demo/fake_acr.ts";
import {
  ConnReader,
  parseRequestHead,
  responseHead,
  type Stream,
  writeAll,
} from "./_raw_http.ts";

/** What to do instead of answering normally. */
export type Fault =
  /** Read the request, then never answer (until the peer hangs up). */
  | { kind: "stall-headers" }
  /** Send the head and `afterBytes` of the body, then go silent. */
  | { kind: "stall-body"; afterBytes: number }
  /** Send the head and `afterBytes` of the body, then close the socket. */
  | { kind: "close-body"; afterBytes: number }
  /** Send the whole body in `chunkBytes` pieces, `intervalMs` apart. */
  | { kind: "slow-body"; chunkBytes: number; intervalMs: number }
  /** Answer with this status and a registry-style JSON error. */
  | { kind: "status"; status: number; retryAfterSeconds?: number };

/** When a fault applies. */
export interface FaultRule {
  /** Only requests with this method; any when unset. */
  method?: string;
  /** Requests whose path and query match. */
  path: RegExp;
  /** What to do. */
  fault: Fault;
  /** For how many matching requests; unlimited when unset. */
  times?: number;
}

/** One request the upstream saw. */
export interface UpstreamRequest {
  /** Sequence number from 1. */
  id: number;
  /** Method. */
  method: string;
  /** Path and query. */
  path: string;
  /** Request headers. */
  headers: Headers;
  /** The body, when it was an HTML form (token requests). */
  form?: URLSearchParams;
  /** The fault applied, if any. */
  fault?: Fault["kind"];
  /** Status sent, once a head was sent. */
  status?: number;
  /** `performance.now()` when the request had been read. */
  receivedAt: number;
  /** Body bytes written so far. */
  bytesSent: number;
  /** `performance.now()` when the whole answer had been written. */
  completedAt?: number;
  /**
   * `performance.now()` when the peer closed the connection before the
   * answer was complete: the proxy cancelled this request.
   */
  peerClosedAt?: number;
}

/** One accepted connection. */
export interface ConnectionRecord {
  /** `performance.now()` when it was accepted. */
  openedAt: number;
  /** When the peer closed it; only tracked in silent mode. */
  peerClosedAt?: number;
}

/** Options for {@link MisbehavingUpstream}. */
export interface MisbehavingUpstreamOptions {
  /** Options for the fake ACR behind it. */
  acr?: FakeAcrOptions;
  /** Serve TLS with this PEM certificate chain and key. */
  tls?: { cert: string; key: string };
}

const enc = new TextEncoder();

/**
 * The misbehaving upstream. Start it with {@link MisbehavingUpstream.start},
 * stop it (like a crash: the port closes and open connections drop) with
 * {@link MisbehavingUpstream.stop}, and start it again on the same port.
 *
 * @example
 * ```ts ignore
 * const up = new MisbehavingUpstream({ acr: { anonymous: true } });
 * await up.acr.pushSampleImage("hub/library/hello", "latest");
 * up.start();
 * up.addFault({ path: /\/blobs\//, fault: { kind: "stall-headers" } });
 * ```
 */
export class MisbehavingUpstream {
  /** The fake ACR answering requests no fault applies to. */
  readonly acr: FakeAcr;
  /** Every request seen, in order. */
  readonly requests: UpstreamRequest[] = [];
  /** Every connection accepted, in order. */
  readonly connections: ConnectionRecord[] = [];
  /**
   * Accept connections but never read or write on them: a black hole
   * that also stalls TLS handshakes.
   */
  silent = false;
  #rules: FaultRule[] = [];
  #tls: { cert: string; key: string } | undefined;
  #listener: Deno.Listener | undefined;
  #conns = new Set<Stream>();
  #closedHere = new WeakSet<Stream>();
  #stopped = Promise.withResolvers<void>();
  #serving: Promise<void> | undefined;
  #port = 0;

  /** @param options The fake ACR's options and optional TLS. */
  constructor(options: MisbehavingUpstreamOptions = {}) {
    this.acr = new FakeAcr(options.acr ?? {});
    this.#tls = options.tls;
  }

  /** The port it listens on (kept across restarts). */
  get port(): number {
    return this.#port;
  }

  /** `http(s)://127.0.0.1:<port>`. */
  get origin(): string {
    return `${this.#tls ? "https" : "http"}://127.0.0.1:${this.#port}`;
  }

  /** Whether it is listening. */
  get listening(): boolean {
    return this.#listener !== undefined;
  }

  /**
   * Starts listening on 127.0.0.1.
   *
   * @param port The port; the previous one when restarting, else any.
   * @param tls Replace the TLS setting: a certificate, or `null` for plain
   * HTTP on a port clients expect TLS on.
   * @returns The port.
   */
  start(
    port: number = this.#port,
    tls?: { cert: string; key: string } | null,
  ): number {
    if (this.#listener) throw new Error("already listening");
    if (tls !== undefined) this.#tls = tls ?? undefined;
    const listener = this.#tls
      ? Deno.listenTls({ hostname: "127.0.0.1", port, ...this.#tls })
      : Deno.listen({ hostname: "127.0.0.1", port });
    this.#listener = listener;
    this.#port = (listener.addr as Deno.NetAddr).port;
    this.#stopped = Promise.withResolvers<void>();
    this.#serving = this.#accept(listener);
    return this.#port;
  }

  /**
   * Closes the port and every open connection, as if the process died.
   *
   * @returns When the accept loop has ended.
   */
  async stop(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    if (!listener) return;
    this.#stopped.resolve();
    listener.close();
    for (const conn of this.#conns) this.#close(conn);
    this.#conns.clear();
    await this.#serving;
  }

  /** Closes everything. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * Adds a fault; the first matching rule with uses left applies.
   *
   * @param rule When and what.
   */
  addFault(rule: FaultRule): void {
    this.#rules.push({ ...rule });
  }

  /** Removes every fault. */
  clearFaults(): void {
    this.#rules = [];
  }

  /**
   * Counts requests whose path matches.
   *
   * @param path A pattern on path and query.
   * @returns How many were seen.
   */
  count(path: RegExp): number {
    return this.requests.filter((r) => path.test(r.path)).length;
  }

  /**
   * Waits until a request matches.
   *
   * @param test The condition.
   * @param timeoutMs How long to wait.
   * @returns The request, or undefined after the timeout.
   */
  async waitFor(
    test: (r: UpstreamRequest) => boolean,
    timeoutMs: number,
  ): Promise<UpstreamRequest | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.requests.find(test);
      if (found || performance.now() > deadline) return found;
      await delay(10);
    }
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    const handlers = new Set<Promise<void>>();
    try {
      for await (const conn of listener) {
        this.#conns.add(conn);
        const p = this.#serve(conn).finally(() => {
          this.#conns.delete(conn);
          this.#close(conn);
          handlers.delete(p);
        });
        handlers.add(p);
      }
    } catch {
      // The listener was closed.
    }
    await Promise.allSettled([...handlers]);
  }

  async #serve(conn: Stream): Promise<void> {
    const reader = new ConnReader(conn);
    const accepted: ConnectionRecord = { openedAt: performance.now() };
    this.connections.push(accepted);
    if (this.silent) {
      const closed = watchClose(conn).then(() => {
        if (!this.#closedHere.has(conn)) {
          accepted.peerClosedAt = performance.now();
        }
      });
      await Promise.race([closed, this.#stopped.promise]);
      return;
    }
    let text: string | undefined;
    try {
      text = await reader.readHead();
    } catch (e) {
      if (e instanceof SyntaxError) {
        await writeQuietly(conn, simple(400, "this port speaks plain HTTP"));
      }
      return;
    }
    if (text === undefined) return;
    const head = parseRequestHead(text);
    if (!head) {
      await writeQuietly(conn, simple(400, "malformed request"));
      return;
    }
    const length = Number(head.headers.get("content-length") ?? 0);
    let body: Uint8Array<ArrayBuffer> | undefined;
    if (length > 0) {
      const got = await reader.readBytes(length).catch(() => undefined);
      if (!got || got.length < length) return;
      body = new Uint8Array(got);
    }

    const record: UpstreamRequest = {
      id: this.requests.length + 1,
      method: head.method,
      path: head.target,
      headers: head.headers,
      receivedAt: performance.now(),
      bytesSent: 0,
    };
    const type = head.headers.get("content-type") ?? "";
    if (body && type.includes("x-www-form-urlencoded")) {
      record.form = new URLSearchParams(new TextDecoder().decode(body));
    }
    this.requests.push(record);

    // The proxy sends nothing more on this connection: a read that ends
    // means it hung up.
    const peerClosed = watchClose(conn).then(() => {
      if (record.completedAt === undefined && !this.#closedHere.has(conn)) {
        record.peerClosedAt ??= performance.now();
      }
    });

    const fault = this.#match(head.method, head.target);
    if (fault) record.fault = fault.kind;
    if (fault?.kind === "stall-headers") {
      await Promise.race([peerClosed, this.#stopped.promise]);
      return;
    }
    if (fault?.kind === "status") {
      const res = simple(
        fault.status,
        fault.status === 429 ? "too many requests" : "injected failure",
        fault.retryAfterSeconds,
      );
      record.status = fault.status;
      if (await writeQuietly(conn, res)) record.completedAt = performance.now();
      return;
    }

    const url = `${this.origin}${head.target}`;
    const req = new Request(url, {
      method: head.method,
      headers: head.headers,
      ...(body ? { body } : {}),
    });
    const res = await this.acr.handle(req);
    const bytes = res.body
      ? new Uint8Array(await res.arrayBuffer())
      : new Uint8Array(0);
    const headers = new Headers(res.headers);
    headers.delete("transfer-encoding");
    headers.set("connection", "close");
    if (head.method !== "HEAD") {
      headers.set("content-length", String(bytes.length));
    }
    record.status = res.status;

    try {
      await writeAll(conn, responseHead(res.status, headers));
      if (head.method === "HEAD") {
        record.completedAt = performance.now();
        return;
      }
      const send = async (part: Uint8Array): Promise<void> => {
        await writeAll(conn, part);
        record.bytesSent += part.length;
      };
      if (fault?.kind === "stall-body" || fault?.kind === "close-body") {
        await send(bytes.subarray(0, Math.min(fault.afterBytes, bytes.length)));
        if (fault.kind === "close-body") return;
        await Promise.race([peerClosed, this.#stopped.promise]);
        return;
      }
      if (fault?.kind === "slow-body") {
        for (let at = 0; at < bytes.length; at += fault.chunkBytes) {
          if (record.peerClosedAt !== undefined || !this.#listener) return;
          await send(bytes.subarray(at, at + fault.chunkBytes));
          await sleep(fault.intervalMs, peerClosed, this.#stopped.promise);
        }
      } else {
        await send(bytes);
      }
      record.completedAt = performance.now();
    } catch {
      // A write failed: the peer is gone.
      record.peerClosedAt ??= performance.now();
    }
  }

  #close(conn: Stream): void {
    this.#closedHere.add(conn);
    closeQuietly(conn);
  }

  #match(method: string, path: string): Fault | undefined {
    for (const rule of this.#rules) {
      if (rule.method && rule.method !== method) continue;
      if (!rule.path.test(path)) continue;
      if (rule.times !== undefined) {
        if (rule.times <= 0) continue;
        rule.times--;
      }
      return rule.fault;
    }
    return undefined;
  }
}

async function watchClose(conn: Stream): Promise<void> {
  const buf = new Uint8Array(1024);
  try {
    while ((await conn.read(buf)) !== null) { /* ignore stray bytes */ }
  } catch {
    // Reset or closed locally: either way the exchange is over.
  }
}

function simple(
  status: number,
  message: string,
  retryAfterSeconds?: number,
): Uint8Array {
  const code = status === 429 ? "TOOMANYREQUESTS" : "UNKNOWN";
  const body = enc.encode(
    JSON.stringify({ errors: [{ code, message, detail: null }] }),
  );
  const headers = new Headers({
    "content-type": "application/json; charset=utf-8",
    "content-length": String(body.length),
    connection: "close",
  });
  if (retryAfterSeconds !== undefined) {
    headers.set("retry-after", String(retryAfterSeconds));
  }
  const head = responseHead(status, headers);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

async function writeQuietly(conn: Stream, bytes: Uint8Array): Promise<boolean> {
  try {
    await writeAll(conn, bytes);
    return true;
  } catch {
    return false;
  }
}

function closeQuietly(conn: Stream): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/**
 * Waits `ms` milliseconds or until one of `early` settles, whichever comes
 * first, leaving no timer behind.
 *
 * @param ms How long at most.
 * @param early Promises that end the wait.
 * @returns When the wait is over.
 */
export async function sleep(
  ms: number,
  ...early: Promise<unknown>[]
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const time = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([time, ...early]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves after `ms` milliseconds.
 *
 * @param ms How long.
 * @returns When the time is up.
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
