import assert from "node:assert/strict";
import { defaultCredential, entraTokenProvider } from "../../src/entra.ts";

// The credential is pinned to the Azure CLI, and the only `az` on PATH is
// a fake that never answers: nothing else is ever asked for a token.
Deno.test("a sign-in through az that never answers fails after the process timeout", async () => {
  const dir = await Deno.makeTempDir();
  const az = `${dir}/az`;
  await Deno.writeTextFile(az, "#!/bin/sh\nexec sleep 30\n");
  await Deno.chmod(az, 0o755);
  const saved = {
    path: Deno.env.get("PATH"),
    pinned: Deno.env.get("AZURE_TOKEN_CREDENTIALS"),
  };
  Deno.env.set("PATH", `${dir}:${saved.path}`);
  Deno.env.set("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential");
  try {
    const getToken = entraTokenProvider(
      "https://containerregistry.azure.net/.default",
      defaultCredential(300),
    );
    const started = Date.now();
    await assert.rejects(getToken());
    const took = Date.now() - started;
    assert.ok(took >= 300 && took < 5_000, `failed after ${took} ms`);
  } finally {
    Deno.env.set("PATH", saved.path ?? "");
    if (saved.pinned === undefined) Deno.env.delete("AZURE_TOKEN_CREDENTIALS");
    else Deno.env.set("AZURE_TOKEN_CREDENTIALS", saved.pinned);
    await Deno.remove(dir, { recursive: true });
  }
});
