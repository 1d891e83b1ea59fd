/**
 * The `/token` workload: requests per second the proxy answers from its
 * warm token cache, against the same handler forwarding every token request
 * to the token service. Both measured with wrk in one run.
 *
 * @module
 */

/** Result of the `/token` workload. */
export interface TokenRate {
  /** Requests/s with the warm cache. */
  cachedRps: number;
  /** Requests/s forwarding each request. */
  forwardedRps: number;
  /** cachedRps / forwardedRps. */
  ratio: number;
  /** Non-2xx answers or socket errors seen by wrk, both runs. */
  errors: number;
}

const SERVER = new URL("./server.ts", import.meta.url).pathname;

/**
 * Runs the workload.
 *
 * @param seconds wrk duration per side.
 * @param ports Three free loopback ports: fake, cached, forward.
 * @param latencyMs Delay the fake token service adds to each call.
 * @returns The rates.
 */
export async function measureTokenRate(
  seconds: number,
  ports: [number, number, number],
  latencyMs = 0,
): Promise<TokenRate> {
  const [fakePort, cachedPort, forwardPort] = ports;
  const upstream = `http://127.0.0.1:${fakePort}`;
  const children = [
    spawn([
      "--role",
      "fake",
      "--port",
      String(fakePort),
      "--latency-ms",
      String(latencyMs),
    ]),
  ];
  try {
    await waitFor(`${upstream}/v2/`);
    children.push(
      spawn([
        "--role",
        "cached",
        "--port",
        String(cachedPort),
        "--upstream",
        upstream,
      ]),
      spawn([
        "--role",
        "forward",
        "--port",
        String(forwardPort),
        "--upstream",
        upstream,
      ]),
    );
    const path =
      "/token?service=registry.docker.io&scope=repository:library/bench:pull";
    await waitFor(`http://127.0.0.1:${cachedPort}${path}`);
    await waitFor(`http://127.0.0.1:${forwardPort}${path}`);

    const cached = await wrk(`http://127.0.0.1:${cachedPort}${path}`, seconds);
    const forwarded = await wrk(
      `http://127.0.0.1:${forwardPort}${path}`,
      seconds,
    );
    return {
      cachedRps: cached.rps,
      forwardedRps: forwarded.rps,
      ratio: forwarded.rps > 0 ? cached.rps / forwarded.rps : 0,
      errors: cached.errors + forwarded.errors,
    };
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
    }
  }
}

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", "--allow-read", SERVER, ...args],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function waitFor(url: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      if (res.status < 500) return;
    } catch {
      // Not up yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within 20 s`);
}

async function wrk(
  url: string,
  seconds: number,
): Promise<{ rps: number; errors: number }> {
  const out = await new Deno.Command("wrk", {
    args: ["-t2", "-c64", `-d${seconds}s`, url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const sock =
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
      .exec(text);
  const socket = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { rps, errors: non2xx + socket };
}

if (import.meta.main) {
  const seconds = Number(Deno.args[0] ?? 5);
  const latency = Number(Deno.args[1] ?? 0);
  const free = (): number => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    return p;
  };
  const r = await measureTokenRate(seconds, [free(), free(), free()], latency);
  // deno-lint-ignore no-console
  console.log(JSON.stringify(r));
}
