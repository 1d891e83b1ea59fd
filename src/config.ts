/**
 * The command line and environment, turned into one validated, immutable
 * configuration. Every flag has an environment variable; flags win. Long
 * flags take one or two dashes (`-upstream-domain x` as the Go tool took).
 *
 * @module
 */

import type { AuthMode } from "./handler.ts";
import { isValidPrefix, isValidRegistryHost, type Route } from "./names.ts";

/** Log line formats. */
export type LogFormat = "text" | "json";
/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** The validated configuration. */
export interface Config {
  /** Upstream origin. */
  readonly upstream: string;
  /** Route for requests without `ns`. */
  readonly defaultRoute: Route;
  /** Routes chosen by `ns`. */
  readonly routes: readonly Route[];
  /** Address to listen on. */
  readonly listen: { readonly hostname: string; readonly port: number };
  /** Service name in the proxy's challenges. */
  readonly masqueradeDomain: string;
  /** Public base URL, when set. */
  readonly publicUrl: string | undefined;
  /** How clients authenticate to the proxy. */
  readonly authMode: AuthMode;
  /** Entra ID scope asked for. */
  readonly entraScope: string;
  /** Log format. */
  readonly logFormat: LogFormat;
  /** Least severe level logged. */
  readonly logLevel: LogLevel;
  /** Grace period for in-flight requests at shutdown. */
  readonly shutdownGraceMs: number;
  /** Longest wait for upstream response headers. */
  readonly headerTimeoutMs: number;
  /** Longest pause inside an upstream body; 0 when there is no limit. */
  readonly idleTimeoutMs: number;
  /** Memory for answers fetched by digest, in bytes; 0 turns it off. */
  readonly cacheBytes: number;
  /** How long an answer fetched by digest is served from memory. */
  readonly cacheTtlMs: number;
  /** Trust `X-Forwarded-*` headers. */
  readonly trustForwarded: boolean;
  /** TLS certificate and key files, when serving HTTPS. */
  readonly tls:
    | { readonly certFile: string; readonly keyFile: string }
    | undefined;
  /** Shared key for proxy-issued tokens, when set. */
  readonly tokenSecret: string | undefined;
}

/** A configuration mistake; the message is one sentence naming the fix. */
export class ConfigError extends Error {
  /**
   * Creates a configuration error.
   *
   * @param message What is wrong and how to fix it.
   */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** What the command line asks for. */
export type Invocation =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "run"; config: Config };

interface FlagSpec {
  name: string;
  env: string;
  kind: "string" | "boolean" | "list";
  value?: string;
  help: string;
  default?: string;
  flagless?: boolean;
}

