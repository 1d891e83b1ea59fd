/**
 * Naive baseline proxy: Deno.serve + fetch, nothing else. Maps
 * `/v2/<name>/...` onto `<upstream>/v2/<prefix>/<name>/...` and streams
 * bodies through.
 *
 * Usage: deno run --allow-net=127.0.0.1 naive.ts PORT UPSTREAM_ORIGIN PREFIX
 *
 * @module
 */
const [port = "8080", upstream = "http://127.0.0.1:5000", prefix = "hub"] =
  Deno.args;

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "host",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

function endToEnd(headers: Headers): Headers {
  const out = new Headers();
  for (const [name, value] of headers) {
    if (!HOP_BY_HOP.has(name)) out.append(name, value);
  }
  return out;
}

async function handle(req: Request): Promise<Response> {
  const { pathname, search } = new URL(req.url);
  const path = pathname.startsWith("/v2/") && pathname !== "/v2/"
    ? `/v2/${prefix}/${pathname.slice(4)}`
    : pathname;
  const res = await fetch(`${upstream}${path}${search}`, {
    method: req.method,
    headers: endToEnd(req.headers),
    redirect: "manual",
  });
  const body = req.method === "HEAD" ? null : res.body;
  return new Response(body, {
    status: res.status,
    headers: endToEnd(res.headers),
  });
}

Deno.serve({
  hostname: "127.0.0.1",
  port: Number(port),
  onListen: (): void => {},
}, handle);
