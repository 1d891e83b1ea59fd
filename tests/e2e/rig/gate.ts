/**
 * Preconditions for tests that run real registry clients: an isolated
 * network namespace (loopback only) and the client tools. When a
 * precondition is missing the test is skipped with one line naming the
 * fix, or fails when `CI=true`.
 *
 * @module
 */

/** How to run the suite isolated. */
export const ISOLATED_RUN =
  "unshare -n -- sh -c 'ip link set lo up && deno task test'";

/**
 * Network interfaces visible to this process. Reads `/proc/self/net/dev`
 * (per network namespace); `/sys/class/net` keeps showing the host's
 * interfaces inside `unshare -n` unless sysfs is remounted.
 *
 * @returns interface names
 */
export function networkInterfaces(): string[] {
  try {
    return Deno.readTextFileSync("/proc/self/net/dev").split("\n").slice(2)
      .map((l) => l.split(":")[0]!.trim()).filter((n) => n !== "");
  } catch {
    try {
      return [...Deno.readDirSync("/sys/class/net")].map((e) => e.name);
    } catch {
      return [];
    }
  }
}

/**
 * True when the only network interface is loopback, so nothing a client
 * does (docker.io fallbacks included) can leave the machine.
 *
 * @returns whether the process is in a loopback-only namespace
 */
export function isIsolated(): boolean {
  const names = networkInterfaces();
  return names.length > 0 && names.every((n) => n === "lo");
}

/**
 * Finds an executable on PATH.
 *
 * @param name executable name
 * @returns absolute path or null
 */
export function which(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) {
        return `${dir}/${name}`;
      }
    } catch {
      // not here
    }
  }
  return null;
}

const PACKAGE_OF: Record<string, string> = {
  skopeo: "skopeo",
  podman: "podman",
  ctr: "containerd",
  containerd: "containerd",
  dockerd: "docker.io",
  docker: "docker.io",
  "docker-registry": "docker-registry",
  openssl: "openssl",
};

/** What a test needs. */
export interface Needs {
  /** Must run in a loopback-only network namespace (clients that may fall back to docker.io). */
  isolated?: boolean;
  /** Executables that must be on PATH. */
  tools?: string[];
  /** Must run as root (private daemons). */
  root?: boolean;
}

/**
 * Describes the first unmet precondition, or null when all hold.
 *
 * @param needs preconditions
 * @returns one line naming what to do, or null
 */
export function unmet(needs: Needs): string | null {
  const tools = ["docker-registry", "openssl", ...(needs.tools ?? [])];
  const missing = tools.filter((t) => which(t) === null);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => PACKAGE_OF[t] ?? t))];
    return `missing ${
      missing.join(", ")
    }: apt-get install --no-install-recommends ${pkgs.join(" ")}`;
  }
  if (needs.root && Deno.uid?.() !== 0) return "needs root (private daemons)";
  if (needs.isolated && !isIsolated()) {
    return `needs a loopback-only network namespace: run ${ISOLATED_RUN}`;
  }
  return null;
}

/**
 * Registers a Deno test gated on preconditions: skipped with a one-line
 * reason when they do not hold, failed instead when `CI=true`.
 *
 * @param name test name
 * @param needs preconditions
 * @param fn test body
 */
export function gatedTest(
  name: string,
  needs: Needs,
  fn: (t: Deno.TestContext) => Promise<void>,
): void {
  const reason = unmet(needs);
  if (reason === null) {
    Deno.test({ name, fn });
    return;
  }
  if (Deno.env.get("CI") === "true") {
    Deno.test({
      name,
      fn: () => {
        throw new Error(reason);
      },
    });
    return;
  }
  // deno-lint-ignore no-console
  console.log(`skip "${name}": ${reason}`);
  Deno.test({ name, ignore: true, fn: () => {} });
}