/** Every flag, with its environment variable and help text. */
export const FLAGS: readonly FlagSpec[] = [
  {
    name: "upstream-domain",
    env: "ACR_CACHE_PROXY_UPSTREAM_DOMAIN",
    kind: "string",
    value: "HOST",
    help:
      "ACR login server (example.azurecr.io), or a full origin such as http://127.0.0.1:5000 (required)",
  },
  {
    name: "upstream-prefix",
    env: "ACR_CACHE_PROXY_UPSTREAM_PREFIX",
    kind: "string",
    value: "PREFIX",
    help:
      "cache rule prefix for Docker Hub requests without ?ns=, without slashes (hub)",
  },
  {
    name: "route",
    env: "ACR_CACHE_PROXY_ROUTES",
    kind: "list",
    value: "REGISTRY=PREFIX",
    help:
      "route requests with ?ns=REGISTRY to PREFIX; repeatable; the variable takes a comma-separated list",
  },
  {
    name: "listen-address",
    env: "ACR_CACHE_PROXY_LISTEN_ADDRESS",
    kind: "string",
    value: "ADDR",
    default: "127.0.0.1:8080",
    help: "address to listen on, in Go form (:8080 means every interface)",
  },
  {
    name: "masquerade-domain",
    env: "ACR_CACHE_PROXY_MASQUERADE_DOMAIN",
    kind: "string",
    value: "NAME",
    default: "registry.docker.io",
    help: "service name in the challenges clients see",
  },
  {
    name: "public-url",
    env: "ACR_CACHE_PROXY_PUBLIC_URL",
    kind: "string",
    value: "URL",
    help:
      "base URL clients reach the proxy at (default: from the request's Host)",
  },
  {
    name: "auth-mode",
    env: "ACR_CACHE_PROXY_AUTH_MODE",
    kind: "string",
    value: "MODE",
    default: "inject",
    help:
      "inject: the proxy authorizes every request itself; challenge: clients fetch a pull token from /token first",
  },
  {
    name: "entra-scope",
    env: "ACR_CACHE_PROXY_ENTRA_SCOPE",
    kind: "string",
    value: "SCOPE",
    default: "https://containerregistry.azure.net/.default",
    help:
      "Entra ID scope to sign in for (https://management.azure.com/.default for the ARM audience)",
  },
  {
    name: "log-format",
    env: "ACR_CACHE_PROXY_LOG_FORMAT",
    kind: "string",
    value: "FORMAT",
    default: "text",
    help: "text or json",
  },
  {
    name: "log-level",
    env: "ACR_CACHE_PROXY_LOG_LEVEL",
    kind: "string",
    value: "LEVEL",
    default: "info",
    help: "debug, info, warn or error",
  },
  {
    name: "shutdown-grace",
    env: "ACR_CACHE_PROXY_SHUTDOWN_GRACE",
    kind: "string",
    value: "DURATION",
    default: "30s",
    help: "how long in-flight requests may finish after SIGTERM or SIGINT",
  },
  {
    name: "header-timeout",
    env: "ACR_CACHE_PROXY_HEADER_TIMEOUT",
    kind: "string",
    value: "DURATION",
    default: "30s",
    help: "longest wait for the upstream to connect and answer with headers",
  },
  {
    name: "idle-timeout",
    env: "ACR_CACHE_PROXY_IDLE_TIMEOUT",
    kind: "string",
    value: "DURATION",
    default: "60s",
    help:
      "longest pause inside a streamed upstream body (0: no limit, and such bodies are piped natively)",
  },
  {
    name: "cache-size",
    env: "ACR_CACHE_PROXY_CACHE_SIZE",
    kind: "string",
    value: "SIZE",
    default: "16MiB",
    help:
      "memory for manifests and small blobs fetched by digest, such as 16MiB; 0 turns the cache off",
  },
  {
    name: "cache-ttl",
    env: "ACR_CACHE_PROXY_CACHE_TTL",
    kind: "string",
    value: "DURATION",
    default: "10m",
    help:
      "how long an answer fetched by digest is served from memory before the upstream is asked again",
  },
  {
    name: "trust-forwarded",
    env: "ACR_CACHE_PROXY_TRUST_FORWARDED",
    kind: "boolean",
    help:
      "trust X-Forwarded-Proto and X-Forwarded-Host from a reverse proxy in front",
  },
  {
    name: "tls-cert",
    env: "ACR_CACHE_PROXY_TLS_CERT",
    kind: "string",
    value: "FILE",
    help: "serve HTTPS with this PEM certificate (needs --tls-key)",
  },
  {
    name: "tls-key",
    env: "ACR_CACHE_PROXY_TLS_KEY",
    kind: "string",
    value: "FILE",
    help: "PEM private key for --tls-cert",
  },
  {
    name: "token-secret",
    env: "ACR_CACHE_PROXY_TOKEN_SECRET",
    kind: "string",
    flagless: true,
    help:
      "key (32+ characters) for the tokens the proxy issues; set the same on every instance behind one address (environment only)",
  },
  { name: "help", env: "", kind: "boolean", help: "print this help and exit" },
  {
    name: "version",
    env: "",
    kind: "boolean",
    help: "print the version and exit",
  },
];

/**
 * The help text.
 *
 * @param version The program version.
 * @returns Text for `--help`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helpText } from "./config.ts";
 * assert(helpText("1.0.0").includes("--upstream-domain"));
 * ```
 */
