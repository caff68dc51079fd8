// Hostile envelopes (issue 12 §1, §2, §6) against the viewer's reader: what an attacker would write. Every
// outcome is either the original file, verified, or one of the reader's own errors; never a forged payload, a
// crash of another kind, or unbounded key-derivation work (counted in PBKDF2 iterations, not timed).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  DecryptionError, IntegrityError, KeyKindError, KeyRing, LimitError, MAX_PBKDF2_ITERATIONS, MAX_RECIPIENTS,
  NOT_VERIFIED, UnprotectedError, decryptEnvelope, openSecureFile, parseEnvelope, stats,
} from "../src/cms";
import { children, readNode } from "../src/der";
import { loadPrivateKey } from "../src/rsa";

const vectors = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "vectors");
const read = (name: string): Uint8Array => new Uint8Array(readFileSync(join(vectors, name)));
const PASSWORD = new TextEncoder().encode("Test-Passw0rd!");
const synthetic = read("synthetic.dcm");
const DIGESTED = "dcmseal-pwri-aes256-sha256.p7m";
/** The reader's own refusals: anything else escaping openSecureFile is a bug. */
const KNOWN = new Set(["DecryptionError", "IntegrityError", "MalformedError", "UnsupportedError", "LimitError", "UnprotectedError", "KeyKindError"]);

// --- a minimal DER writer, to rebuild envelopes with other recipients ---------------------------------------
function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const head = length < 0x80 ? [tag, length] : length < 0x100 ? [tag, 0x81, length] : length < 0x10000 ? [tag, 0x82, length >> 8, length & 0xff] : [tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff];
  const out = new Uint8Array(head.length + length);
  out.set(head, 0);
  let at = head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function derInteger(n: number): Uint8Array {
  const bytes: number[] = [];
  do {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  if (bytes[0] & 0x80) bytes.unshift(0);
  return tlv(0x02, Uint8Array.from(bytes));
}

/** The envelope's parts as raw DER: the EnvelopedData fields and the PWRI recipient's pieces. */
function dissect(bytes: Uint8Array) {
  const info = children(bytes, readNode(bytes, 0));
  const env = children(bytes, children(bytes, info[1])[0]);
  const raw = (n: { start: number; end: number }): Uint8Array => bytes.slice(n.start, n.end);
  const recipients = children(bytes, env[1]);
  return { info, env, raw, recipients };
}

/** The same envelope with `recipients` (raw DER RecipientInfos) in place of its own. */
function withRecipients(bytes: Uint8Array, recipients: Uint8Array[]): Uint8Array {
  const { info, env, raw } = dissect(bytes);
  const envelope = tlv(0x30, raw(env[0]), tlv(0x31, ...recipients), ...env.slice(2).map(raw));
  return tlv(0x30, raw(info[0]), tlv(0xa0, envelope));
}

/** A PWRI like the file's own but with another salt and iteration count (so another KEK: it cannot unwrap). */
function pwriWith(bytes: Uint8Array, salt: Uint8Array, iterations: number): Uint8Array {
  const { recipients, raw } = dissect(bytes);
  const parts = children(bytes, recipients[0]);
  const kdf = children(bytes, parts[1]);
  const params = children(bytes, kdf[1]);
  const newParams = tlv(0x30, tlv(0x04, salt), derInteger(iterations), ...params.slice(2).map(raw));
  const newKdf = tlv(0xa0, raw(kdf[0]), newParams);
  return tlv(0xa3, raw(parts[0]), newKdf, ...parts.slice(2).map(raw));
}

const salt = (i: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, k) => (i * 31 + k) & 0xff);

async function outcome(bytes: Uint8Array, ring: KeyRing, acceptUnprotected = false): Promise<string> {
  try {
    const opened = await openSecureFile(bytes, ring, acceptUnprotected);
    // Success is allowed only for the original content, verified.
    assert.deepEqual(opened.payload, synthetic);
    assert.equal(opened.verified, true);
    return "opened";
  } catch (err) {
    const name = (err as Error).name;
    assert.ok(KNOWN.has(name), `unexpected ${name}: ${(err as Error).message}`);
    return name;
  }
}

// --- §1: the integrity check cannot be switched off by the envelope -------------------------------------------

