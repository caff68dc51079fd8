/**
 * Open a Secure DICOM File (PS3.10 §7.4): CMS EnvelopedData (RFC 5652 §6) with a password (RFC 3211 PWRI,
 * PBKDF2) or an RSA key (KTRI), then verify the inner DigestedData or SignedData and return the DICOM file.
 */
import { cbc } from "@noble/ciphers/aes.js";
import {
  MalformedError, Node, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_SET,
  children, expect, hex, octets, oid, readNode, smallInteger,
} from "./der";
import { DecryptionError, unwrapKey } from "./pwri";
import { RsaPrivateKey, decryptPkcs1v15 } from "./rsa";

export const OID_DATA = "1.2.840.113549.1.7.1";
export const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";
export const OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3";
export const OID_DIGESTED_DATA = "1.2.840.113549.1.7.5";
const OID_PBKDF2 = "1.2.840.113549.1.5.12";
const OID_PWRI_KEK = "1.2.840.113549.1.9.16.3.9";
const OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1";
const OID_RSAES_OAEP = "1.2.840.113549.1.1.7";
const OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4";
const OID_DES_EDE3_CBC = "1.2.840.113549.3.7";

/** Content / KEK ciphers: RFC 3565 AES-CBC. Triple-DES (RFC 3370) is recognised and refused. */
const AES_CBC: Record<string, number> = {
  "2.16.840.1.101.3.4.1.2": 16,
  "2.16.840.1.101.3.4.1.22": 24,
  "2.16.840.1.101.3.4.1.42": 32,
};

const PRF_HASH: Record<string, string> = {
  "1.2.840.113549.2.7": "SHA-1",
  "1.2.840.113549.2.9": "SHA-256",
  "1.2.840.113549.2.10": "SHA-384",
  "1.2.840.113549.2.11": "SHA-512",
};

const DIGEST_HASH: Record<string, string> = {
  "1.3.14.3.2.26": "SHA-1",
  "2.16.840.1.101.3.4.2.1": "SHA-256",
  "2.16.840.1.101.3.4.2.2": "SHA-384",
  "2.16.840.1.101.3.4.2.3": "SHA-512",
};

/** PBKDF2 iteration counts above this are refused before any work (dcmseal's DEFAULT_MAX_PBKDF2_ITERATIONS). */
export const MAX_PBKDF2_ITERATIONS = 10_000_000;

export class IntegrityError extends Error {
  override name = "IntegrityError";
}

export class UnsupportedError extends Error {
  override name = "UnsupportedError";
}

export { DecryptionError, MalformedError };

/** Counters the page exposes to tests: how often PBKDF2 ran, how many envelopes opened. */
export const stats = { pbkdf2: 0, opened: 0 };

interface Algorithm {
  readonly oid: string;
  readonly params?: Node;
}

interface PwriInfo {
  readonly kind: "pwri";
  readonly salt: Uint8Array;
  readonly iterations: number;
  readonly keyLength?: number;
  readonly prf: string;
  readonly kekCipher: string;
  readonly kekIv: Uint8Array;
  readonly encryptedKey: Uint8Array;
}

interface KtriInfo {
  readonly kind: "ktri";
  readonly algorithm: string;
  readonly oaepHash: string;
  readonly encryptedKey: Uint8Array;
}

export interface Envelope {
  readonly recipients: readonly (PwriInfo | KtriInfo)[];
  readonly contentType: string;
  readonly contentCipher: string;
  readonly contentIv: Uint8Array;
  readonly encryptedContent: Uint8Array;
}

function algorithm(buf: Uint8Array, node: Node, what: string): Algorithm {
  const parts = children(buf, expect(node, TAG_SEQUENCE, what));
  return { oid: oid(buf, expect(parts[0], TAG_OID, `${what} OID`)), params: parts[1] };
}

