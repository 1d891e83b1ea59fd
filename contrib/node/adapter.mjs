// Serve the acr-cache-proxy handler from Node's `node:http`.
//
// The handler speaks web-standard Request and Response; this adapter turns
// an IncomingMessage into a Request (with an AbortSignal that fires when the
// client goes away) and streams the Response back without buffering it.
//
//   import http from "node:http";
//   import { createHandler } from "@acr-cache-proxy/acr-cache-proxy";
//   import { toNodeListener } from "./adapter.mjs";
//   const handler = createHandler({ upstream: "https://example.azurecr.io",
//     defaultRoute: { registry: "docker.io", prefix: "hub" }, mode: "inject" });
//   http.createServer(toNodeListener(handler)).listen(8080, "127.0.0.1");

import { Readable } from "node:stream";

/**
 * Wraps a `{ fetch(Request): Promise<Response> }` handler as a `node:http`
 * request listener.
 *
 * @param {{ fetch(request: Request): Promise<Response> }} handler
 * @returns {(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => void}
 */
export function toNodeListener(handler) {
  return (req, res) => {
    const gone = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) gone.abort();
    });

    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (Array.isArray(value)) value.forEach((v) => headers.append(name, v));
      else if (value !== undefined) headers.set(name, value);
    }
    const withBody = req.method !== "GET" && req.method !== "HEAD";
    const request = new Request(
      `http://${req.headers.host ?? "localhost"}${req.url}`,
      {
        method: req.method,
        headers,
        signal: gone.signal,
        ...(withBody ? { body: Readable.toWeb(req), duplex: "half" } : {}),
      },
    );

    handler.fetch(request).then((response) => {
      res.statusCode = response.status;
      response.headers.forEach((value, name) => res.setHeader(name, value));
      if (!response.body) {
        res.end();
        return;
      }
      const body = Readable.fromWeb(response.body);
      // A failed upstream body must reach the client as a broken download,
      // never as a short success: destroy the socket instead of ending.
      body.on("error", (e) => res.destroy(e));
      res.on("close", () => body.destroy());
      body.pipe(res);
    }).catch(() => {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else {
        res.destroy();
      }
    });
  };
}
