/**
 * The client side of the registry token flow, done once per contender the
 * way Docker clients do it: probe, follow the Bearer challenge to the realm,
 * then send the token on every request. Contenders that never challenge get
 * no extra header.
 *
 * @module
 */
import type { Endpoint } from "./contenders.ts";
import { TAG } from "./fixtures.ts";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

function challengeParams(header: string): Map<string, string> | null {
  const match = header.match(/^Bearer\s+(.*)$/i);
  if (match?.[1] === undefined) return null;
  const params = new Map<string, string>();
  for (const m of match[1].matchAll(/([A-Za-z_]+)="([^"]*)"/g)) {
    params.set((m[1] as string).toLowerCase(), m[2] as string);
  }
  return params;
}

/**
 * Returns the headers a client must send to `endpoint`: `{}` when the
 * manifest answers without a challenge, else `Authorization: Bearer ...`
 * from the challenge's realm. Only loopback realms are followed.
 */
export async function clientAuthHeaders(
  endpoint: Endpoint,
): Promise<Record<string, string>> {
  const probe = await fetch(
    `${endpoint.origin}${endpoint.repoPath}/manifests/${TAG}`,
    { method: "HEAD", signal: AbortSignal.timeout(10_000) },
  );
  await probe.body?.cancel();
  if (probe.status !== 401) return {};
  const params = challengeParams(probe.headers.get("www-authenticate") ?? "");
  const realm = params?.get("realm");
  if (params === null || realm === undefined) {
    throw new Error("401 without a Bearer challenge naming a realm");
  }
  const tokenUrl = new URL(realm);
  if (!LOOPBACK_HOSTS.has(tokenUrl.hostname)) {
    throw new Error(`refusing to follow a non-loopback realm ${realm}`);
  }
  for (const name of ["service", "scope"]) {
    const value = params.get(name);
    if (value !== undefined) tokenUrl.searchParams.append(name, value);
  }
  const res = await fetch(tokenUrl, { signal: AbortSignal.timeout(10_000) });
  const body = await res.json().catch(() => ({})) as Record<string, unknown>;
  const token = body["token"] ?? body["access_token"];
  if (!res.ok || typeof token !== "string") {
    throw new Error(`token request ${tokenUrl} answered ${res.status}`);
  }
  return { Authorization: `Bearer ${token}` };
}
