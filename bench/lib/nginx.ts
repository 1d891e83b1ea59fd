/**
 * nginx configurations for the bench: the fast static upstream and the
 * reverse-proxy contender. Both run in the foreground (`daemon off`) with
 * their own prefix, pid file, logs and temp paths inside the run's folder.
 *
 * @module
 */
import { allBlobs, type Fixtures, REPOSITORY, TAG } from "./fixtures.ts";
import { type Service, startService, waitForHttp } from "./process.ts";

/** Upstream repository prefix (the cache-rule prefix of the product). */
export const UPSTREAM_PREFIX = "hub";

function commonHead(prefix: string): string {
  return `daemon off;
master_process on;
worker_processes auto;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server_tokens off;
  types { }
  default_type application/octet-stream;
  gzip off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
`;
}

function exactFile(
  location: string,
  path: string,
  mediaType: string,
  digest: string,
): string {
  return `    location = ${location} {
      default_type ${mediaType};
      add_header Docker-Content-Digest ${digest};
      add_header Docker-Distribution-Api-Version registry/2.0;
      alias ${path};
    }
`;
}

/**
 * Config of the upstream: `GET /v2/` answers 200 (anonymous registry), the
 * manifest and blobs are served from files under
 * `/v2/hub/library/bench/...` with registry headers.
 */
export function upstreamConfig(
  prefix: string,
  port: number,
  fixtures: Fixtures,
): string {
  const base = `/v2/${UPSTREAM_PREFIX}/${REPOSITORY}`;
  const m = fixtures.manifest;
  const locations = [
    exactFile(`${base}/manifests/${TAG}`, m.path, m.mediaType, m.digest),
    exactFile(`${base}/manifests/${m.digest}`, m.path, m.mediaType, m.digest),
    ...allBlobs(fixtures).map((b) =>
      exactFile(`${base}/blobs/${b.digest}`, b.path, b.mediaType, b.digest)
    ),
  ];
  return `${commonHead(prefix)}  server {
    listen 127.0.0.1:${port};
    location = /v2/ {
      default_type application/json;
      add_header Docker-Distribution-Api-Version registry/2.0;
      return 200 '{}';
    }
${locations.join("")}    location / {
      return 404;
    }
  }
}
`;
}

/**
 * Buffer size of the tuned nginx proxy. With `proxy_buffering off` nginx
 * relays the body through one `proxy_buffer_size` buffer, 4 KiB by default,
 * which costs it about two thirds of its blob throughput here. 64 KiB is the
 * size class the other contenders copy with (Go 32 KiB, Deno 64 KiB).
 */
export const TUNED_PROXY_BUFFER = "64k";

/**
 * Config of an nginx reverse-proxy contender: `/v2/<name>/...` is rewritten
 * to `/v2/hub/<name>/...` on the upstream, unbuffered, keep-alive upstream.
 * `bufferSize` sets `proxy_buffer_size`; `null` keeps nginx's default.
 */
export function proxyConfig(
  prefix: string,
  port: number,
  upstreamPort: number,
  bufferSize: string | null,
): string {
  const buffers = bufferSize === null
    ? ""
    : `    proxy_buffer_size ${bufferSize};
    proxy_buffers 4 ${bufferSize};
    proxy_busy_buffers_size ${bufferSize};
`;
  return `${commonHead(prefix)}  upstream registry {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_request_buffering off;
${buffers}    location = /v2/ {
      proxy_pass http://registry;
    }
    location /v2/ {
      rewrite ^/v2/(.*)$ /v2/${UPSTREAM_PREFIX}/$1 break;
      proxy_pass http://registry;
    }
  }
}
`;
}

/**
 * Writes `config` into `prefix` and starts nginx on it in the foreground,
 * then waits until `readyUrl` answers.
 */
export async function startNginx(
  name: string,
  prefix: string,
  config: string,
  readyUrl: string,
): Promise<Service> {
  await Deno.mkdir(prefix, { recursive: true, mode: 0o755 });
  await Deno.chmod(prefix, 0o755);
  const confPath = `${prefix}/nginx.conf`;
  await Deno.writeTextFile(confPath, config);
  const service = startService({
    name,
    command: "nginx",
    args: ["-p", prefix, "-c", confPath, "-e", `${prefix}/error.log`],
  });
  try {
    await waitForHttp(readyUrl, service, 10_000);
  } catch (error) {
    const log = await Deno.readTextFile(`${prefix}/error.log`).catch(() => "");
    await service.stop();
    throw new Error(
      `${error instanceof Error ? error.message : error}\n${log}`,
    );
  }
  return service;
}