function cbcIv(buf: Uint8Array, alg: Algorithm, what: string): Uint8Array {
  if (alg.oid === OID_DES_EDE3_CBC) {
    throw new UnsupportedError(`${what} is Triple-DES, which this viewer does not decrypt; open the medium with dcmseal open`);
  }
  if (!(alg.oid in AES_CBC)) throw new UnsupportedError(`${what} ${alg.oid} is not supported (AES-CBC only)`);
  const iv = octets(buf, expect(alg.params, TAG_OCTET_STRING, `${what} IV`));
  if (iv.length !== 16) throw new MalformedError(`${what} IV is ${iv.length} bytes, AES needs 16`);
  return iv.slice();
}

function parsePwri(buf: Uint8Array, node: Node): PwriInfo | null {
  const parts = children(buf, node);
  let i = 1; // skip version
  if (parts[i]?.tag !== 0xa0) return null; // no keyDerivationAlgorithm: the KEK would come from elsewhere
  const kdfParts = children(buf, parts[i++]);
  if (oid(buf, kdfParts[0]) !== OID_PBKDF2) throw new UnsupportedError(`key derivation ${oid(buf, kdfParts[0])} is not PBKDF2`);
  const p = children(buf, expect(kdfParts[1], TAG_SEQUENCE, "PBKDF2-params"));
  const salt = octets(buf, expect(p[0], TAG_OCTET_STRING, "PBKDF2 salt")).slice();
  const iterations = smallInteger(buf, expect(p[1], TAG_INTEGER, "PBKDF2 iterationCount"));
  let keyLength: number | undefined;
  let prf = "SHA-1"; // RFC 8018 default: hmacWithSHA1
  for (const extra of p.slice(2)) {
    if (extra.tag === TAG_INTEGER) keyLength = smallInteger(buf, extra);
    else if (extra.tag === TAG_SEQUENCE) {
      const prfOid = algorithm(buf, extra, "PBKDF2 prf").oid;
      const hash = PRF_HASH[prfOid];
      if (!hash) throw new UnsupportedError(`PBKDF2 PRF ${prfOid} is not supported`);
      prf = hash;
    }
  }
  const kek = algorithm(buf, parts[i++], "keyEncryptionAlgorithm");
  if (kek.oid !== OID_PWRI_KEK) throw new UnsupportedError(`key encryption ${kek.oid} is not id-alg-PWRI-KEK`);
  const inner = algorithm(buf, kek.params as Node, "PWRI-KEK cipher");
  const kekIv = cbcIv(buf, inner, "the key-encryption cipher");
  const encryptedKey = octets(buf, expect(parts[i], TAG_OCTET_STRING, "encryptedKey")).slice();
  return { kind: "pwri", salt, iterations, keyLength, prf, kekCipher: inner.oid, kekIv, encryptedKey };
}

function parseKtri(buf: Uint8Array, node: Node): KtriInfo | null {
  const parts = children(buf, node);
  const alg = algorithm(buf, parts[2], "keyEncryptionAlgorithm");
  let oaepHash = "SHA-1";
  if (alg.oid === OID_RSAES_OAEP && alg.params && alg.params.tag === TAG_SEQUENCE) {
    for (const field of children(buf, alg.params)) {
      if (field.tag === 0xa0) {
        const hashOid = algorithm(buf, children(buf, field)[0], "OAEP hash").oid;
        oaepHash = DIGEST_HASH[hashOid] ?? hashOid;
      }
    }
  } else if (alg.oid !== OID_RSA_ENCRYPTION) return null;
  return { kind: "ktri", algorithm: alg.oid, oaepHash, encryptedKey: octets(buf, expect(parts[3], TAG_OCTET_STRING, "encryptedKey")).slice() };
}

/** Whether `bytes` start like a CMS ContentInfo holding EnvelopedData (no DICM: PS3.10 §7.4 files are bare CMS). */
export function isEnvelope(bytes: Uint8Array): boolean {
  if (bytes.length < 16 || bytes[0] !== 0x30) return false;
  try {
    const outer = readNode(bytes, 0, bytes.length);
    const first = readNode(bytes, outer.contentStart, outer.contentEnd);
    return oid(bytes, first) === OID_ENVELOPED_DATA;
  } catch {
    return false;
  }
}

