/**
 * RFC 3211 §2.3 key unwrap (id-alg-PWRI-KEK) with AES-CBC without padding (@noble/ciphers).
 *
 * WebCrypto's AES-CBC always strips PKCS#7 padding, which the wrapped key does not carry, so the three
 * CBC decryptions below use @noble/ciphers with padding disabled.
 */
import { cbc } from "@noble/ciphers/aes.js";

/** One message for every way a key can fail to open a file (a wrong password looks like any other). */
export const WRONG_KEY_MESSAGE = "wrong password, or this file is not addressed to this key";

export class DecryptionError extends Error {
  override name = "DecryptionError";
  constructor() {
    super(WRONG_KEY_MESSAGE);
  }
}

const AES_BLOCK = 16;

/**
 * Unwrap `encryptedKey` with `kek` (RFC 3211 §2.3.2) and return the CEK.
 *
 * 1. Decrypt the last block with the next-to-last block as IV, giving the IV for the first blocks.
 * 2. Decrypt blocks 0..n-2 with that IV, then decrypt the whole again with the real IV.
 * 3. Check the length byte and the complemented check bytes; all checks are made before deciding.
 */
export function unwrapKey(kek: Uint8Array, iv: Uint8Array, encryptedKey: Uint8Array, expectedLength?: number): Uint8Array {
  const b = AES_BLOCK;
  const n = encryptedKey.length / b;
  if (!Number.isInteger(n) || n < 2 || iv.length !== b) throw new DecryptionError();
  const raw = (key: Uint8Array, ivec: Uint8Array, data: Uint8Array): Uint8Array =>
    cbc(key, ivec, { disablePadding: true }).decrypt(data);
  // 1. last = CBC_Decrypt(KEK, IV = C[n-2], C[n-1])
  const last = raw(kek, encryptedKey.subarray((n - 2) * b, (n - 1) * b), encryptedKey.subarray((n - 1) * b));
  // 2. first = CBC_Decrypt(KEK, IV = last, C[0..n-2])
  const first = raw(kek, last, encryptedKey.subarray(0, (n - 1) * b));
  const inner = new Uint8Array(n * b);
  inner.set(first, 0);
  inner.set(last, (n - 1) * b);
  // 3. F = CBC_Decrypt(KEK, IV, first || last)
  const f = raw(kek, iv, inner);
  const length = f[0];
  let ok = ((f[1] ^ f[4]) & (f[2] ^ f[5]) & (f[3] ^ f[6])) === 0xff;
  ok = ok && 4 + length <= f.length && length > 0;
  if (expectedLength !== undefined) ok = ok && length === expectedLength;
  if (!ok) throw new DecryptionError();
  return f.slice(4, 4 + length);
}

/** RFC 3211 §2.3.1 wrap, for tests: `pad` supplies the random padding bytes. */
export function wrapKey(kek: Uint8Array, iv: Uint8Array, cek: Uint8Array, pad: (n: number) => Uint8Array): Uint8Array {
  const b = AES_BLOCK;
  const size = Math.max(2 * b, Math.ceil((cek.length + 4) / b) * b);
  const f = new Uint8Array(size);
  f[0] = cek.length;
  f[1] = ~cek[0] & 0xff;
  f[2] = ~cek[1] & 0xff;
  f[3] = ~cek[2] & 0xff;
  f.set(cek, 4);
  f.set(pad(size - 4 - cek.length), 4 + cek.length);
  const c1 = cbc(kek, iv, { disablePadding: true }).encrypt(f);
  return cbc(kek, c1.subarray(size - b), { disablePadding: true }).encrypt(c1);
}
