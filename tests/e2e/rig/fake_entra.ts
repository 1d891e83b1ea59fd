/**
 * Fake Microsoft Entra ID: an issuer of JWT-shaped access tokens (HS256
 * with a per-run secret, `tid` claim) that the fake ACR accepts, a fake
 * `az` executable printing such tokens, and an App Service style managed
 * identity endpoint.
 *
 * @module
 */

import {
  type Claims,
  hmacKey,
  nowSeconds,
  signHs256,
  verifyHs256,
} from "./jwt.ts";

/** Resource (audience) of ACR-audience Entra tokens. */
export const ACR_RESOURCE = "https://containerregistry.azure.net";
/** Resource (audience) of ARM-audience Entra tokens. */
export const ARM_RESOURCE = "https://management.azure.com";

/** Claims of a token minted by {@linkcode FakeEntra}. */
export interface EntraClaims {
  /** Tenant ID. */
  tid: string;
  /** Audience (resource). */
  aud: string;
  /** Object ID of the identity. */
  oid: string;
  /** Expiry, epoch seconds. */
  exp: number;
}

/** Issues and checks fake Entra access tokens. */
export class FakeEntra {
  /** Tenant every token carries. */
  readonly tenant: string = "11111111-2222-3333-4444-555555555555";
  /** Object ID every token carries. */
  readonly oid: string = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
  #key: Promise<CryptoKey> = hmacKey(
    crypto.getRandomValues(new Uint8Array(32)),
  );
  #issued = new Set<string>();
  #everIssued: string[] = [];
  #revoked = false;

  /**
   * Mints a token for a resource.
   *
   * @param resource audience, e.g. {@linkcode ACR_RESOURCE}
   * @param ttlSeconds lifetime
   * @returns the token and its expiry (epoch seconds)
   */
  async mint(
    resource: string,
    ttlSeconds = 3600,
  ): Promise<{ token: string; expiresOn: number }> {
    const now = nowSeconds();
    const exp = now + ttlSeconds;
    const token = await signHs256(await this.#key, {
      aud: resource,
      iss: `https://sts.windows.net/${this.tenant}/`,
      iat: now,
      nbf: now - 5,
      exp,
      tid: this.tenant,
      oid: this.oid,
      appid: "00000000-e2e0-e2e0-e2e0-000000000000",
      uti: crypto.randomUUID(),
    });
    this.#issued.add(token);
    this.#everIssued.push(token);
    return { token, expiresOn: exp };
  }

  /**
   * Every token minted so far, revoked ones included.
   *
   * @returns the tokens, oldest first
   */
  minted(): string[] {
    return [...this.#everIssued];
  }

  /**
   * Checks that a token was minted here, is unexpired and not revoked.
   *
   * @param token candidate token
   * @returns its claims, or null
   */
  async verify(token: string): Promise<EntraClaims | null> {
    if (this.#revoked || !this.#issued.has(token)) return null;
    const claims: Claims | null = await verifyHs256(await this.#key, token);
    if (!claims || typeof claims.exp !== "number") return null;
    if (claims.exp < nowSeconds()) return null;
    return claims as unknown as EntraClaims;
  }

  /** Makes every token minted so far invalid. */
  revokeAll(): void {
    this.#issued.clear();
  }
}

/** A fake `az` executable in its own bin directory. */
export interface FakeAz {
  /** Directory to put first on PATH. */
  binDir: string;
  /** Absolute path of the `az` script. */
  azPath: string;
  /** Writes fresh tokens for both resources (optionally short-lived). */
  refresh(ttlSeconds?: number): Promise<void>;
  /** Makes `az` fail with "Please run 'az login'". */
  logout(): Promise<void>;
  /** Undoes {@linkcode FakeAz.logout}. */
  login(): Promise<void>;
  /** Argument lines of every invocation so far. */
  calls(): Promise<string[]>;
}

/**
 * Writes a fake `az` into `<dir>/bin`. It answers only
 * `account get-access-token --output json --resource <ACR or ARM>` (plus
 * optional `--tenant`/`--subscription`) by printing a pre-minted token.
 *
 * @param dir working directory (created if missing)
 * @param entra token issuer
 * @returns paths and controls
 */
export async function createFakeAz(
  dir: string,
  entra: FakeEntra,
): Promise<FakeAz> {
  const binDir = `${dir}/bin`;
  await Deno.mkdir(binDir, { recursive: true });
  const azPath = `${binDir}/az`;
  const callsPath = `${dir}/az-calls.log`;
  const loggedOut = `${dir}/az-logged-out`;
  const q = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  const script = `#!/bin/sh
printf '%s\\n' "$*" >> ${q(callsPath)}
fail() {
  echo "ERROR: Please run 'az login' to setup account." >&2
  exit 1
}
[ -e ${q(loggedOut)} ] && fail
[ "$1" = account ] && [ "$2" = get-access-token ] || fail
shift 2
output=""
file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --output|-o) output="$2"; shift 2 ;;
    --resource)
      case "$2" in
        ${ACR_RESOURCE}|${ACR_RESOURCE}/) file=${q(`${dir}/token-acr.json`)} ;;
        ${ARM_RESOURCE}|${ARM_RESOURCE}/) file=${q(`${dir}/token-arm.json`)} ;;
        *) echo "ERROR: unknown resource $2" >&2; exit 1 ;;
      esac
      shift 2 ;;
    --tenant|--subscription) shift 2 ;;
    *) echo "ERROR: unrecognized arguments: $1" >&2; exit 2 ;;
  esac
done
[ "$output" = json ] && [ -n "$file" ] || fail
cat "$file"
`;
  await Deno.writeTextFile(azPath, script, { mode: 0o755 });
  await Deno.chmod(azPath, 0o755);
  const writeToken = async (resource: string, file: string, ttl: number) => {
    const { token, expiresOn } = await entra.mint(resource, ttl);
    const expires = new Date(expiresOn * 1000).toISOString()
      .replace("T", " ").replace("Z", "000");
    await Deno.writeTextFile(
      `${dir}/${file}`,
      JSON.stringify(
        {
          accessToken: token,
          expiresOn: expires,
          expires_on: expiresOn,
          subscription: "99999999-8888-7777-6666-555555555555",
          tenant: entra.tenant,
          tokenType: "Bearer",
        },
        null,
        2,
      ) + "\n",
    );
  };
  const az: FakeAz = {
    binDir,
    azPath,
    async refresh(ttlSeconds = 3600) {
      await writeToken(ACR_RESOURCE, "token-acr.json", ttlSeconds);
      await writeToken(ARM_RESOURCE, "token-arm.json", ttlSeconds);
    },
    async logout() {
      await Deno.writeTextFile(loggedOut, "");
    },
    async login() {
      await Deno.remove(loggedOut).catch(() => {});
    },
    async calls() {
      const text = await Deno.readTextFile(callsPath).catch(() => "");
      return text.split("\n").filter((l) => l !== "");
    },
  };
  await az.refresh();
  return az;
}

/** One request seen by the managed identity endpoint. */
export interface MsiRequest {
  /** Query `resource`. */
  resource: string | null;
  /** Query `api-version`. */
  apiVersion: string | null;
  /** Whether `x-identity-header` matched. */
  headerOk: boolean;
  /** Status answered. */
  status: number;
}

/** A running App Service managed identity endpoint. */
export interface FakeMsi {
  /** Value for `IDENTITY_ENDPOINT`. */
  endpoint: string;
  /** Value for `IDENTITY_HEADER`. */
  secret: string;
  /** Requests seen so far. */
  requests: MsiRequest[];
  /** Token lifetime handed out (seconds); change at will. */
  ttlSeconds: number;
  /** Answer 500 to every request while true. */
  failing: boolean;
  /** Stops the server. */
  stop(): Promise<void>;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/**
 * Starts an App Service style managed identity endpoint on loopback:
 * `GET /msi/token?api-version=2019-08-01&resource=...` with header
 * `x-identity-header`.
 *
 * @param entra token issuer
 * @returns endpoint, secret and request log
 */
export function startFakeMsi(entra: FakeEntra): FakeMsi {
  const secret = crypto.randomUUID();
  const msi: FakeMsi = {
    endpoint: "",
    secret,
    requests: [],
    ttlSeconds: 3600,
    failing: false,
    stop: () => server.shutdown(),
  };
  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const resource = url.searchParams.get("resource");
    const record: MsiRequest = {
      resource,
      apiVersion: url.searchParams.get("api-version"),
      headerOk: req.headers.get("x-identity-header") === secret,
      status: 0,
    };
    msi.requests.push(record);
    const answer = (status: number, body: unknown): Response => {
      record.status = status;
      return json(status, body);
    };
    if (url.pathname !== "/msi/token" || req.method !== "GET") {
      return answer(404, { error: "not_found" });
    }
    if (!record.headerOk) {
      return answer(401, {
        error: "invalid_request",
        error_description: "bad x-identity-header",
      });
    }
    if (msi.failing) return answer(500, { error: "unavailable" });
    const aud = resource?.replace(/\/\.default$/, "").replace(/\/$/, "");
    if (aud !== ACR_RESOURCE && aud !== ARM_RESOURCE) {
      return answer(400, {
        error: "invalid_resource",
        error_description: `unknown resource ${resource}`,
      });
    }
    const { token, expiresOn } = await entra.mint(aud, msi.ttlSeconds);
    return answer(200, {
      access_token: token,
      expires_on: String(expiresOn),
      resource,
      token_type: "Bearer",
      client_id: "cccccccc-0000-0000-0000-000000000000",
    });
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    handle,
  );
  msi.endpoint = `http://127.0.0.1:${server.addr.port}/msi/token`;
  return msi;
}
