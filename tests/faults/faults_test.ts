/**
 * The fault table: each upstream or process failure, and the outcome a
 * client must see. A mirror that fails must fail loudly and quickly so
 * clients fall back; a truncated body must never look complete.
 *
 * Most rows run `main.ts` as a subprocess (1 s header and idle timeouts)
 * in front of a {@link MisbehavingUpstream}; token renewal rows drive
 * `createHandler` and the token classes with a simulated clock.
 *
 * @module
 */

import assert from "node:assert/strict";
import { digestOf } from "../_fixtures.ts";
import { cliPermissions, freePort } from "../_process.ts";
import { download, looksComplete } from "./_client.ts";
import { measured, ms } from "./_report.ts";
import { HEADER_TIMEOUT_MS, IDLE_TIMEOUT_MS, startRig } from "./_rig.ts";
import {
  EXCHANGE,
  READY_EXPIRY_MARGIN_MS,
  seededRandom,
  startTokenRig,
  TOKEN,
} from "./_token_rig.ts";
import { makePki } from "./_tls.ts";
import { delay, MisbehavingUpstream } from "./misbehaving_upstream.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const KIB = 1024;
const MIB = 1024 * KIB;

interface RegistryErrorBody {
  errors: { code: string; message: string }[];
}

async function expectRegistryError(
  res: Response,
  status: number,
): Promise<RegistryErrorBody> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get("content-type") ?? "", /json/);
  const body = JSON.parse(text) as RegistryErrorBody;
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, text);
  assert.equal(typeof body.errors[0]!.code, "string");
  return body;
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await f();
  return [value, performance.now() - t0];
}

Deno.test("fault: upstream connection refused answers 502 quickly and recovers", async () => {
  await using rig = await startRig();
  const ok = await fetch(rig.manifestUrl);
  assert.equal(await digestOf(await ok.arrayBuffer()), rig.manifest);

  await rig.up.stop();
  const [res, took] = await timed(() => fetch(rig.manifestUrl));
  const body = await expectRegistryError(res, 502);
  assert.ok(took < HEADER_TIMEOUT_MS + 1000, `502 took ${took} ms`);

  const [head, headTook] = await timed(() =>
    fetch(rig.manifestUrl, { method: "HEAD" })
  );
  await head.body?.cancel();
  assert.equal(head.status, 502);

  const health = await fetch(`${rig.proxy.url}/healthz`);
  assert.equal(health.status, 200, await health.text());

  rig.up.start();
  const [back, backTook] = await timed(() => fetch(rig.manifestUrl));
  assert.equal(back.status, 200);
  assert.equal(await digestOf(await back.arrayBuffer()), rig.manifest);
  measured("connection refused", {
    get_502_ms: ms(took),
    head_502_ms: ms(headTook),
    recovered_200_ms: ms(backTook),
    code: body.errors[0]!.code,
  });
});

interface StartFailure {
  code: number;
  message: string;
  took: number;
}

