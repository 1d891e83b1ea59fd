/**
 * Signing key and self-signed certificate for the registry's token auth:
 * the key is made with Web Crypto (ECDSA P-256), the certificate with
 * `openssl req -x509`.
 *
 * @module
 */

import { type Es256Signer, libtrustKeyId } from "./jwt.ts";
import { runOk } from "./proc.ts";

/** Key material written to disk for the registry. */
export interface Pki {
  /** Signer for ES256 tokens (kid in libtrust format). */
  signer: Es256Signer;
  /** PKCS#8 PEM private key file. */
  keyPath: string;
  /** PEM certificate bundle for `auth.token.rootcertbundle`. */
  bundlePath: string;
}

function pem(label: string, der: Uint8Array): string {
  let bin = "";
  for (const b of der) bin += String.fromCharCode(b);
  const lines = btoa(bin).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}

/**
 * Generates an EC P-256 key and a self-signed certificate in `dir`.
 *
 * @param dir directory to write `signer.key` and `bundle.crt` into
 * @returns the signer and file paths
 */
export async function createPki(dir: string): Promise<Pki> {
  const pair = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const pkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", pair.privateKey),
  );
  const spki = new Uint8Array(
    await crypto.subtle.exportKey("spki", pair.publicKey),
  );
  const keyPath = `${dir}/signer.key`;
  const bundlePath = `${dir}/bundle.crt`;
  await Deno.writeTextFile(keyPath, pem("PRIVATE KEY", pkcs8), {
    mode: 0o600,
  });
  await runOk("openssl", [
    "req",
    "-new",
    "-x509",
    "-key",
    keyPath,
    "-out",
    bundlePath,
    "-days",
    "30",
    "-subj",
    "/CN=fake-acr-signer",
  ]);
  return {
    signer: {
      privateKey: pair.privateKey,
      publicKey: pair.publicKey,
      kid: await libtrustKeyId(spki),
    },
    keyPath,
    bundlePath,
  };
}

/** A TLS server certificate for the proxy's listener. */
export interface ServerCert {
  /** PEM certificate (self-signed, `CA:FALSE`, SAN `IP:127.0.0.1`). */
  certFile: string;
  /** PEM private key (PKCS#8). */
  keyFile: string;
  /** The certificate's PEM text (what clients trust). */
  certPem: string;
  /** A directory holding only `ca.crt` (for `--src-cert-dir`/`--cert-dir`). */
  certDir: string;
}

/**
 * Generates a self-signed end-entity certificate for 127.0.0.1 with
 * openssl: EC P-256, `basicConstraints=critical,CA:FALSE`, SAN
 * `IP:127.0.0.1`, serverAuth. Clients trust it as its own anchor.
 *
 * @param dir directory to write into (created if missing)
 * @returns file paths and PEM text
 */
export async function createServerCert(dir: string): Promise<ServerCert> {
  await Deno.mkdir(`${dir}/certs.d`, { recursive: true });
  const certFile = `${dir}/proxy.crt`;
  const keyFile = `${dir}/proxy.key`;
  await runOk("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-addext",
    "keyUsage=critical,digitalSignature",
    "-addext",
    "extendedKeyUsage=serverAuth",
  ]);
  const certPem = await Deno.readTextFile(certFile);
  await Deno.writeTextFile(`${dir}/certs.d/ca.crt`, certPem);
  return { certFile, keyFile, certPem, certDir: `${dir}/certs.d` };
}
