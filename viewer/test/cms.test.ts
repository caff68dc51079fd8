// Known-answer tests of the viewer's CMS code against OpenSSL-made envelopes and dcmseal's own writer.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  DecryptionError, IntegrityError, KeyRing, NOT_VERIFIED, UnprotectedError, UnsupportedError, decryptEnvelope,
  isEnvelope, openSecureFile, parseEnvelope, stats,
} from "../src/cms";
import { fromHex, hex } from "../src/der";
import { unwrapKey, wrapKey, WRONG_KEY_MESSAGE } from "../src/pwri";
import { loadPrivateKey } from "../src/rsa";

// The bundle lives in test-dist/; the vectors beside this file's source.
const here = dirname(fileURLToPath(import.meta.url));
const vectors = join(here, "..", "test", "vectors");
const read = (name: string): Uint8Array => new Uint8Array(readFileSync(join(vectors, name)));
const PASSWORD = new TextEncoder().encode("Test-Passw0rd!");
const plain = read("plain.txt");
const synthetic = read("synthetic.dcm");
const intermediates = JSON.parse(readFileSync(join(vectors, "intermediates.json"), "utf8")) as Record<
  string,
  { KEK: string; encryptedKey: string; CEK: string; kek_iv: string }
>;

test("SHA256SUMS of the copied vectors", () => {
  for (const line of readFileSync(join(vectors, "SHA256SUMS"), "utf8").trim().split("\n")) {
    const [sum, name] = line.split(/\s+\*?/);
    assert.equal(createHash("sha256").update(read(name)).digest("hex"), sum, name);
  }
});

for (const name of ["ossl-pwri-aes256", "ossl-pwri-aes128", "ossl-pwri-aes256-utf8pw", "ossl-pwri-aes256-stream-ber"]) {
  const known = intermediates[name];
  if (!known) continue;
  test(`RFC 3211 unwrap: ${name} KEK -> CEK`, () => {
    const cek = unwrapKey(fromHex(known.KEK), fromHex(known.kek_iv), fromHex(known.encryptedKey));
    assert.equal(hex(cek), known.CEK);
  });
}

test("RFC 3211 wrap then unwrap round-trips, and a flipped byte fails with the one message", () => {
  const kek = new Uint8Array(32).fill(7);
  const iv = new Uint8Array(16).fill(9);
  const cek = Uint8Array.from({ length: 32 }, (_, i) => i * 3);
  const wrapped = wrapKey(kek, iv, cek, (n) => new Uint8Array(n).fill(0x5a));
  assert.equal(wrapped.length, 48); // 32 + 4 -> 48 (standards §3.4 example)
  assert.deepEqual(unwrapKey(kek, iv, wrapped, 32), cek);
  const bad = wrapped.slice();
  bad[20] ^= 1;
  assert.throws(() => unwrapKey(kek, iv, bad, 32), (e: Error) => e instanceof DecryptionError && e.message === WRONG_KEY_MESSAGE);
});

test("KEK derivation matches OpenSSL's PBKDF2 (ossl-pwri-aes256)", async () => {
  const known = intermediates["ossl-pwri-aes256"];
  const env = parseEnvelope(read("ossl-pwri-aes256.p7m"));
  const pwri = env.recipients[0];
  assert.equal(pwri.kind, "pwri");
  const ring = new KeyRing(PASSWORD);
  if (pwri.kind === "pwri") assert.equal(hex(await ring.kek(pwri, 32)), known.KEK);
});

for (const [name, password, expected] of [
  ["ossl-pwri-aes256.p7m", PASSWORD, plain],
  ["ossl-pwri-aes128.p7m", PASSWORD, plain],
  ["ossl-pwri-aes256-utf8pw.p7m", new TextEncoder().encode("Pässwörd-ß"), plain],
  ["ossl-pwri-aes256-stream-ber.p7m", PASSWORD, synthetic],
  ["ossl-ktri-pwri-aes256.p7m", PASSWORD, synthetic],
] as const) {
  test(`decrypt ${name} with the password`, async () => {
    const bytes = read(name);
    assert.ok(isEnvelope(bytes));
    const { plain: out } = await decryptEnvelope(bytes, new KeyRing(password));
    assert.deepEqual(out, expected);
  });
}