/** The bytes of the encrypted content, the content-type OID and the content IV inside the file. */
function locate(bytes: Uint8Array) {
  const { env } = dissect(bytes);
  const eci = children(bytes, env[2]);
  const typeOid = eci[0];
  const iv = children(bytes, eci[1])[1];
  const body = eci[2];
  return { typeLast: typeOid.end - 1, ivStart: iv.contentStart, cipherStart: body.contentStart, cipherEnd: body.contentEnd };
}

test("downgrade: content type set to id-data and the IV bit-flipped is refused, not shown unverified", async () => {
  const bytes = read(DIGESTED).slice();
  const at = locate(bytes);
  assert.equal(bytes[at.typeLast], 0x05); // ...1.7.5 id-digestedData
  bytes[at.typeLast] = 0x01; // ...1.7.1 id-data: not authenticated
  bytes[at.ivStart] ^= 0x01; // the first decrypted byte is no longer 0x30
  await assert.rejects(openSecureFile(bytes, new KeyRing(PASSWORD)), IntegrityError);
  await assert.rejects(openSecureFile(bytes, new KeyRing(PASSWORD), true), IntegrityError);
});

test("downgrade: a declared id-data over intact DigestedData is still verified (the bytes decide, not the label)", async () => {
  const bytes = read(DIGESTED).slice();
  bytes[locate(bytes).typeLast] = 0x01;
  const opened = await openSecureFile(bytes, new KeyRing(PASSWORD));
  assert.equal(opened.integrity, "SHA-256 digest");
  assert.deepEqual(opened.payload, synthetic);
});

test("downgrade: CBC bit-flipping that makes the plaintext look like a bare DICOM file is refused by default", async () => {
  const bytes = read(DIGESTED).slice();
  const at = locate(bytes);
  bytes[at.typeLast] = 0x01;
  const { plain } = await decryptEnvelope(read(DIGESTED), new KeyRing(PASSWORD));
  // Rewrite plaintext block 8 (bytes 128..143) to start with "DICM" by flipping ciphertext block 7; block 7
  // (the preamble, which no reader checks) is garbled. This is the attack of issue 12 in the viewer's terms.
  const want = new TextEncoder().encode("DICM");
  for (let k = 0; k < 4; k++) bytes[at.cipherStart + 112 + k] ^= plain[128 + k] ^ want[k];
  bytes[at.ivStart] ^= 0x01; // and the first byte is no longer a SEQUENCE
  const forged = await decryptEnvelope(bytes, new KeyRing(PASSWORD));
  assert.deepEqual(forged.plain.subarray(128, 132), want);
  await assert.rejects(openSecureFile(bytes, new KeyRing(PASSWORD)), UnprotectedError);
  // Only the user's explicit choice shows it, and then as NOT verified (never as verified).
  const shown = await openSecureFile(bytes, new KeyRing(PASSWORD), true).catch((e: Error) => e);
  if (!(shown instanceof Error)) {
    assert.equal(shown.verified, false);
    assert.equal(shown.integrity, NOT_VERIFIED);
  } else assert.ok(KNOWN.has(shown.name));
});

test("a flip in the last ciphertext block (the padding) is damage, never 'wrong password'", async () => {
  const bytes = read(DIGESTED).slice();
  const at = locate(bytes);
  for (const offset of [at.cipherEnd - 1, at.cipherEnd - 17, at.cipherEnd - 20]) {
    const copy = bytes.slice();
    copy[offset] ^= 0x5a;
    await assert.rejects(openSecureFile(copy, new KeyRing(PASSWORD)), IntegrityError);
  }
});

// --- §6: bit flips at every offset, truncation at every length -------------------------------------------------

test("a bit flipped at every byte of a small envelope: the original verified, or one of the reader's errors", async () => {
  const original = read(DIGESTED);
  const ring = new KeyRing(PASSWORD);
  const counts: Record<string, number> = {};
  for (let i = 0; i < original.length; i++) {
    const bytes = original.slice();
    bytes[i] ^= 1 << (i % 8);
    const before = stats.pbkdf2Iterations;
    const result = await outcome(bytes, ring);
    counts[result] = (counts[result] ?? 0) + 1;
    assert.ok(stats.pbkdf2Iterations - before <= MAX_PBKDF2_ITERATIONS, `byte ${i}: unbounded KDF work`);
  }
  // Flips in the ciphertext are integrity failures (most of the file); none may decide "wrong password" but
  // those in the recipient (salt, iterations, IV, wrapped key).
  assert.ok(counts.IntegrityError > original.length * 0.8, JSON.stringify(counts));
  assert.ok((counts.DecryptionError ?? 0) < 120, JSON.stringify(counts));
});

