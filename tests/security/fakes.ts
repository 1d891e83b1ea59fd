/**
 * Recording fakes for the security tests: an upstream `fetch` that writes
 * down every request the proxy makes and never touches the network, and an
 * access-token provider that writes down every scope set it is asked for.
 *
 * @module
 */

import type { AccessTokenProvider } from "../../src/tokens.ts";

/**
 * Upstream origin handed to the proxy. A dead loopback port: if anything
 * ever bypassed the fake fetch it would hit nothing.
 */
export const UPSTREAM = "http://127.0.0.2:1";

/** The upstream access token the fake provider hands out. */
export const MARKER_TOKEN = "UPSTREAM-MARKER-TOKEN-7f3c";

/** A SAS signature that only the fake storage redirect carries. */
export const SAS_SIG = "SASSECRETSIGNATURE0123";

/** Where the fake upstream redirects blob GETs, as ACR does. */
export const STORAGE_URL =
  `https://fakeacr.blob.core.windows.net/docker/data?se=2030-01-01&sig=${SAS_SIG}&sp=r&sr=b&sv=2021-08-06`;

/** One request the proxy sent upstream. */
export interface UpstreamCall {
  /** The full URL. */
  url: string;
  /** The HTTP method. */
  method: string;
  /** Every header, lower-cased names. */
  headers: Record<string, string>;
  /** The redirect mode the proxy asked for. */
  redirect: string | undefined;
  /** Whether a body was attached. */
  hasBody: boolean;
}

/** Produces the fake upstream's answer to one call. */
export type Responder = (call: UpstreamCall) => Response | Promise<Response>;

/**
 * A fake upstream registry reached only through its `fetch`.
 */
export class RecordingUpstream {
  /** Every call, in order. */
  readonly calls: UpstreamCall[] = [];
  /** Overrides the default answers when set. */
  responder: Responder | undefined;

  /** The `fetch` to hand to `createHandler`. */
  readonly fetch: typeof fetch = (input, init): Promise<Response> => {
    const req = input instanceof Request ? input : undefined;
    const url = req ? req.url : String(input);
    const headers: Record<string, string> = {};
    for (const [k, v] of new Headers(init?.headers ?? req?.headers)) {
      headers[k] = v;
    }
    const call: UpstreamCall = {
      url,
      method: init?.method ?? req?.method ?? "GET",
      headers,
      redirect: init?.redirect ?? req?.redirect,
      hasBody: init?.body != null || req?.body != null,
    };
    this.calls.push(call);
    return Promise.resolve((this.responder ?? defaultAnswer)(call));
  };

  /** Forgets every recorded call. */
  reset(): void {
    this.calls.length = 0;
  }
}

/**
 * Answers like a registry holding every image: manifests and tags 200,
 * blobs a 307 to storage with a SAS query.
 *
 * @param call The upstream call.
 * @returns The answer.
 */
export function defaultAnswer(call: UpstreamCall): Response {
  const path = new URL(call.url).pathname;
  const head = call.method === "HEAD";
  const body = (text: string): string | null => head ? null : text;
  if (/\/manifests\/[^/]+$/.test(path)) {
    return new Response(body('{"schemaVersion":2}'), {
      status: 200,
      headers: {
        "content-type": "application/vnd.oci.image.manifest.v1+json",
        "docker-content-digest": `sha256:${"a".repeat(64)}`,
      },
    });
  }
  if (/\/blobs\/[^/]+$/.test(path)) {
    return new Response(null, {
      status: 307,
      headers: { location: STORAGE_URL },
    });
  }
  if (/\/tags\/list$/.test(path)) {
    return new Response(body('{"name":"x","tags":["latest"]}'), {
      status: 200,
      headers: { "content-type": "application/json" },
    });
  }
  if (/\/referrers\/[^/]+$/.test(path)) {
    return new Response(
      body('{"schemaVersion":2,"manifests":[]}'),
      {
        status: 200,
        headers: { "content-type": "application/vnd.oci.image.index.v1+json" },
      },
    );
  }
  return new Response(
    body('{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}'),
    { status: 404, headers: { "content-type": "application/json" } },
  );
}

/**
 * A fake {@link AccessTokenProvider} returning {@link MARKER_TOKEN} and
 * recording the scopes it was asked for.
 */
export class RecordingTokens implements AccessTokenProvider {
  /** Scope sets asked for, in order. */
  readonly asked: string[][] = [];
  /** Tokens reported as refused. */
  readonly invalidated: string[] = [];
  /** When set, `get` throws this instead of answering. */
  failure: Error | undefined;
  /** The token handed out. */
  token: string = MARKER_TOKEN;

  /**
   * Records the scopes and answers with the marker token.
   *
   * @param scopes Upstream scopes.
   * @returns The marker token.
   */
  get(
    scopes: readonly string[],
  ): Promise<{ token: string; cached: boolean }> {
    this.asked.push([...scopes]);
    if (this.failure) return Promise.reject(this.failure);
    return Promise.resolve({ token: this.token, cached: false });
  }

  /**
   * Records a refused token.
   *
   * @param _scopes The scopes.
   * @param token The token.
   */
  invalidate(_scopes: readonly string[], token: string): void {
    this.invalidated.push(token);
  }

  /** Forgets every recorded call. */
  reset(): void {
    this.asked.length = 0;
    this.invalidated.length = 0;
  }
}