export function helpText(version: string): string {
  const lines = [
    `acr-cache-proxy ${version}: Azure Container Registry as an anonymous Docker Hub mirror`,
    "",
    "Usage: acr-cache-proxy --upstream-domain example.azurecr.io --upstream-prefix hub",
    "",
    "Flags (each also read from the environment variable shown):",
  ];
  for (const f of FLAGS) {
    const flag = f.flagless
      ? "(no flag)"
      : `--${f.name}${f.value ? ` ${f.value}` : ""}`;
    const def = f.default ? ` (default ${f.default})` : "";
    lines.push(`  ${flag}`);
    lines.push(`      ${f.help}${def}${f.env ? `  [${f.env}]` : ""}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Parses arguments and environment into what the program should do.
 *
 * @param args Command-line arguments, without the program name.
 * @param env Environment variables.
 * @returns Help, version, or a validated configuration.
 * @throws {ConfigError} When a value is missing or malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseInvocation } from "./config.ts";
 * const inv = parseInvocation(
 *   ["-upstream-domain", "example.azurecr.io", "--upstream-prefix=hub"],
 *   {},
 * );
 * assert(inv.kind === "run" && inv.config.upstream === "https://example.azurecr.io");
 * ```
 */
export function parseInvocation(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Invocation {
  const raw = readArgs(args);
  if (raw.get("help")?.at(-1) === "true") return { kind: "help" };
  if (raw.get("version")?.at(-1) === "true") return { kind: "version" };

  try {
    return { kind: "run", config: buildConfig(raw, env) };
  } catch (e) {
    // A bad value that came from the environment is named by its variable,
    // not by a flag the user never typed.
    const m = e instanceof ConfigError ? /^--([a-z-]+)/.exec(e.message) : null;
    const spec = m ? FLAGS.find((f) => f.name === m[1]) : undefined;
    const fromEnv = spec?.env ? env[spec.env] : undefined;
    if (e instanceof ConfigError && fromEnv && !raw.has(spec!.name)) {
      throw new ConfigError(spec!.env + e.message.slice(m![0].length));
    }
    throw e;
  }
}

function buildConfig(
  raw: Map<string, string[]>,
  env: Readonly<Record<string, string | undefined>>,
): Config {
  const value = (name: string): string | undefined => {
    const spec = FLAGS.find((f) => f.name === name)!;
    const fromFlag = raw.get(name);
    if (fromFlag !== undefined) return fromFlag.at(-1);
    const fromEnv = spec.env ? env[spec.env] : undefined;
    return fromEnv === undefined || fromEnv === "" ? spec.default : fromEnv;
  };

  const upstreamRaw = value("upstream-domain");
  if (!upstreamRaw) {
    throw new ConfigError(
      "--upstream-domain is required: pass your registry's login server, for example --upstream-domain example.azurecr.io",
    );
  }
  const upstream = parseUpstream(upstreamRaw);

  const routes = parseRoutes(
    raw.get("route") ??
      (env.ACR_CACHE_PROXY_ROUTES ?? "").split(",").map((s) => s.trim())
        .filter(Boolean),
  );
  const prefix = value("upstream-prefix");
  if (prefix !== undefined && !isValidPrefix(prefix)) {
    throw new ConfigError(
      `--upstream-prefix ${
        JSON.stringify(prefix)
      } is not a valid cache rule prefix: use lower-case name components without leading or trailing slashes, such as hub`,
    );
  }
  const defaultRoute: Route = prefix !== undefined
    ? { registry: "docker.io", prefix }
    : routes.find((r) => r.registry === "docker.io") ??
      { registry: "docker.io", prefix: "" };

  const authMode = oneOf(
    value("auth-mode")!,
    "auth-mode",
    ["challenge", "inject"] as const,
  );
  const logFormat = oneOf(
    value("log-format")!,
    "log-format",
    ["text", "json"] as const,
  );
  const logLevel = oneOf(
    value("log-level")!,
    "log-level",
    ["debug", "info", "warn", "error"] as const,
  );

  const certFile = value("tls-cert");
  const keyFile = value("tls-key");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError("--tls-cert and --tls-key must be given together");
  }

  const tokenSecret = value("token-secret");
  if (tokenSecret !== undefined && tokenSecret.length < 32) {
    throw new ConfigError(
      "ACR_CACHE_PROXY_TOKEN_SECRET must be at least 32 characters: generate one with `openssl rand -hex 32`",
    );
  }

  const masqueradeDomain = value("masquerade-domain")!;
  if (!/^[A-Za-z0-9.\-:]{1,253}$/.test(masqueradeDomain)) {
    throw new ConfigError(
      `--masquerade-domain ${
        JSON.stringify(masqueradeDomain)
      } is not a host name`,
    );
  }
  const entraScope = value("entra-scope")!;
  if (!/^[0-9A-Za-z\-_.:/]+$/.test(entraScope)) {
    throw new ConfigError(
      `--entra-scope ${
        JSON.stringify(entraScope)
      } is not a scope such as https://containerregistry.azure.net/.default`,
    );
  }

  return Object.freeze({
    upstream,
    defaultRoute,
    routes,
    listen: parseListenAddress(value("listen-address")!),
    masqueradeDomain,
    publicUrl: parsePublicUrl(value("public-url")),
    authMode,
    entraScope,
    logFormat,
    logLevel,
    shutdownGraceMs: parseDuration(
      value("shutdown-grace")!,
      "shutdown-grace",
    ),
    headerTimeoutMs: positive(value("header-timeout")!, "header-timeout"),
    idleTimeoutMs: positiveOrOff(value("idle-timeout")!, "idle-timeout"),
    cacheBytes: parseSize(value("cache-size")!, "cache-size"),
    cacheTtlMs: positive(value("cache-ttl")!, "cache-ttl"),
    trustForwarded: raw.has("trust-forwarded")
      ? raw.get("trust-forwarded")?.at(-1) === "true"
      : envBoolean(env.ACR_CACHE_PROXY_TRUST_FORWARDED),
    tls: certFile && keyFile ? { certFile, keyFile } : undefined,
    tokenSecret,
  });
}

/**
 * Parses a listen address in Go's form.
 *
 * @param text `:8080`, `127.0.0.1:8080` or `[::1]:8080`.
 * @returns Host name and port; `:8080` means every interface.
 * @throws {ConfigError} When malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseListenAddress } from "./config.ts";
 * assert(parseListenAddress("[::1]:8080").hostname === "::1");
 * ```
 */
export function parseListenAddress(
  text: string,
): { hostname: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.\-]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) {
    throw new ConfigError(
      `--listen-address ${
        JSON.stringify(text)
      } is not HOST:PORT: use a form such as 127.0.0.1:8080, [::1]:8080 or :8080`,
    );
  }
  const hostname = m[1] ?? (m[2] || "0.0.0.0");
  return { hostname, port };
}

/**
 * Parses a duration: seconds as a number, or with an `ms`, `s`, `m` or `h`
 * unit.
 *
 * @param text The duration.
 * @param flag The flag it came from, for the error message.
 * @returns Milliseconds.
 * @throws {ConfigError} When malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDuration } from "./config.ts";
 * assert(parseDuration("2m", "x") === 120_000);
 * ```
 */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) {
    throw new ConfigError(
      `--${flag} ${
        JSON.stringify(text)
      } is not a duration: use seconds such as 30, or 500ms, 30s, 2m, 1h`,
    );
  }
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!;
  return Math.round(n * scale);
}