test("truncation at every length is refused with one of the reader's errors", async () => {
  const original = read(DIGESTED);
  const ring = new KeyRing(PASSWORD);
  for (let cut = 0; cut < original.length; cut++) {
    const result = await outcome(original.subarray(0, cut), ring);
    assert.notEqual(result, "opened", `truncated at ${cut} opened`);
  }
});

// --- §1: fields an attacker controls inside the protected structure ---------------------------------------------

test("the inner structure must be complete: trailing bytes after the DigestedData are refused", async () => {
  // Re-encrypting needs the CEK: decrypt with the password, change the plaintext, encrypt with the same CEK.
  const { plain } = await decryptEnvelope(read(DIGESTED), new KeyRing(PASSWORD));
  const extended = new Uint8Array(plain.length + 3);
  extended.set(plain);
  extended.set([0x04, 0x01, 0x00], plain.length); // an OCTET STRING after the structure
  await assert.rejects(reseal(extended), IntegrityError);
  await assert.doesNotReject(reseal(plain)); // the helper itself round-trips
});

test("DigestedData other than version 0 is refused (RFC 5652 §7: id-data content)", async () => {
  const { plain } = await decryptEnvelope(read(DIGESTED), new KeyRing(PASSWORD));
  const header = readNode(plain, 0);
  const version = children(plain, header)[0];
  assert.deepEqual(Array.from(plain.subarray(version.start, version.end)), [0x02, 0x01, 0x00]);
  const v2 = plain.slice();
  v2[version.start + 2] = 0x02;
  await assert.rejects(reseal(v2), IntegrityError);
});

test("DigestedData with an unknown digest algorithm, another eContentType or detached content is refused", async () => {
  const { plain } = await decryptEnvelope(read(DIGESTED), new KeyRing(PASSWORD));
  const oidSha256 = Uint8Array.from([0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]);
  const at = indexOf(plain, oidSha256);
  assert.ok(at > 0);
  const unknown = plain.slice();
  unknown[at + 10] = 0x63; // 2.16.840.1.101.3.4.2.99: no digest this reader knows
  await assert.rejects(reseal(unknown), (e: Error) => e instanceof IntegrityError && /not an accepted digest/.test(e.message));
  const oidData = Uint8Array.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]);
  const dataAt = indexOf(plain, oidData);
  assert.ok(dataAt > 0);
  const otherType = plain.slice();
  otherType[dataAt + 10] = 0x02; // eContentType signedData
  await assert.rejects(reseal(otherType), IntegrityError);
});

test("SignedData whose signature, digest or signer list is altered is refused", async () => {
  const key = loadPrivateKey(readFileSync(join(vectors, "testonly-rsa2048-key.pem"), "utf8"));
  const file = read("dcmseal-ktri-pwri-signed.p7m");
  const ring = new KeyRing(undefined, key);
  const { plain } = await decryptEnvelope(file, ring);
  // The signature is the last OCTET STRING of the signer: flip its last byte.
  const sig = plain.slice();
  sig[sig.length - 1] ^= 1;
  await assert.rejects(reseal(sig, file, ring), IntegrityError);
  // No signer: an empty signerInfos SET in place of the real one.
  const node = readNode(plain, 0);
  const parts = children(plain, node);
  const last = parts[parts.length - 1];
  const emptied = tlv(0x30, ...parts.slice(0, -1).map((p) => plain.slice(p.start, p.end)), tlv(0x31));
  await assert.rejects(reseal(emptied, file, ring), IntegrityError);
  // Two signers, the second a copy of the first with its signature broken: every signer must verify.
  const signer = children(plain, last)[0];
  const broken = plain.slice(signer.start, signer.end);
  broken[broken.length - 1] ^= 1;
  const two = tlv(0x30, ...parts.slice(0, -1).map((p) => plain.slice(p.start, p.end)), tlv(0x31, plain.slice(signer.start, signer.end), broken));
  await assert.rejects(reseal(two, file, ring), IntegrityError);
});

// --- §2: bounded work -------------------------------------------------------------------------------------------