/** Starts main.ts against an upstream whose TLS cannot work. */
async function startAgainstBrokenTls(
  kind: "plain port" | "unknown CA",
): Promise<StartFailure> {
  const dir = await Deno.makeTempDir({ prefix: "acr-faults-" });
  const tls = kind === "unknown CA" ? await makePki(dir) : undefined;
  const up = new MisbehavingUpstream({
    acr: { anonymous: true },
    ...(tls ? { tls } : {}),
  });
  up.start();
  try {
    const az = `${dir}/az`;
    await Deno.writeTextFile(az, "#!/bin/sh\nexit 9\n");
    await Deno.chmod(az, 0o755);
    const [out, took] = await timed(() =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...cliPermissions(az),
          MAIN,
          "--upstream-domain",
          `https://127.0.0.1:${up.port}`,
          "--listen-address",
          `127.0.0.1:${freePort()}`,
        ],
        env: {
          AZURE_TOKEN_CREDENTIALS: "AzureCliCredential",
          PATH: `${dir}:${Deno.env.get("PATH")}`,
        },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output()
    );
    const stderr = new TextDecoder().decode(out.stderr);
    const message = /msg="((?:[^"\\]|\\.)*)"/.exec(stderr)?.[1] ?? stderr;
    return { code: out.code, message, took };
  } finally {
    await up.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("fault: TLS that cannot work at start-up makes the proxy exit 1", async () => {
  for (const kind of ["plain port", "unknown CA"] as const) {
    const { code, message, took } = await startAgainstBrokenTls(kind);
    assert.equal(code, 1, message);
    assert.match(
      message,
      /^Cannot reach https:\/\/127\.0\.0\.1:\d+\/v2\/ .*--upstream-domain/,
    );
    assert.ok(took < 10_000, `exit took ${took} ms`);
    measured(`TLS at start-up, ${kind}`, {
      exit_code: code,
      exit_ms: ms(took),
      message: JSON.stringify(message),
    });
  }
});

// The start-up message names why the connection failed, so an operator
// can tell a TLS problem from a routing one.
Deno.test({
  name: "fault: the start-up message says the failure was TLS",
  fn: async () => {
    for (const kind of ["plain port", "unknown CA"] as const) {
      const { message } = await startAgainstBrokenTls(kind);
      assert.match(message, /TLS|certificate|corrupt message|handshake/i);
    }
  },
});

Deno.test("fault: a TLS upstream that breaks later answers 502/504 and recovers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "acr-faults-tls-" });
  const trusted = await makePki(dir, "trusted");
  const stranger = await makePki(dir, "stranger");
  await using rig = await startRig({
    upstream: { acr: { anonymous: true }, tls: trusted },
    env: { DENO_CERT: trusted.caFile },
  });
  try {
    const ok = await fetch(rig.manifestUrl);
    assert.equal(await digestOf(await ok.arrayBuffer()), rig.manifest);

    // What replaces the upstream, and the status clients must get.
    const cases: [string, { cert: string; key: string } | null, number][] = [
      ["plain HTTP on the TLS port", null, 502],
      ["certificate from an unknown CA", stranger, 502],
      ["TLS handshake never answered", null, 504],
    ];
    const took: number[] = [];
    for (const [what, tls, status] of cases) {
      await rig.up.stop();
      rig.up.silent = status === 504;
      rig.up.start(rig.up.port, tls);
      const [res, t] = await timed(() => fetch(rig.manifestUrl));
      await expectRegistryError(res, status);
      assert.ok(t < HEADER_TIMEOUT_MS + 1000, `${what}: took ${t} ms`);
      took.push(t);
    }
    const hung = rig.up.connections.at(-1)!;
    assert.ok(hung.peerClosedAt, "the proxy kept the stalled handshake open");

    rig.up.silent = false;
    await rig.up.stop();
    rig.up.start(rig.up.port, trusted);
    const back = await fetch(rig.manifestUrl);
    assert.equal(back.status, 200);
    assert.equal(await digestOf(await back.arrayBuffer()), rig.manifest);
    measured("TLS upstream breaks", {
      plain_http_502_ms: ms(took[0]!),
      unknown_ca_502_ms: ms(took[1]!),
      stalled_handshake_504_ms: ms(took[2]!),
      stalled_handshake_closed_after_ms: ms(hung.peerClosedAt - hung.openedAt),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fault: upstream stalls before headers: 504 within the header timeout", async () => {
  await using rig = await startRig();
  rig.up.addFault({ path: /\/manifests\//, fault: { kind: "stall-headers" } });
  const [res, took] = await timed(() => fetch(rig.manifestUrl));
  const body = await expectRegistryError(res, 504);
  assert.ok(took >= HEADER_TIMEOUT_MS - 50, `504 came early: ${took} ms`);
  assert.ok(took < HEADER_TIMEOUT_MS + 1000, `504 took ${took} ms`);

  const stalled = await rig.up.waitFor(
    (r) => r.fault === "stall-headers" && r.peerClosedAt !== undefined,
    2000,
  );
  assert.ok(stalled, "the proxy left the stalled upstream request open");
  const cancelAfter = stalled.peerClosedAt! - stalled.receivedAt;
  assert.ok(cancelAfter < HEADER_TIMEOUT_MS + 1000);
  measured("stall before headers", {
    status_504_ms: ms(took),
    upstream_closed_after_ms: ms(cancelAfter),
    code: body.errors[0]!.code,
  });
});

Deno.test("fault: upstream stalls mid-body: the client's download fails within the idle timeout", async () => {
  const size = 512 * KIB;
  await using rig = await startRig({ blobSizes: [size] });
  rig.up.addFault({
    path: /\/blobs\//,
    fault: { kind: "stall-body", afterBytes: 64 * KIB },
  });
  const d = await download(rig.blobUrl(size));
  assert.equal(d.status, 200);
  assert.ok(!looksComplete(d), "a stalled body ended like a complete one");
  assert.ok(d.bytes.length < size);
  const stallToFail = d.endedAt - d.lastByteAt;
  assert.ok(
    stallToFail < IDLE_TIMEOUT_MS + 1000,
    `the failure came ${stallToFail} ms after the last byte`,
  );
  const stalled = await rig.up.waitFor(
    (r) => r.fault === "stall-body" && r.peerClosedAt !== undefined,
    2000,
  );
  assert.ok(stalled, "the proxy left the stalled upstream body open");
  measured("stall mid-body", {
    content_length: d.contentLength ?? "none",
    received: d.bytes.length,
    fail_after_last_byte_ms: ms(stallToFail),
    client_error: JSON.stringify(d.error ?? "none (short body)"),
  });
});

Deno.test("fault: upstream hangs up mid-blob: the client's download fails", async () => {
  const size = 512 * KIB;
  await using rig = await startRig({ blobSizes: [size] });
  rig.up.addFault({
    path: /\/blobs\//,
    fault: { kind: "close-body", afterBytes: 200 * KIB },
  });
  const d = await download(rig.blobUrl(size));
  assert.equal(d.status, 200);
  assert.ok(!looksComplete(d), "a truncated body ended like a complete one");
  assert.ok(d.bytes.length <= 200 * KIB);
  const health = await fetch(`${rig.proxy.url}/healthz`);
  assert.equal(health.status, 200, await health.text());
  measured("upstream closes mid-blob", {
    content_length: d.contentLength ?? "none",
    received: d.bytes.length,
    fail_after_last_byte_ms: ms(d.endedAt - d.lastByteAt),
    client_error: JSON.stringify(d.error ?? "none (short body)"),
  });
});

Deno.test("fault: client disconnects mid-blob: the upstream request is cancelled", async () => {
  const size = 2 * MIB;
  await using rig = await startRig({
    blobSizes: [size],
    args: ["--idle-timeout", "10s"],
  });
  rig.up.addFault({
    path: /\/blobs\//,
    fault: { kind: "slow-body", chunkBytes: 32 * KIB, intervalMs: 50 },
  });
  const d = await download(rig.blobUrl(size), { abortAfterBytes: 256 * KIB });
  const seen = await rig.up.waitFor(
    (r) => r.fault === "slow-body" && r.peerClosedAt !== undefined,
    5000,
  );
  assert.ok(seen, "the upstream kept sending after the client left");
  const lag = seen.peerClosedAt! - d.endedAt;
  assert.ok(lag < 1000, `the upstream saw the cancel ${lag} ms later`);
  assert.ok(seen.bytesSent < size);
  measured("client disconnect (upstream trickling)", {
    upstream_closed_after_client_ms: ms(lag),
    upstream_bytes_sent: seen.bytesSent,
  });
});

Deno.test("fault: client disconnects while the upstream is stalled: the upstream request is cancelled", async () => {
  const size = 2 * MIB;
  await using rig = await startRig({
    blobSizes: [size],
    args: ["--idle-timeout", "10s"],
  });
  rig.up.addFault({
    path: /\/blobs\//,
    fault: { kind: "stall-body", afterBytes: 128 * KIB },
  });
  const d = await download(rig.blobUrl(size), { abortAfterBytes: 128 * KIB });
  const seen = await rig.up.waitFor(
    (r) => r.fault === "stall-body" && r.peerClosedAt !== undefined,
    12_000,
  );
  assert.ok(seen, "the upstream request stayed open after the client left");
  const lag = seen.peerClosedAt! - d.endedAt;
  measured("client disconnect (upstream stalled)", {
    upstream_closed_after_client_ms: ms(lag),
  });
  assert.ok(lag < 1000, `the upstream saw the cancel ${lag} ms later`);
});

Deno.test("fault: proxy killed mid-pull, restarted on the same port: the client resumes and gets the right digest", async () => {
  const size = 2 * MIB;
  await using rig = await startRig({ blobSizes: [size] });
  rig.up.addFault({
    path: /\/blobs\//,
    fault: { kind: "slow-body", chunkBytes: 64 * KIB, intervalMs: 50 },
    times: 1,
  });
  const url = rig.blobUrl(size);
  let killed: Promise<Deno.CommandStatus> | undefined;
  const first = await download(url, {
    onProgress: (n) => {
      if (n >= 512 * KIB && !killed) killed = rig.proxy.stop("SIGKILL");
    },
  });
  const status = await killed;
  assert.equal(status?.signal, "SIGKILL");
  assert.ok(!looksComplete(first), "a killed transfer looked complete");
  assert.ok(first.bytes.length < size);

  const [, restartMs] = await timed(() => rig.restartProxy());
  const parts = [first.bytes];
  let received = first.bytes.length;
  let attempts = 0;
  let resumedWith = 0;
  while (received < size && attempts < 3) {
    attempts++;
    const d = await download(url, {
      headers: { range: `bytes=${received}-` },
    });
    if (d.status === 206) {
      assert.equal(
        d.headers.get("content-range"),
        `bytes ${received}-${size - 1}/${size}`,
      );
      resumedWith = 206;
      parts.push(d.bytes);
      received += d.bytes.length;
    } else if (d.status === 200) {
      resumedWith = 200;
      parts.length = 0;
      parts.push(d.bytes);
      received = d.bytes.length;
    }
  }
  const whole = new Uint8Array(received);
  let at = 0;
  for (const p of parts) {
    whole.set(p, at);
    at += p.length;
  }
  assert.equal(await digestOf(whole), rig.blobs.get(size));
  measured("proxy SIGKILL mid-pull", {
    received_before_kill: first.bytes.length,
    client_error: JSON.stringify(first.error ?? "none (short body)"),
    restart_ms: ms(restartMs),
    resumed_with: resumedWith,
    retries: attempts,
  });
});

Deno.test("fault: SIGTERM mid-download within the grace period: the download completes", async () => {
  const size = 1 * MIB;
  await using rig = await startRig({
    blobSizes: [size],
    args: ["--shutdown-grace", "2s"],
  });
  rig.up.addFault({
    path: /\/blobs\//,
    fault: { kind: "slow-body", chunkBytes: 128 * KIB, intervalMs: 100 },
  });
  let stopping: Promise<Deno.CommandStatus> | undefined;
  let signalledAt = 0;
  const d = await download(rig.blobUrl(size), {
    onProgress: (n) => {
      if (n >= 128 * KIB && !stopping) {
        signalledAt = performance.now();
        stopping = rig.proxy.stop("SIGTERM");
      }
    },
  });
  const status = await stopping!;
  const exitMs = performance.now() - signalledAt;
  assert.ok(looksComplete(d), `download failed: ${d.error}`);
  assert.equal(await digestOf(d.bytes), rig.blobs.get(size));
  assert.equal(status.code, 0, rig.proxy.output());
  assert.match(rig.proxy.output(), /how=drained/);
  measured("SIGTERM, transfer shorter than grace", {
    download_ms_after_signal: ms(d.endedAt - signalledAt),
    exit_ms_after_signal: ms(exitMs),
    exit_code: status.code,
  });
});

Deno.test("fault: SIGTERM mid-download beyond the grace period: cut off as a failure, exit 0", async () => {
  const size = 4 * MIB;
  await using rig = await startRig({
    blobSizes: [size],
    args: ["--shutdown-grace", "2s"],
  });
  rig.up.addFault({
    path: /\/blobs\//,
    fault: { kind: "slow-body", chunkBytes: 64 * KIB, intervalMs: 100 },
  });
  let stopping: Promise<Deno.CommandStatus> | undefined;
  let signalledAt = 0;
  let refused: Promise<[string, number]> | undefined;
  const d = await download(rig.blobUrl(size), {
    onProgress: (n) => {
      if (n >= 128 * KIB && !stopping) {
        signalledAt = performance.now();
        stopping = rig.proxy.stop("SIGTERM");
        // A new client during the drain must be turned away at once.
        refused = delay(300).then(() =>
          timed(() =>
            fetch(rig.manifestUrl).then(
              async (r) => `status ${r.status} ${await r.text()}`,
              (e) => `rejected: ${e instanceof Error ? e.name : e}`,
            )
          )
        );
      }
    },
  });
  const status = await stopping!;
  const exitMs = performance.now() - signalledAt;
  assert.ok(!looksComplete(d), "a cut-off download looked complete");
  assert.ok(d.bytes.length < size);
  assert.equal(status.code, 0, rig.proxy.output());
  assert.ok(exitMs < 2000 + 1500, `exit took ${exitMs} ms after SIGTERM`);
  const [newClient, newClientMs] = await refused!;
  measured("SIGTERM, transfer longer than grace", {
    received: d.bytes.length,
    of: size,
    client_error: JSON.stringify(d.error ?? "none (short body)"),
    exit_ms_after_signal: ms(exitMs),
    exit_code: status.code,
    new_client_during_drain: JSON.stringify(newClient.slice(0, 60)),
    new_client_ms: ms(newClientMs),
  });
  assert.match(newClient, /^rejected/, "a new client was served during drain");
  assert.ok(newClientMs < 1000);
});

const MINUTE = 60_000;

Deno.test("fault: Entra ID down at renewal time: old token used until expiry, readiness drops first, renewal resumes", async () => {
  await using rig = await startTokenRig({ random: seededRandom(7) });
  const first = await rig.pull();
  assert.equal(first.status, 200, first.body);
  const original = rig.lastRefreshTokenUsed();
  assert.ok(original);
  const expiry = rig.refresh.expiresAt!;

  rig.entra.up = false;
  const callsBefore = rig.entra.calls;
  let notReadyAt: number | undefined;
  let nextPull = rig.clock.now + 10 * MINUTE;
  let pulls = 0;
  await rig.runLoop(expiry - READY_EXPIRY_MARGIN_MS + MINUTE, async () => {
    const now = rig.clock.now;
    if (!rig.ready()) notReadyAt ??= now;
    else assert.equal(notReadyAt, undefined, "readiness came back by itself");
    if (now >= nextPull && now < expiry) {
      nextPull = now + 10 * MINUTE;
      pulls++;
      const res = await rig.pull();
      assert.equal(res.status, 200, `pull at +${(now - expiry) / 1000}s`);
      assert.equal(rig.lastRefreshTokenUsed(), original);
    }
  });
  const attemptsWhileDown = rig.entra.calls - callsBefore;
  assert.ok(notReadyAt !== undefined, "still ready 1 min before expiry");
  assert.ok(notReadyAt >= expiry - READY_EXPIRY_MARGIN_MS);
  assert.ok(notReadyAt <= expiry - READY_EXPIRY_MARGIN_MS + 30_000);
  assert.equal(rig.refresh.expiresAt, expiry, "no new token while down");
  const readyz = await rig.handler.fetch(
    new Request("http://127.0.0.1/readyz"),
  );
  assert.equal(readyz.status, 503, await readyz.text());
  assert.ok(
    attemptsWhileDown >= 5 && attemptsWhileDown <= 40,
    `${attemptsWhileDown} sign-in attempts in the hour before expiry`,
  );

  // Past expiry (and past the cached access token): loud failure, and the
  // expired refresh token is not sent any more.
  rig.clock.now = expiry + 11 * MINUTE;
  const tokenCalls = rig.up.count(TOKEN);
  const [expired, expiredMs] = await timed(() => rig.pull());
  assert.equal(expired.status, 502, expired.body);
  assert.equal(rig.up.count(TOKEN), tokenCalls);

  // Entra returns: the loop renews by itself.
  rig.entra.up = true;
  const backAt = rig.clock.now;
  await rig.runLoop(backAt + 10 * MINUTE, () => {
    if (rig.refresh.expiresAt! > rig.clock.now) rig.clock.now = Infinity;
  });
  const renewed = rig.renewals.findLast((r) => r.ok);
  assert.ok(
    renewed && renewed.at >= backAt,
    "no renewal after Entra came back",
  );
  assert.ok(renewed.at - backAt <= 5 * MINUTE + 30_000);
  rig.clock.now = renewed.at;
  assert.ok(rig.ready());
  const after = await rig.pull();
  assert.equal(after.status, 200, after.body);
  assert.notEqual(rig.lastRefreshTokenUsed(), original);
  measured("Entra down at renewal", {
    signin_attempts_in_58_sim_min: attemptsWhileDown,
    pulls_ok_on_old_token: pulls,
    not_ready_s_before_expiry: Math.round((expiry - notReadyAt) / 1000),
    after_expiry_status: expired.status,
    after_expiry_ms: ms(expiredMs),
    renewed_s_after_entra_back: Math.round((renewed.at - backAt) / 1000),
  });
});

for (const status of [429, 503]) {
  for (
    const [jitter, random] of [
      ["no jitter (worst case)", (): number => 0],
      ["seeded jitter", seededRandom(42)],
    ] as const
  ) {
    Deno.test(`fault: ACR exchange answers ${status}: the renewal loop backs off (${jitter})`, async () => {
      await using rig = await startTokenRig({ random });
      rig.up.addFault({
        path: EXCHANGE,
        fault: { kind: "status", status, retryAfterSeconds: 1 },
      });
      const before = rig.up.count(EXCHANGE);
      // Run until renewal starts failing, then watch 10 simulated minutes.
      let windowEnd = Infinity;
      await rig.runLoop(rig.refresh.expiresAt!, () => {
        if (windowEnd === Infinity && rig.up.count(EXCHANGE) > before) {
          windowEnd = rig.clock.now + 10 * MINUTE;
        }
        if (rig.clock.now >= windowEnd) rig.clock.now = Infinity;
      });
      const attempts = rig.up.count(EXCHANGE) - before;
      const failures = rig.renewals.filter((r) => !r.ok);
      assert.equal(failures.length, attempts);
      assert.ok(attempts <= 12, `${attempts} exchange attempts in 10 min`);
      assert.ok(attempts >= 5, `only ${attempts} attempts: gave up?`);

      const gaps = failures.slice(1).map((f, i) => f.at - failures[i]!.at);
      gaps.forEach((gap, i) => {
        const base = Math.min(5 * MINUTE, 1000 * 2 ** (i + 1));
        assert.ok(
          gap >= base / 2 && gap <= base,
          `gap ${i} was ${gap} ms, base ${base}`,
        );
      });
      const ratios = gaps.map((g, i) =>
        g / Math.min(5 * MINUTE, 1000 * 2 ** (i + 1))
      );
      if (random() !== 0) {
        assert.ok(
          Math.max(...ratios) - Math.min(...ratios) > 0.1,
          "no jitter between attempts",
        );
      }

      rig.clock.now = failures.at(-1)!.at;
      assert.ok(rig.ready(), "not ready while the old token is still good");
      const res = await rig.pull();
      assert.equal(res.status, 200, res.body);
      measured(`exchange ${status}, ${jitter}`, {
        attempts_in_10_sim_min: attempts,
        gaps_s: gaps.map((g) => (g / 1000).toFixed(1)).join(","),
      });
    });
  }
}

// Once the refresh token has expired and renewal is backing off, client
// requests fail at once with the last error instead of each signing in to
// Entra ID and posting to /oauth2/exchange.
Deno.test({
  name:
    "fault: ACR exchange throttled after the refresh token expired: client requests do not storm it",
  fn: async () => {
    await using rig = await startTokenRig({ random: seededRandom(3) });
    rig.up.addFault({ path: EXCHANGE, fault: { kind: "status", status: 429 } });
    rig.clock.now = rig.refresh.expiresAt! + MINUTE;
    const before = rig.up.count(EXCHANGE);
    const entraBefore = rig.entra.calls;
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      statuses.push((await rig.pull()).status);
      rig.clock.now += 100;
    }
    const attempts = rig.up.count(EXCHANGE) - before;
    measured("exchange 429 after expiry, 20 client pulls in 2 sim s", {
      exchange_requests: attempts,
      entra_signins: rig.entra.calls - entraBefore,
      client_statuses: [...new Set(statuses)].join(","),
    });
    assert.ok(statuses.every((s) => s === 502 || s === 429));
    assert.ok(attempts <= 2, `${attempts} exchange requests for 20 pulls`);
  },
});

for (const [status, expected] of [[429, 429], [503, 502]] as const) {
  Deno.test(`fault: ACR token endpoint answers ${status}: clients get ${expected} at once, one upstream request each at most`, async () => {
    await using rig = await startTokenRig();
    rig.up.addFault({ path: TOKEN, fault: { kind: "status", status } });
    const before = rig.up.count(TOKEN);
    const [results, took] = await timed(() =>
      Promise.all(Array.from({ length: 20 }, () => rig.pull()))
    );
    for (const r of results) {
      assert.equal(r.status, expected, r.body);
      assert.ok(JSON.parse(r.body).errors[0].code);
    }
    const concurrent = rig.up.count(TOKEN) - before;
    const sequentialStart = rig.up.count(TOKEN);
    for (let i = 0; i < 10; i++) await rig.pull();
    const sequential = rig.up.count(TOKEN) - sequentialStart;
    assert.ok(concurrent <= 20, `${concurrent} token requests for 20 pulls`);
    assert.ok(sequential <= 10, `${sequential} token requests for 10 pulls`);
    measured(`token endpoint ${status}`, {
      client_status: expected,
      twenty_concurrent_ms: ms(took),
      token_requests_for_20_concurrent: concurrent,
      token_requests_for_10_sequential: sequential,
    });
  });
}