function envBoolean(text: string | undefined): boolean {
  if (text === undefined || text === "") return false;
  if (/^(1|true|yes)$/i.test(text)) return true;
  if (/^(0|false|no)$/i.test(text)) return false;
  throw new ConfigError(
    `--trust-forwarded takes true or false, not ${JSON.stringify(text)}`,
  );
}

/**
 * Parses a size in bytes: a number, or with a `KiB`, `MiB` or `GiB` unit.
 *
 * @param text The size.
 * @param flag The flag it came from, for the error message.
 * @returns Bytes.
 * @throws {ConfigError} When malformed or over 4 GiB.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSize } from "./config.ts";
 * assert(parseSize("16MiB", "x") === 16 * 1024 * 1024);
 * ```
 */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+)(B|KiB|MiB|GiB)?$/.exec(text.trim());
  const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
  const bytes = m
    ? Number(m[1]) * unit[(m[2] ?? "B") as keyof typeof unit]
    : NaN;
  if (!(bytes <= 4 * 1024 ** 3)) {
    throw new ConfigError(
      `--${flag} ${
        JSON.stringify(text)
      } is not a size up to 4GiB: use bytes such as 0 or 1048576, or 512KiB, 16MiB`,
    );
  }
  return bytes;
}

function positive(text: string, flag: string): number {
  const ms = parseDuration(text, flag);
  if (ms < 1) {
    throw new ConfigError(`--${flag} must be longer than zero, such as 30s`);
  }
  return ms;
}