/** Parse a ContentInfo(EnvelopedData), BER or DER. */
export function parseEnvelope(buf: Uint8Array): Envelope {
  const info = children(buf, expect(readNode(buf, 0), TAG_SEQUENCE, "ContentInfo"));
  if (oid(buf, expect(info[0], TAG_OID, "contentType")) !== OID_ENVELOPED_DATA) {
    throw new MalformedError("the file is CMS but not EnvelopedData");
  }
  const env = children(buf, expect(children(buf, expect(info[1], 0xa0, "content [0]"))[0], TAG_SEQUENCE, "EnvelopedData"));
  let i = 1;
  if (env[i]?.tag === 0xa0) i++; // originatorInfo
  const recipients: (PwriInfo | KtriInfo)[] = [];
  for (const ri of children(buf, expect(env[i++], TAG_SET, "recipientInfos"))) {
    if (ri.tag === 0xa3) {
      const pwri = parsePwri(buf, ri);
      if (pwri) recipients.push(pwri);
    } else if (ri.tag === TAG_SEQUENCE) {
      const ktri = parseKtri(buf, ri);
      if (ktri) recipients.push(ktri);
    } // kari [1], kekri [2], ori [4]: not for this viewer
  }
  const eci = children(buf, expect(env[i], TAG_SEQUENCE, "EncryptedContentInfo"));
  const contentType = oid(buf, expect(eci[0], TAG_OID, "encrypted contentType"));
  const alg = algorithm(buf, eci[1], "contentEncryptionAlgorithm");
  const contentIv = cbcIv(buf, alg, "the content cipher");
  const body = eci[2];
  if (!body || (body.tag !== 0x80 && body.tag !== 0xa0)) throw new MalformedError("EnvelopedData has no encryptedContent");
  return { recipients, contentType, contentCipher: alg.oid, contentIv, encryptedContent: octets(buf, body) };
}

/** What the user gave to open the medium; derived KEKs are cached per (salt, iterations, PRF, length). */
export class KeyRing {
  private readonly keks = new Map<string, Promise<Uint8Array>>();

  constructor(
    private readonly password?: Uint8Array,
    private readonly rsaKey?: RsaPrivateKey,
  ) {}

  get hasPassword(): boolean {
    return this.password !== undefined;
  }

  kek(info: PwriInfo, length: number): Promise<Uint8Array> {
    if (info.iterations > MAX_PBKDF2_ITERATIONS) {
      throw new UnsupportedError(`PBKDF2 with ${info.iterations} iterations exceeds the limit of ${MAX_PBKDF2_ITERATIONS}`);
    }
    const id = `${hex(info.salt)}|${info.iterations}|${info.prf}|${length}`;
    let pending = this.keks.get(id);
    if (!pending) {
      pending = derive(this.password as Uint8Array, info, length);
      this.keks.set(id, pending);
    }
    return pending;
  }

  async cek(envelope: Envelope): Promise<Uint8Array> {
    const length = AES_CBC[envelope.contentCipher];
    for (const r of envelope.recipients) {
      try {
        if (r.kind === "pwri" && this.password !== undefined) {
          const kekLength = r.keyLength ?? AES_CBC[r.kekCipher];
          return unwrapKey(await this.kek(r, kekLength), r.kekIv, r.encryptedKey, length);
        }
        if (r.kind === "ktri" && this.rsaKey !== undefined) {
          const cek = await rsaDecrypt(this.rsaKey, r);
          if (cek.length === length) return cek;
        }
      } catch (err) {
        if (!(err instanceof DecryptionError)) throw err;
      }
    }
    throw new DecryptionError();
  }
}

/** WebCrypto's typings want ArrayBuffer-backed views; ours always are (never SharedArrayBuffer). */
const bs = (u: Uint8Array): BufferSource => u as unknown as BufferSource;

async function derive(password: Uint8Array, info: PwriInfo, length: number): Promise<Uint8Array> {
  stats.pbkdf2 += 1;
  const subtle = globalThis.crypto.subtle;
  const base = await subtle.importKey("raw", bs(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "PBKDF2", salt: bs(info.salt), iterations: info.iterations, hash: info.prf }, base, length * 8);
  return new Uint8Array(bits);
}

