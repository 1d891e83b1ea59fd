/**
 * A throwaway certificate authority and a server certificate for
 * 127.0.0.1, made with the `openssl` command line.
 *
 * @module
 */

/** PEM files for one TLS server and the CA that signed it. */
export interface TestPki {
  /** Path of the CA certificate (give it to clients as `DENO_CERT`). */
  caFile: string;
  /** The server certificate chain, PEM. */
  cert: string;
  /** The server key, PEM. */
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/**
 * Makes a CA and a certificate for `IP:127.0.0.1` signed by it.
 *
 * @param dir An empty directory to write into.
 * @param name Distinguishes several CAs in one directory.
 * @returns The CA path and the server's PEM certificate and key.
 */
export async function makePki(dir: string, name = "test"): Promise<TestPki> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name} fault-suite CA`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout",
    `${name}-ca.key`,
    "-out",
    `${name}-ca.crt`,
  ], dir);
  await openssl([
    "req",
    "-new",
    ...ec,
    "-nodes",
    "-subj",
    "/CN=127.0.0.1",
    "-keyout",
    `${name}-server.key`,
    "-out",
    `${name}-server.csr`,
  ], dir);
  await Deno.writeTextFile(
    `${dir}/${name}-server.ext`,
    [
      "subjectAltName=IP:127.0.0.1",
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      "",
    ].join("\n"),
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}-server.csr`,
    "-CA",
    `${name}-ca.crt`,
    "-CAkey",
    `${name}-ca.key`,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    `${name}-server.ext`,
    "-out",
    `${name}-server.crt`,
  ], dir);
  return {
    caFile: `${dir}/${name}-ca.crt`,
    cert: await Deno.readTextFile(`${dir}/${name}-server.crt`),
    key: await Deno.readTextFile(`${dir}/${name}-server.key`),
  };
}
