/**
 * The Entra ID side: `DefaultAzureCredential` from `@azure/identity`
 * adapted to the plain token provider the rest of the proxy takes. Kept
 * out of `mod.ts` so library users who bring their own credential install
 * no Azure packages.
 *
 * @module
 */

import { DefaultAzureCredential, type TokenCredential } from "@azure/identity";
import { redact } from "./redact.ts";
import type { EntraTokenProvider } from "./tokens.ts";

/**
 * Longest a developer credential's process (`az`, `azd`, PowerShell) may run
 * for one sign-in, in milliseconds: like a token request, a sign-in must
 * not hold the requests that wait for it without bound.
 */
export const SIGN_IN_PROCESS_TIMEOUT_MS = 30_000;

/**
 * The credential the proxy signs in with: `DefaultAzureCredential`, its
 * developer-tool processes bounded in time.
 *
 * @param processTimeoutMs Longest run of `az` and its kin per sign-in.
 * @returns The credential.
 *
 * @example
 * ```ts ignore
 * import { defaultCredential } from "./entra.ts";
 * const credential = defaultCredential();
 * ```
 */
export function defaultCredential(
  processTimeoutMs: number = SIGN_IN_PROCESS_TIMEOUT_MS,
): TokenCredential {
  return new DefaultAzureCredential({ processTimeoutInMs: processTimeoutMs });
}

/**
 * Adapts a credential to an {@link EntraTokenProvider}.
 *
 * @param scope The scope to ask for.
 * @param credential The credential; {@link defaultCredential} by default.
 * @returns The provider.
 *
 * @example
 * ```ts ignore
 * import { entraTokenProvider } from "./entra.ts";
 * const get = entraTokenProvider("https://containerregistry.azure.net/.default");
 * const { expiresAt } = await get();
 * ```
 */
export function entraTokenProvider(
  scope: string,
  credential: TokenCredential = defaultCredential(),
): EntraTokenProvider {
  return async function getEntraToken(): Promise<{
    token: string;
    expiresAt: number;
  }> {
    let token;
    try {
      token = await credential.getToken(scope);
    } catch (e) {
      throw new Error(describeFailure(e));
    }
    if (!token) throw new Error("the credential returned no token");
    return { token: token.token, expiresAt: token.expiresOnTimestamp };
  };
}

/**
 * Explains a failed sign-in as one sentence naming what to set.
 *
 * @param reason The first line of the underlying failure.
 * @returns The sentence.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { explainSignInFailure } from "./entra.ts";
 * assert(explainSignInFailure("x").includes("az login"));
 * ```
 */
export function explainSignInFailure(reason: string): string {
  let hint = "";
  if (/Requires (\w+) access/.test(reason) || /NotCapable/.test(reason)) {
    hint = " (a Deno permission is missing: see the README's permission table)";
  } else if (/Azure CLI could not be found/i.test(reason)) {
    hint =
      " (if az is installed, grant --allow-run=az, --allow-sys=uid and --allow-read of its path)";
  }
  return `No Azure credential could sign in (${reason.trim()})${hint}; set AZURE_CLIENT_ID for a user-assigned managed identity, AZURE_TENANT_ID with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal, AZURE_FEDERATED_TOKEN_FILE for workload identity, or run \`az login\`.`;
}

// DefaultAzureCredential reports one failure per credential it tried; the
// first line of each is what tells an operator which source to fix.
function describeFailure(e: unknown): string {
  const inner = (e as { errors?: unknown })?.errors;
  const parts = Array.isArray(inner) && inner.length ? inner : [e];
  return redact(
    parts
      .map((x) =>
        x instanceof Error ? x.message.split("\n")[0]!.trim() : String(x)
      )
      .join("; "),
  )
    .slice(0, 600);
}