async function rsaDecrypt(key: RsaPrivateKey, info: KtriInfo): Promise<Uint8Array> {
  if (info.algorithm === OID_RSA_ENCRYPTION) return decryptPkcs1v15(key, info.encryptedKey);
  if (!key.pkcs8) throw new DecryptionError();
  try {
    const k = await globalThis.crypto.subtle.importKey("pkcs8", bs(key.pkcs8), { name: "RSA-OAEP", hash: info.oaepHash }, false, ["decrypt"]);
    return new Uint8Array(await globalThis.crypto.subtle.decrypt({ name: "RSA-OAEP" }, k, bs(info.encryptedKey)));
  } catch {
    throw new DecryptionError();
  }
}

/** CBC decryption with PKCS#7 padding: WebCrypto for AES-128/256, @noble/ciphers for AES-192 (Chromium lacks it). */
async function decryptContent(cek: Uint8Array, iv: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  try {
    if (cek.length === 24) return cbc(cek, iv).decrypt(data);
    const key = await globalThis.crypto.subtle.importKey("raw", bs(cek), "AES-CBC", false, ["decrypt"]);
    return new Uint8Array(await globalThis.crypto.subtle.decrypt({ name: "AES-CBC", iv: bs(iv) }, key, bs(data)));
  } catch {
    throw new DecryptionError(); // bad padding: the same message as a wrong key
  }
}

export interface Opened {
  /** The decrypted content: for a Secure DICOM File, the whole PS3.10 file. */
  readonly payload: Uint8Array;
  /** How integrity was checked: "SHA-256 digest", "signature (SHA-256)", or "none". */
  readonly integrity: string;
}

/** Decrypt an EnvelopedData only (no inner verification). */
export async function decryptEnvelope(bytes: Uint8Array, keys: KeyRing): Promise<{ envelope: Envelope; plain: Uint8Array }> {
  const envelope = parseEnvelope(bytes);
  const cek = await keys.cek(envelope);
  const plain = await decryptContent(cek, envelope.contentIv, envelope.encryptedContent);
  return { envelope, plain };
}

/**
 * Open a Secure DICOM File: decrypt, then verify the inner DigestedData / SignedData (standards §3.3 reader
 * algorithm) and return the payload.
 *
 * Throws DecryptionError (wrong key, one message), IntegrityError (digest, signature or a damaged inner
 * structure after a successful decryption), UnsupportedError or MalformedError.
 */
export async function openSecureFile(bytes: Uint8Array, keys: KeyRing): Promise<Opened> {
  const { envelope, plain } = await decryptEnvelope(bytes, keys);
  let opened: Opened;
  try {
    opened = await readInner(plain, envelope.contentType);
  } catch (err) {
    if (err instanceof MalformedError) {
      throw new IntegrityError("integrity check failed: the decrypted content is damaged");
    }
    throw err;
  }
  stats.opened += 1;
  return opened;
}