test("a raw DICOM file in the envelope (no digest) is refused, and shown marked NOT verified only when asked", async () => {
  await assert.rejects(openSecureFile(read("ossl-ktri-pwri-aes256.p7m"), new KeyRing(PASSWORD)), UnprotectedError);
  const opened = await openSecureFile(read("ossl-ktri-pwri-aes256.p7m"), new KeyRing(PASSWORD), true);
  assert.equal(opened.integrity, NOT_VERIFIED);
  assert.equal(opened.verified, false);
  assert.deepEqual(opened.payload, synthetic);
});

test("ContentInfo(DigestedData) made by openssl cms -digest_create is verified and unwrapped", async () => {
  const opened = await openSecureFile(read("ossl-digested-then-pwri-aes256.p7m"), new KeyRing(PASSWORD));
  assert.equal(opened.integrity, "SHA-256 digest");
  assert.deepEqual(opened.payload, synthetic);
});

for (const name of ["dcmseal-pwri-aes256-sha256.p7m", "dcmseal-pwri-aes128.p7m", "dcmseal-pwri-aes192.p7m"]) {
  test(`full open of ${name} (dcmseal writer: DigestedData, PBKDF2-HMAC-SHA256)`, async () => {
    const opened = await openSecureFile(read(name), new KeyRing(PASSWORD));
    assert.equal(opened.integrity, "SHA-256 digest");
    assert.deepEqual(opened.payload, synthetic);
  });
}

test("KTRI with PKCS#1 v1.5 (BigInt RSA) opens OpenSSL's two-recipient envelope with the key alone", async () => {
  const key = loadPrivateKey(readFileSync(join(vectors, "testonly-rsa2048-key.pem"), "utf8"));
  const { plain: out } = await decryptEnvelope(read("ossl-ktri-pwri-aes256.p7m"), new KeyRing(undefined, key));
  assert.deepEqual(out, synthetic);
});

test("KTRI + SignedData (dcmseal writer): the signature and messageDigest verify", async () => {
  const key = loadPrivateKey(readFileSync(join(vectors, "testonly-rsa2048-key.pem"), "utf8"));
  const opened = await openSecureFile(read("dcmseal-ktri-pwri-signed.p7m"), new KeyRing(undefined, key));
  assert.match(opened.integrity, /^signature \(SHA-256\)/);
  assert.deepEqual(opened.payload, synthetic);
});

test("KTRI RSA-OAEP goes through WebCrypto", async () => {
  const key = loadPrivateKey(readFileSync(join(vectors, "testonly-rsa2048-key.pem"), "utf8"));
  const opened = await openSecureFile(read("dcmseal-ktri-oaep.p7m"), new KeyRing(undefined, key));
  assert.deepEqual(opened.payload, synthetic);
});

test("a wrong password gives the one message, and the KEK is derived once per salt", async () => {
  const ring = new KeyRing(new TextEncoder().encode("not the password"));
  const before = stats.pbkdf2;
  for (let i = 0; i < 3; i++) {
    await assert.rejects(openSecureFile(read("dcmseal-pwri-aes256-sha256.p7m"), ring), (e: Error) => e.message === WRONG_KEY_MESSAGE);
  }
  assert.equal(stats.pbkdf2 - before, 1);
});

test("a flipped ciphertext byte in the middle is an integrity error, not a wrong password", async () => {
  const bytes = read("dcmseal-pwri-aes256-sha256.p7m").slice();
  const env = parseEnvelope(bytes);
  // Find the ciphertext in the file and flip a byte in its middle (padding stays intact).
  const at = Buffer.from(bytes).indexOf(Buffer.from(env.encryptedContent.subarray(0, 32)));
  bytes[at + Math.floor(env.encryptedContent.length / 2)] ^= 0x01;
  await assert.rejects(openSecureFile(bytes, new KeyRing(PASSWORD)), IntegrityError);
});

test("Triple-DES is recognised and refused with a clear message", async () => {
  await assert.rejects(openSecureFile(read("ossl-pwri-des3-default.p7m"), new KeyRing(PASSWORD)), (e: Error) =>
    e instanceof UnsupportedError && /Triple-DES/.test(e.message));
});

test("truncated envelopes are malformed, never a crash of another kind", async () => {
  const bytes = read("ossl-pwri-aes256-stream-ber.p7m");
  for (const cut of [10, 100, 1000, bytes.length - 3]) {
    await assert.rejects(openSecureFile(bytes.subarray(0, cut), new KeyRing(PASSWORD)), (e: Error) =>
      ["MalformedError", "DecryptionError", "IntegrityError"].includes(e.name));
  }
});
