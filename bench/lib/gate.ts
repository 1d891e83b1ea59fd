/**
 * Correctness gate: a contender must hand out the upstream's bytes and
 * registry headers unchanged before its numbers count.
 *
 * @module
 */
import type { Endpoint } from "./contenders.ts";
import { type Snapshot, snapshot } from "./curl.ts";
import { type Fixtures, type ServedFile, TAG } from "./fixtures.ts";

/**
 * Request headers of the gate. `Accept-Encoding: gzip` is what Go-based
 * registry clients send by default, so a proxy that compresses (and thereby
 * changes bytes and Content-Length) fails here.
 */
export const GATE_REQUEST_HEADERS: Readonly<Record<string, string>> = {
  "Accept": "application/vnd.oci.image.manifest.v1+json, " +
    "application/vnd.docker.distribution.manifest.v2+json",
  "Accept-Encoding": "gzip",
};

/** Outcome of one request of the gate. */
export interface GateCheck {
  /** e.g. `GET manifest`. */
  readonly what: string;
  readonly ok: boolean;
  /** Mismatches, or `ok`. */
  readonly detail: string;
}

/** Outcome of the whole gate for one contender. */
export interface GateResult {
  readonly passed: boolean;
  readonly checks: readonly GateCheck[];
}

function compare(
  seen: Snapshot,
  method: "GET" | "HEAD",
  want: ServedFile,
): string[] {
  const problems: string[] = [];
  const expect = (name: string, got: string | undefined, value: string) => {
    if (got !== value) problems.push(`${name}: got ${got}, want ${value}`);
  };
  expect("status", String(seen.status), "200");
  expect(
    "docker-content-digest",
    seen.headers.get("docker-content-digest"),
    want.digest,
  );
  expect(
    "content-length",
    seen.headers.get("content-length"),
    String(want.size),
  );
  expect("content-type", seen.headers.get("content-type"), want.mediaType);
  const encoding = seen.headers.get("content-encoding");
  if (encoding !== undefined) problems.push(`content-encoding: ${encoding}`);
  if (method === "GET") expect("body sha256", seen.digest, want.digest);
  else expect("body bytes", String(seen.bodyBytes), "0");
  return problems;
}

/**
 * Runs GET and HEAD on the manifest (by tag, then twice by digest) and on
 * one blob through
 * `endpoint`, comparing with the files the upstream serves.
 */
export async function runGate(
  endpoint: Endpoint,
  fixtures: Fixtures,
  scratchDir: string,
): Promise<GateResult> {
  const base = `${endpoint.origin}${endpoint.repoPath}`;
  const blob = fixtures.parallel[0] ?? fixtures.large;
  const digestUrl = `${base}/manifests/${fixtures.manifest.digest}`;
  const cases: [string, string, ServedFile][] = [
    ["manifest", `${base}/manifests/${TAG}`, fixtures.manifest],
    // Twice: a caching contender answers the second from memory.
    ["manifest by digest", digestUrl, fixtures.manifest],
    ["manifest by digest, again", digestUrl, fixtures.manifest],
    ["blob", `${base}/blobs/${blob.digest}`, blob],
  ];
  const checks: GateCheck[] = [];
  for (const [name, url, want] of cases) {
    for (const method of ["GET", "HEAD"] as const) {
      const what = `${method} ${name}`;
      try {
        const seen = await snapshot(
          url,
          method,
          { ...GATE_REQUEST_HEADERS, ...endpoint.clientHeaders },
          scratchDir,
        );
        const problems = compare(seen, method, want);
        checks.push({
          what,
          ok: problems.length === 0,
          detail: problems.length === 0 ? "ok" : problems.join("; "),
        });
      } catch (error) {
        const detail = error instanceof Error ? error.message : String(error);
        checks.push({ what, ok: false, detail });
      }
    }
  }
  return { passed: checks.every((c) => c.ok), checks };
}