// A duration that may also be exactly zero, which turns the limit off;
// one that rounds down to zero (such as 0.1ms) is refused, not taken as off.
function positiveOrOff(text: string, flag: string): number {
  const ms = parseDuration(text, flag);
  if (ms === 0 && /^0*(?:\.0*)?(ms|s|m|h)?$/.test(text.trim())) return 0;
  if (ms < 1) {
    throw new ConfigError(
      `--${flag} must be longer than zero, such as 30s, or 0 to turn it off`,
    );
  }
  return ms;
}

function readArgs(args: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const m = /^--?([a-z][a-z-]*)(?:=(.*))?$/s.exec(arg);
    const spec = m
      ? FLAGS.find((f) => f.name === m[1] && !f.flagless)
      : undefined;
    if (!m || !spec) {
      throw new ConfigError(
        `unknown argument ${
          JSON.stringify(arg)
        }: run with --help to list the flags`,
      );
    }
    let v: string;
    if (spec.kind === "boolean") {
      if (m[2] !== undefined && !/^(true|false|1|0)$/.test(m[2])) {
        throw new ConfigError(`--${spec.name} takes no value`);
      }
      v = m[2] === "false" || m[2] === "0" ? "false" : "true";
    } else if (m[2] !== undefined) {
      v = m[2];
    } else {
      const next = args[i + 1];
      if (next === undefined || /^--?[a-z]/.test(next)) {
        throw new ConfigError(
          `--${spec.name} needs a value: --${spec.name} ${spec.value}`,
        );
      }
      v = next;
      i++;
    }
    out.set(spec.name, [...(out.get(spec.name) ?? []), v]);
  }
  return out;
}

function parseUpstream(text: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    url = new URL("invalid://");
  }
  const clean = (url.protocol === "https:" || url.protocol === "http:") &&
    url.hostname !== "" && !url.username && !url.password && !url.search &&
    !url.hash && (url.pathname === "/" || url.pathname === "");
  if (!clean) {
    throw new ConfigError(
      `--upstream-domain ${
        JSON.stringify(text)
      } is not a registry host: use a login server such as example.azurecr.io, or an origin such as http://127.0.0.1:5000`,
    );
  }
  return url.origin;
}

function parseRoutes(items: readonly string[]): Route[] {
  const routes: Route[] = [];
  for (const item of items) {
    const m = /^([^=]+)=(.*)$/.exec(item);
    const registry = m?.[1]?.trim().toLowerCase() ?? "";
    const prefix = m?.[2]?.trim() ?? "";
    if (!m || !isValidRegistryHost(registry) || !isValidPrefix(prefix)) {
      throw new ConfigError(
        `--route ${
          JSON.stringify(item)
        } is not REGISTRY=PREFIX: use a form such as --route ghcr.io=ghcr`,
      );
    }
    if (routes.some((r) => r.registry === registry)) {
      throw new ConfigError(`--route names ${registry} twice: keep one`);
    }
    routes.push({ registry, prefix });
  }
  return routes;
}

function parsePublicUrl(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.search || url.hash) {
    throw new ConfigError(
      `--public-url ${
        JSON.stringify(text)
      } is not a base URL such as https://mirror.example.com`,
    );
  }
  return url.href.replace(/\/+$/, "");
}

function oneOf<T extends string>(
  text: string,
  flag: string,
  allowed: readonly T[],
): T {
  if ((allowed as readonly string[]).includes(text)) return text as T;
  throw new ConfigError(
    `--${flag} ${JSON.stringify(text)} is not one of ${allowed.join(", ")}`,
  );
}
