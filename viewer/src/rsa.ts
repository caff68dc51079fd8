/**
 * RSA private keys (PKCS#8 / PKCS#1 PEM) and RSAES-PKCS1-v1_5 decryption (RFC 8017 §7.2.2) with BigInt.
 *
 * WebCrypto offers RSA-OAEP only, while CMS key transport (RFC 3370, the one PS3.15 D.1 names) is
 * PKCS#1 v1.5. This is a small, unaudited implementation: it runs on the user's own machine over the
 * user's own key, with no oracle to attack, so its lack of constant-time arithmetic is acceptable here.
 * OAEP-wrapped keys (rsaesOaep) go through WebCrypto instead.
 */
import { MalformedError, TAG_INTEGER, TAG_OCTET_STRING, TAG_SEQUENCE, children, expect, integer, octets, oid, readNode } from "./der";
import { DecryptionError } from "./pwri";

export interface RsaPrivateKey {
  readonly n: bigint;
  readonly e: bigint;
  readonly d: bigint;
  readonly p: bigint;
  readonly q: bigint;
  readonly dp: bigint;
  readonly dq: bigint;
  readonly qinv: bigint;
  /** The modulus length in bytes. */
  readonly size: number;
  /** PKCS#8 DER, for WebCrypto (RSA-OAEP); absent for a PKCS#1 PEM. */
  readonly pkcs8?: Uint8Array;
}

const OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1";

function pemBody(text: string, label: string): Uint8Array | null {
  const match = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(text);
  if (!match) return null;
  const bin = atob(match[1].replace(/[^A-Za-z0-9+/=]/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function parseRsaPrivateKey(der: Uint8Array, pkcs8?: Uint8Array): RsaPrivateKey {
  const seq = expect(readNode(der, 0), TAG_SEQUENCE, "RSAPrivateKey");
  const f = children(der, seq).map((c) => integer(der, expect(c, TAG_INTEGER, "RSAPrivateKey field")));
  if (f.length < 9) throw new MalformedError("RSAPrivateKey has fewer than 9 fields");
  const [, n, e, d, p, q, dp, dq, qinv] = f;
  return { n, e, d, p, q, dp, dq, qinv, size: Math.ceil(n.toString(16).length / 2), pkcs8 };
}

/** Read an unencrypted RSA private key from PEM text ("PRIVATE KEY" or "RSA PRIVATE KEY"). */
export function loadPrivateKey(pem: string): RsaPrivateKey {
  if (pem.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    throw new MalformedError(
      "this private key is itself encrypted; export it unencrypted first (openssl pkcs8 -in key.pem -out plain.pem)",
    );
  }
  const pkcs8 = pemBody(pem, "PRIVATE KEY");
  if (pkcs8) {
    const info = expect(readNode(pkcs8, 0), TAG_SEQUENCE, "PrivateKeyInfo");
    const [, alg, key] = children(pkcs8, info);
    const algOid = oid(pkcs8, children(pkcs8, expect(alg, TAG_SEQUENCE, "privateKeyAlgorithm"))[0]);
    if (algOid !== OID_RSA_ENCRYPTION) throw new MalformedError(`the private key is not an RSA key (${algOid})`);
    return parseRsaPrivateKey(octets(pkcs8, expect(key, TAG_OCTET_STRING, "privateKey")).slice(), pkcs8);
  }
  const pkcs1 = pemBody(pem, "RSA PRIVATE KEY");
  if (pkcs1) return parseRsaPrivateKey(pkcs1);
  throw new MalformedError("no PEM private key found (expected -----BEGIN PRIVATE KEY-----)");
}

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
    e >>= 1n;
  }
  return result;
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

/** RSADP with the CRT (RFC 8017 §5.1.2) then EME-PKCS1-v1_5 decoding (§7.2.2 step 3). */
export function decryptPkcs1v15(key: RsaPrivateKey, ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.length !== key.size) throw new DecryptionError();
  let c = 0n;
  for (const byte of ciphertext) c = (c << 8n) | BigInt(byte);
  if (c >= key.n) throw new DecryptionError();
  const m1 = modPow(c, key.dp, key.p);
  const m2 = modPow(c, key.dq, key.q);
  const h = mod(key.qinv * (m1 - m2), key.p);
  let m = m2 + h * key.q;
  const em = new Uint8Array(key.size);
  for (let i = key.size - 1; i >= 0; i--) {
    em[i] = Number(m & 0xffn);
    m >>= 8n;
  }
  // EM = 0x00 || 0x02 || PS (>= 8 non-zero octets) || 0x00 || M
  let separator = -1;
  for (let i = 2; i < em.length; i++) {
    if (em[i] === 0) {
      separator = i;
      break;
    }
  }
  if (em[0] !== 0 || em[1] !== 2 || separator < 10) throw new DecryptionError();
  return em.slice(separator + 1);
}