async function digestOf(hash: string, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest(hash, bs(data)));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function isDicm(bytes: Uint8Array): boolean {
  return bytes.length > 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

async function readInner(plain: Uint8Array, contentType: string): Promise<Opened> {
  let type = contentType;
  let node: Node | undefined;
  if (plain[0] === TAG_SEQUENCE && !isDicm(plain)) {
    node = readNode(plain, 0);
    const parts = children(plain, node);
    // 1. A ContentInfo wrapper (what `openssl cms -digest_create` makes): unwrap it.
    if (parts[0]?.tag === TAG_OID && oid(plain, parts[0]).startsWith("1.2.840.113549.1.7.")) {
      type = oid(plain, parts[0]);
      node = children(plain, expect(parts[1], 0xa0, "ContentInfo content"))[0];
    }
  }
  if (node && type === OID_DIGESTED_DATA) return verifyDigested(plain, node);
  if (node && type === OID_SIGNED_DATA) return verifySigned(plain, node);
  // 3. A raw DICOM file inside the envelope: non-conformant to PS3.15 D.1 (no digest), shown with a warning.
  if (isDicm(plain)) return { payload: plain, integrity: "none" };
  throw new MalformedError("the decrypted content is neither DigestedData, SignedData nor a DICOM file");
}

function eContent(buf: Uint8Array, encap: Node): Uint8Array {
  const parts = children(buf, expect(encap, TAG_SEQUENCE, "EncapsulatedContentInfo"));
  const wrapper = expect(parts[1], 0xa0, "eContent [0]");
  return octets(buf, expect(children(buf, wrapper)[0], TAG_OCTET_STRING, "eContent"));
}

async function verifyDigested(buf: Uint8Array, node: Node): Promise<Opened> {
  const parts = children(buf, expect(node, TAG_SEQUENCE, "DigestedData"));
  const alg = algorithm(buf, parts[1], "digestAlgorithm").oid;
  const hash = DIGEST_HASH[alg];
  if (!hash) throw new UnsupportedError(`digest algorithm ${alg} is not supported`);
  const payload = eContent(buf, parts[2]);
  const expected = octets(buf, expect(parts[3], TAG_OCTET_STRING, "digest"));
  if (!equal(await digestOf(hash, payload), expected)) {
    throw new IntegrityError(`integrity check failed: the ${hash} digest does not match the content`);
  }
  return { payload, integrity: `${hash} digest` };
}

/**
 * SignedData (RFC 5652 §5): the messageDigest attribute must match the content and the signature over the
 * signed attributes must verify with a certificate carried in the file. No trust anchor is checked here.
 */
async function verifySigned(buf: Uint8Array, node: Node): Promise<Opened> {
  const parts = children(buf, expect(node, TAG_SEQUENCE, "SignedData"));
  const payload = eContent(buf, parts[2]);
  const certs = parts.find((p) => p.tag === 0xa0);
  const signerInfos = children(buf, expect(parts[parts.length - 1], TAG_SET, "signerInfos"));
  if (!signerInfos.length) throw new IntegrityError("integrity check failed: the SignedData has no signer");
  for (const si of signerInfos) {
    const f = children(buf, si);
    const hash = DIGEST_HASH[algorithm(buf, f[2], "digestAlgorithm").oid];
    if (!hash) throw new UnsupportedError("the signature's digest algorithm is not supported");
    const digest = await digestOf(hash, payload);
    const signed = f[3]?.tag === 0xa0 ? f[3] : undefined;
    if (!signed) throw new UnsupportedError("a signature without signed attributes is not supported");
    let md: Uint8Array | undefined;
    for (const attr of children(buf, signed)) {
      const a = children(buf, attr);
      if (oid(buf, a[0]) === OID_MESSAGE_DIGEST) md = octets(buf, children(buf, a[1])[0]);
    }
    if (!md || !equal(md, digest)) throw new IntegrityError(`integrity check failed: the ${hash} digest does not match the content`);
    const signature = octets(buf, expect(f[5], TAG_OCTET_STRING, "signature"));
    // The signature covers the DER of the attributes with the SET OF tag (RFC 5652 §5.4).
    const attrs = buf.slice(signed.start, signed.end);
    attrs[0] = TAG_SET;
    let verified = false;
    for (const cert of certs ? children(buf, certs) : []) {
      if (await verifyWith(buf, cert, hash, signature, attrs)) verified = true;
    }
    if (!verified) throw new IntegrityError("integrity check failed: the signature does not verify");
    return { payload, integrity: `signature (${hash}), signer certificate not checked against a trust anchor` };
  }
  throw new IntegrityError("integrity check failed: no signer");
}

async function verifyWith(buf: Uint8Array, cert: Node, hash: string, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  try {
    const tbs = children(buf, children(buf, cert)[0]);
    const offset = tbs[0].tag === 0xa0 ? 1 : 0; // [0] version
    const spki = tbs[offset + 5];
    const key = await globalThis.crypto.subtle.importKey(
      "spki", bs(buf.slice(spki.start, spki.end)), { name: "RSASSA-PKCS1-v1_5", hash }, false, ["verify"],
    );
    return await globalThis.crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, bs(signature), bs(data));
  } catch {
    return false;
  }
}