test(`more than ${MAX_RECIPIENTS} recipients is refused before any key derivation`, async () => {
  const bytes = read(DIGESTED);
  const flood = Array.from({ length: MAX_RECIPIENTS + 1 }, (_, i) => pwriWith(bytes, salt(i), 1));
  const before = stats.pbkdf2;
  await assert.rejects(openSecureFile(withRecipients(bytes, flood), new KeyRing(PASSWORD)), LimitError);
  assert.equal(stats.pbkdf2, before);
});

test("a recipient above the iteration cap is refused unread, and a flood of capped ones stops at the file budget", async () => {
  const bytes = read(DIGESTED);
  const before = stats.pbkdf2Iterations;
  const over = withRecipients(bytes, [pwriWith(bytes, salt(1), MAX_PBKDF2_ITERATIONS + 1)]);
  await assert.rejects(openSecureFile(over, new KeyRing(PASSWORD)), LimitError);
  assert.equal(stats.pbkdf2Iterations, before);
  // 16 recipients at 1,000 iterations each under a file budget of 3,500: three derivations, then refused.
  const flood = withRecipients(bytes, Array.from({ length: MAX_RECIPIENTS }, (_, i) => pwriWith(bytes, salt(i + 2), 1000)));
  const ring = new KeyRing(PASSWORD, undefined, { perFile: 3500, perSession: 1e9 });
  const mid = stats.pbkdf2Iterations;
  await assert.rejects(openSecureFile(flood, ring), LimitError);
  assert.equal(stats.pbkdf2Iterations - mid, 3000);
  // The session budget: once used up, a file needing a new derivation is refused, one with a derived key opens.
  const session = new KeyRing(PASSWORD, undefined, { perFile: 1e9, perSession: 1 });
  await assert.rejects(openSecureFile(bytes, session), LimitError);
});

test("recipients whose key is already derived are tried first (no new work for the real one behind a flood)", async () => {
  const bytes = read(DIGESTED);
  const ring = new KeyRing(PASSWORD);
  await openSecureFile(bytes, ring); // derives the medium's key
  const { recipients, raw } = dissect(bytes);
  const hostile = Array.from({ length: MAX_RECIPIENTS - 1 }, (_, i) => pwriWith(bytes, salt(i + 40), MAX_PBKDF2_ITERATIONS));
  const before = stats.pbkdf2Iterations;
  const opened = await openSecureFile(withRecipients(bytes, [...hostile, raw(recipients[0])]), ring);
  assert.deepEqual(opened.payload, synthetic);
  assert.equal(stats.pbkdf2Iterations, before);
});

// --- the key's kind ----------------------------------------------------------------------------------------------

test("a password on a certificate-only file says it opens with a private key; a key on a password-only file the reverse", async () => {
  await assert.rejects(openSecureFile(read("dcmseal-ktri-oaep.p7m"), new KeyRing(PASSWORD)), (e: Error) =>
    e instanceof KeyKindError && /opens with a private key/.test(e.message));
  const key = loadPrivateKey(readFileSync(join(vectors, "testonly-rsa2048-key.pem"), "utf8"));
  await assert.rejects(openSecureFile(read(DIGESTED), new KeyRing(undefined, key)), (e: Error) =>
    e instanceof KeyKindError && /opens with a password/.test(e.message));
});

test("a wrong password is decided by the recipient check alone", async () => {
  await assert.rejects(openSecureFile(read(DIGESTED), new KeyRing(new TextEncoder().encode("nope"))), DecryptionError);
});

// --- helpers that need the CEK -------------------------------------------------------------------------------------

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let k = 0; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

/** Encrypt `plain` under the file's own CEK and IV (recovered with `ring`) and open the result. */
async function reseal(plain: Uint8Array, file = read(DIGESTED), ring = new KeyRing(PASSWORD)): Promise<unknown> {
  const envelope = parseEnvelope(file);
  const cek = await ring.cek(envelope);
  const key = await crypto.subtle.importKey("raw", cek as unknown as BufferSource, "AES-CBC", false, ["encrypt"]);
  const cipher = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-CBC", iv: envelope.contentIv as unknown as BufferSource }, key, plain as unknown as BufferSource));
  const { info, env, raw } = dissect(file);
  const eci = children(file, env[2]);
  const newEci = tlv(0x30, raw(eci[0]), raw(eci[1]), tlv(0x80, cipher));
  const envelopeDer = tlv(0x30, ...env.slice(0, 2).map(raw), newEci, ...env.slice(3).map(raw));
  return openSecureFile(tlv(0x30, raw(info[0]), tlv(0xa0, envelopeDer)), ring);
}
