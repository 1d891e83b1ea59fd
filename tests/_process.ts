/**
 * Starting `main.ts` as a subprocess the way the README says, with a fake
 * `az` first on `PATH`, against a fake ACR served on loopback.
 *
 * @module
 */

import { FakeAcr, type FakeAcrOptions } from "../contrib/demo/fake_acr.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The permission flags the README documents for the Azure CLI credential. */
export function cliPermissions(
  azPath: string,
  extraRead: string[] = [],
): string[] {
  return [
    "--allow-net",
    "--allow-env",
    "--allow-sys=uid,osRelease",
    "--allow-run=az",
    `--allow-read=${[azPath, ...extraRead].join(",")}`,
  ];
}

/** A fake ACR listening on loopback with its storage origin. */
export interface ServedAcr {
  acr: FakeAcr;
  origin: string;
  close(): Promise<void>;
}

/**
 * Serves a fake ACR and its storage origin on 127.0.0.1.
 *
 * @param options Fake behaviour.
 * @returns The fake and its origin.
 */
export function serveFakeAcr(options: FakeAcrOptions = {}): ServedAcr {
  const acr = new FakeAcr(options);
  const quiet = { hostname: "127.0.0.1", port: 0, onListen(): void {} };
  const registry = Deno.serve(quiet, acr.handle);
  const storage = Deno.serve(quiet, acr.storage);
  acr.storageOrigin = `http://127.0.0.1:${storage.addr.port}`;
  return {
    acr,
    origin: `http://127.0.0.1:${registry.addr.port}`,
    async close(): Promise<void> {
      await Promise.all([registry.shutdown(), storage.shutdown()]);
    },
  };
}

/**
 * Writes a fake `az` that prints an access token, or fails like a CLI that
 * is not logged in.
 *
 * @param dir Where to put it.
 * @param loggedIn Whether it succeeds.
 * @returns The absolute path of the script.
 */
export async function writeFakeAz(
  dir: string,
  loggedIn = true,
): Promise<string> {
  const path = `${dir}/az`;
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const body = loggedIn
    ? `printf '%s' '{"accessToken":"fake-entra-token","expires_on":${expires},"tokenType":"Bearer"}'`
    : `echo "ERROR: Please run 'az login' to setup account." >&2; exit 1`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

/**
 * Finds a free loopback port.
 *
 * @returns The port.
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A running proxy process. */
export interface ProxyProcess {
  url: string;
  child: Deno.ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/**
 * Starts `main.ts` with the Azure CLI credential pinned and waits until
 * `/healthz` answers.
 *
 * @param args Flags after `main.ts`.
 * @param opts The fake `az` path and extra environment.
 * @returns The process.
 */
export async function startProxy(
  args: string[],
  opts: {
    azPath: string;
    env?: Record<string, string>;
    port?: number;
    healthScheme?: "http" | "https";
    caCert?: string;
    extraRead?: string[];
  },
): Promise<ProxyProcess> {
  const port = opts.port ?? freePort();
  const dir = opts.azPath.slice(0, opts.azPath.lastIndexOf("/"));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...cliPermissions(opts.azPath, opts.extraRead),
      MAIN,
      ...args,
      "--listen-address",
      `127.0.0.1:${port}`,
    ],
    env: {
      AZURE_TOKEN_CREDENTIALS: "AzureCliCredential",
      PATH: `${dir}:${Deno.env.get("PATH")}`,
      ...opts.env,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  let text = "";
  const collect = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
    }
  };
  const done = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const url = `${opts.healthScheme ?? "http"}://127.0.0.1:${port}`;
  const client = opts.caCert
    ? Deno.createHttpClient({ caCerts: [opts.caCert] })
    : undefined;

  const proc: ProxyProcess = {
    url,
    child,
    output: () => text,
    async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
      try {
        child.kill(signal);
      } catch {
        // Already exited.
      }
      const status = await child.status;
      await done;
      return status;
    },
  };

  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 100)),
    ]);
    if (exited) break;
    try {
      const res = await fetch(`${url}/healthz`, client ? { client } : {});
      await res.body?.cancel();
      if (res.ok) {
        client?.close();
        return proc;
      }
    } catch {
      // Not listening yet.
    }
  }
  await proc.stop("SIGKILL");
  throw new Error(`the proxy did not start:\n${text}`);
}
