/**
 * Open a Secure DICOM File (PS3.10 §7.4): CMS EnvelopedData (RFC 5652 §6) with a password (RFC 3211 PWRI,
 * PBKDF2) or an RSA key (KTRI), then verify the inner DigestedData or SignedData and return the DICOM file.
 */
import { cbc } from "@noble/ciphers/aes.js";
import {
  MalformedError, Node, TAG_INTEGER, TAG_NULL, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_SET,
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
const OID_CONTENT_TYPE = "1.2.840.113549.1.9.3";
const OID_SIGNING_TIME = "1.2.840.113549.1.9.5";

/** Signature algorithms accepted on a SignerInfo: rsaEncryption (any digest) or shaNWithRSAEncryption (that digest). */
const RSA_SIGNATURE: Record<string, string> = {
  "1.2.840.113549.1.1.1": "",
  "1.2.840.113549.1.1.5": "SHA-1",
  "1.2.840.113549.1.1.11": "SHA-256",
  "1.2.840.113549.1.1.12": "SHA-384",
  "1.2.840.113549.1.1.13": "SHA-512",
};
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
/**
 * A medium is untrusted input: an envelope may carry at most this many recipients (a real one has one to a
 * few: the password, an escrow certificate, a recipient's certificate). Counted before any is parsed.
 */
export const MAX_RECIPIENTS = 16;
/** New PBKDF2 iterations one file may cost (derivations already made for the medium cost nothing). */
export const MAX_KDF_ITERATIONS_PER_FILE = MAX_PBKDF2_ITERATIONS;
/**
 * New PBKDF2 iterations one session may cost: dcmseal media need one derivation (one salt for the medium);
 * media of other writers with a salt per file at 600,000 iterations reach 500 files. About 2-5 minutes of
 * one core in today's browsers; past it a file is refused rather than the page kept busy.
 */
export const MAX_KDF_ITERATIONS_PER_SESSION = 300_000_000;

export class IntegrityError extends Error {
  override name = "IntegrityError";
}

export class UnsupportedError extends Error {
  override name = "UnsupportedError";
}

/** The file exceeds a limit on hostile input (recipients, key-derivation work): refused before the work. */
export class LimitError extends Error {
  override name = "LimitError";
}

/**
 * The key given is of the wrong kind for the file (a password for a file with certificate recipients only, or
 * the reverse): not a wrong password, and the page says which kind opens the medium.
 */
export class KeyKindError extends Error {
  override name = "KeyKindError";
}

/**
 * The decrypted content is a bare DICOM file, not the DigestedData or SignedData PS3.15 D.1.1 requires:
 * nothing proves it is what the sender put in. Shown only when the user asks, marked integrity NOT verified.
 */
export class UnprotectedError extends Error {
  override name = "UnprotectedError";
}

export { DecryptionError, MalformedError };

/** Counters the page exposes to tests: how often PBKDF2 ran, how many envelopes opened. */
export const stats = { pbkdf2: 0, pbkdf2Iterations: 0, opened: 0 };

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
  if (iterations < 1) throw new MalformedError("PBKDF2 iterationCount is 0");
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
  const inner = algorithm(buf, expect(kek.params, TAG_SEQUENCE, "PWRI-KEK cipher"), "PWRI-KEK cipher");
  const kekIv = cbcIv(buf, inner, "the key-encryption cipher");
  if (keyLength !== undefined && keyLength !== AES_CBC[inner.oid]) {
    throw new MalformedError(`PBKDF2 keyLength ${keyLength} does not fit the key-encryption cipher`);
  }
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

/**
 * Whether `bytes` (the whole file, or only its first few KB) start like a CMS ContentInfo holding EnvelopedData
 * (no DICM: PS3.10 §7.4 files are bare CMS).
 */
export function isEnvelope(bytes: Uint8Array): boolean {
  if (bytes.length < 16 || bytes[0] !== 0x30) return false;
  // The outer SEQUENCE's header by hand: its length may run past a prefix.
  let pos = 2;
  const first = bytes[1];
  if (first & 0x80 && first !== 0x80) {
    const count = first & 0x7f;
    if (count > 6) return false;
    pos += count;
  }
  try {
    return oid(bytes, readNode(bytes, pos, bytes.length)) === OID_ENVELOPED_DATA;
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
  const infos = expect(env[i++], TAG_SET, "recipientInfos");
  // Count before parsing: a flood of recipients is refused for the cost of reading their headers.
  let count = 0;
  for (let pos = infos.contentStart; pos < infos.contentEnd; pos = readNode(buf, pos, infos.contentEnd).end) {
    if (++count > MAX_RECIPIENTS) throw new LimitError(`the envelope has more than ${MAX_RECIPIENTS} recipients (refused unread: a real medium has a few)`);
  }
  for (const ri of children(buf, infos)) {
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

/**
 * What the user gave to open the medium. Derived KEKs are cached per (salt, iterations, PRF, length), so a
 * medium with one salt costs one derivation; new derivations are bounded per file and per session.
 */
export interface KdfLimits {
  readonly perFile: number;
  readonly perSession: number;
}

export const KDF_LIMITS: KdfLimits = { perFile: MAX_KDF_ITERATIONS_PER_FILE, perSession: MAX_KDF_ITERATIONS_PER_SESSION };

export class KeyRing {
  private readonly keks = new Map<string, Promise<Uint8Array>>();
  private sessionIterations = 0;

  constructor(
    private readonly password?: Uint8Array,
    private readonly rsaKey?: RsaPrivateKey,
    private readonly limits: KdfLimits = KDF_LIMITS,
  ) {}

  get hasPassword(): boolean {
    return this.password !== undefined;
  }

  private static id(info: PwriInfo, length: number): string {
    return `${hex(info.salt)}|${info.iterations}|${info.prf}|${length}`;
  }

  kek(info: PwriInfo, length: number): Promise<Uint8Array> {
    if (info.iterations > MAX_PBKDF2_ITERATIONS) {
      throw new LimitError(`PBKDF2 with ${info.iterations} iterations exceeds the limit of ${MAX_PBKDF2_ITERATIONS}`);
    }
    const id = KeyRing.id(info, length);
    let pending = this.keks.get(id);
    if (!pending) {
      this.sessionIterations += info.iterations;
      pending = derive(this.password as Uint8Array, info, length);
      this.keks.set(id, pending);
    }
    return pending;
  }

  /**
   * The content-encryption key, from the first recipient this key opens. Only the recipient check (RFC 3211's
   * check bytes after the KEK unwrap, PKCS#1's padding for RSA) decides "wrong key": DecryptionError. Nothing
   * about the content is looked at here.
   *
   * Throws KeyKindError (no recipient of the kind given), LimitError (the work the file asks for is over a
   * budget and no recipient within it opened), DecryptionError (every recipient tried refused this key).
   */
  async cek(envelope: Envelope): Promise<Uint8Array> {
    const length = AES_CBC[envelope.contentCipher];
    const pwri = envelope.recipients.filter((r): r is PwriInfo => r.kind === "pwri");
    const ktri = envelope.recipients.filter((r): r is KtriInfo => r.kind === "ktri");
    const usable = [...(this.password !== undefined ? pwri : []), ...(this.rsaKey !== undefined ? ktri : [])];
    if (!usable.length) {
      if (this.password !== undefined && ktri.length) {
        throw new KeyKindError("this medium opens with a private key (the key file of a recipient certificate), not a password");
      }
      if (this.rsaKey !== undefined && pwri.length) throw new KeyKindError("this medium opens with a password, not a private key");
      throw new KeyKindError("no recipient of this file can be opened with a password or an RSA private key");
    }
    const kekLength = (r: PwriInfo): number => r.keyLength ?? AES_CBC[r.kekCipher];
    // Recipients whose key is already derived first: they cost nothing, and a medium's files share one.
    usable.sort((a, b) => Number(a.kind === "pwri" && !this.keks.has(KeyRing.id(a, kekLength(a))))
      - Number(b.kind === "pwri" && !this.keks.has(KeyRing.id(b, kekLength(b)))));
    let fileIterations = 0;
    let overBudget: string | undefined;
    for (const r of usable) {
      try {
        if (r.kind === "pwri") {
          if (!this.keks.has(KeyRing.id(r, kekLength(r)))) {
            if (r.iterations > MAX_PBKDF2_ITERATIONS) {
              overBudget = `PBKDF2 with ${r.iterations} iterations exceeds the limit of ${MAX_PBKDF2_ITERATIONS}`;
              continue;
            }
            if (fileIterations + r.iterations > this.limits.perFile) {
              overBudget = `its password recipients ask for more than ${this.limits.perFile} PBKDF2 iterations`;
              continue;
            }
            if (this.sessionIterations + r.iterations > this.limits.perSession) {
              overBudget = `this page's key-derivation budget (${this.limits.perSession} PBKDF2 iterations) is used up; reload the page`;
              continue;
            }
            fileIterations += r.iterations;
          }
          return unwrapKey(await this.kek(r, kekLength(r)), r.kekIv, r.encryptedKey, length);
        }
        const cek = await rsaDecrypt(this.rsaKey as RsaPrivateKey, r);
        if (cek.length === length) return cek;
      } catch (err) {
        if (!(err instanceof DecryptionError)) throw err;
      }
    }
    if (overBudget) throw new LimitError(`refused before the work: ${overBudget}`);
    throw new DecryptionError();
  }
}

/** WebCrypto's typings want ArrayBuffer-backed views; ours always are (never SharedArrayBuffer). */
const bs = (u: Uint8Array): BufferSource => u as unknown as BufferSource;

async function derive(password: Uint8Array, info: PwriInfo, length: number): Promise<Uint8Array> {
  stats.pbkdf2 += 1;
  stats.pbkdf2Iterations += info.iterations;
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

/**
 * CBC decryption with PKCS#7 padding: WebCrypto for AES-128/256, @noble/ciphers for AES-192 (Chromium lacks it).
 * Called only with a CEK the recipient check accepted, so bad padding means a damaged or altered file, never a
 * wrong password.
 */
async function decryptContent(cek: Uint8Array, iv: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  try {
    if (cek.length === 24) return cbc(cek, iv).decrypt(data);
    const key = await globalThis.crypto.subtle.importKey("raw", bs(cek), "AES-CBC", false, ["decrypt"]);
    return new Uint8Array(await globalThis.crypto.subtle.decrypt({ name: "AES-CBC", iv: bs(iv) }, key, bs(data)));
  } catch {
    throw new IntegrityError(DAMAGED_PREFIX + "the encrypted content does not decrypt");
  }
}

/** How every failure of a file's content after a good key begins (the Python reader's "integrity check failed"). */
export const DAMAGED_PREFIX = "integrity check failed: ";

export interface Opened {
  /** The decrypted content: for a Secure DICOM File, the whole PS3.10 file. */
  readonly payload: Uint8Array;
  /** How integrity was checked: "SHA-256 digest", "signature (SHA-256), ...", or NOT_VERIFIED. */
  readonly integrity: string;
  /** False only for a bare DICOM file in the envelope that the user chose to see (acceptUnprotected). */
  readonly verified: boolean;
}

/** The integrity line of a file shown without a digest or signature (only when the user asked). */
export const NOT_VERIFIED =
  "integrity NOT verified: no DigestedData or SignedData inside (not conformant to PS3.15 D.1.1); shown only because you asked";

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
 * What the content is comes from the decrypted bytes alone: EncryptedContentInfo.contentType is not
 * authenticated (issue 12: an attacker sets it to id-data to skip the digest). PS3.15 D.1.1: the content
 * *shall* be SignedData or DigestedData; it must parse completely and verify before a byte is handed on.
 * A bare DICOM file is refused (UnprotectedError) unless `acceptUnprotected`, and then marked NOT verified.
 *
 * Throws DecryptionError (the recipient check refused the key: the one message), KeyKindError, LimitError,
 * IntegrityError (anything wrong after a good key: padding, structure, digest, signature), UnprotectedError,
 * UnsupportedError or MalformedError (the envelope itself).
 */
export async function openSecureFile(bytes: Uint8Array, keys: KeyRing, acceptUnprotected = false): Promise<Opened> {
  const { plain } = await decryptEnvelope(bytes, keys);
  let opened: Opened;
  try {
    opened = await readInner(plain, acceptUnprotected);
  } catch (err) {
    if (err instanceof MalformedError) throw new IntegrityError(`${DAMAGED_PREFIX}the decrypted content is damaged (${err.message})`);
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

/** The protected structure the plaintext holds, by its own bytes: DigestedData or SignedData, bare or in a ContentInfo. */
function innerStructure(plain: Uint8Array): { type: string; node: Node } | null {
  if (plain[0] !== TAG_SEQUENCE) return null;
  let node: Node;
  try {
    node = readNode(plain, 0);
  } catch {
    return null;
  }
  // The structure is the whole plaintext: nothing unverified may ride after it.
  if (node.end !== plain.length) return null;
  const parts = children(plain, node);
  if (parts[0]?.tag === TAG_OID) {
    // A ContentInfo wrapper (what `openssl cms -digest_create` makes): exactly contentType and [0] content.
    const type = oid(plain, parts[0]);
    if ((type !== OID_DIGESTED_DATA && type !== OID_SIGNED_DATA) || parts.length !== 2) return null;
    const inner = children(plain, expect(parts[1], 0xa0, "ContentInfo content"));
    if (inner.length !== 1) return null;
    return { type, node: inner[0] };
  }
  // Bare: version INTEGER, then AlgorithmIdentifier (DigestedData) or SET OF (SignedData's digestAlgorithms).
  if (parts[0]?.tag !== TAG_INTEGER) return null;
  if (parts[1]?.tag === TAG_SEQUENCE) return { type: OID_DIGESTED_DATA, node };
  if (parts[1]?.tag === TAG_SET) return { type: OID_SIGNED_DATA, node };
  return null;
}

async function readInner(plain: Uint8Array, acceptUnprotected: boolean): Promise<Opened> {
  const structure = innerStructure(plain);
  if (structure?.type === OID_DIGESTED_DATA) return verifyDigested(plain, structure.node);
  if (structure?.type === OID_SIGNED_DATA) return verifySigned(plain, structure.node);
  if (isDicm(plain)) {
    // A raw DICOM file inside the envelope (plain `openssl cms -encrypt`): non-conformant to PS3.15 D.1.1, and
    // indistinguishable from a DigestedData file an attacker rewrote with CBC bit flips.
    if (!acceptUnprotected) {
      throw new UnprotectedError("the file has no integrity protection (no digest or signature inside the envelope, as PS3.15 D.1.1 requires): it is not shown unless you ask");
    }
    return { payload: plain, integrity: NOT_VERIFIED, verified: false };
  }
  throw new IntegrityError(`${DAMAGED_PREFIX}the decrypted content is not a DigestedData or SignedData (damaged or altered)`);
}

/** EncapsulatedContentInfo: eContentType must be id-data (a DICOM file) and the content present (never detached). */
function eContent(buf: Uint8Array, encap: Node): Uint8Array {
  const parts = children(buf, expect(encap, TAG_SEQUENCE, "EncapsulatedContentInfo"));
  const type = oid(buf, expect(parts[0], TAG_OID, "eContentType"));
  if (type !== OID_DATA) throw new IntegrityError(`${DAMAGED_PREFIX}the protected content is of type ${type}, not data`);
  if (parts.length !== 2) throw new IntegrityError(`${DAMAGED_PREFIX}the protected content is detached (absent from the file)`);
  const wrapper = expect(parts[1], 0xa0, "eContent [0]");
  const inner = children(buf, wrapper);
  if (inner.length !== 1) throw new MalformedError("eContent [0] holds more than one element");
  return octets(buf, expect(inner[0], TAG_OCTET_STRING, "eContent"));
}

function digestAlgorithm(buf: Uint8Array, node: Node | undefined, what: string): string {
  const alg = algorithm(buf, expect(node, TAG_SEQUENCE, what), what);
  const hash = DIGEST_HASH[alg.oid];
  if (!hash) throw new IntegrityError(`${DAMAGED_PREFIX}${what} ${alg.oid} is not an accepted digest (SHA-1/256/384/512)`);
  if (alg.params && alg.params.tag !== TAG_NULL) throw new MalformedError(`${what} has parameters`);
  return hash;
}

async function verifyDigested(buf: Uint8Array, node: Node): Promise<Opened> {
  const parts = children(buf, expect(node, TAG_SEQUENCE, "DigestedData"));
  if (parts.length !== 4) throw new MalformedError(`DigestedData has ${parts.length} fields, not 4`);
  const version = smallInteger(buf, expect(parts[0], TAG_INTEGER, "DigestedData version"));
  // RFC 5652 §7: version 0 when the encapsulated type is id-data, the only one taken (as dcmseal's reader).
  if (version !== 0) throw new MalformedError(`DigestedData version ${version}, not 0`);
  const hash = digestAlgorithm(buf, parts[1], "digestAlgorithm");
  const payload = eContent(buf, parts[2]);
  const expected = octets(buf, expect(parts[3], TAG_OCTET_STRING, "digest"));
  if (!equal(await digestOf(hash, payload), expected)) {
    throw new IntegrityError(`${DAMAGED_PREFIX}the ${hash} digest does not match the content`);
  }
  return { payload, integrity: `${hash} digest`, verified: true };
}

/**
 * SignedData (RFC 5652 §5): the messageDigest attribute must match the content and the signature over the
 * signed attributes must verify with a certificate carried in the file. No trust anchor is checked here.
 */
async function verifySigned(buf: Uint8Array, node: Node): Promise<Opened> {
  const parts = children(buf, expect(node, TAG_SEQUENCE, "SignedData"));
  expect(parts[0], TAG_INTEGER, "SignedData version");
  expect(parts[1], TAG_SET, "digestAlgorithms");
  const payload = eContent(buf, parts[2]);
  let i = 3;
  const certs = parts[i]?.tag === 0xa0 ? parts[i++] : undefined;
  if (parts[i]?.tag === 0xa1) i++; // crls
  const signerInfos = children(buf, expect(parts[i++], TAG_SET, "signerInfos"));
  if (i !== parts.length) throw new MalformedError("SignedData has fields after signerInfos");
  if (!signerInfos.length) throw new IntegrityError(`${DAMAGED_PREFIX}the SignedData has no signer`);
  let hashes = "";
  // Every signer must verify: one good signature beside a bad one is not a verified file.
  for (const si of signerInfos) {
    const f = children(buf, expect(si, TAG_SEQUENCE, "SignerInfo"));
    const hash = digestAlgorithm(buf, f[2], "the signer's digestAlgorithm");
    const signed = f[3]?.tag === 0xa0 ? f[3] : undefined;
    if (!signed) throw new IntegrityError(`${DAMAGED_PREFIX}a signature without signed attributes is not accepted`);
    let md: Uint8Array | undefined;
    let digests = 0;
    let contentType: string | undefined;
    let signingTimes = 0;
    for (const attr of children(buf, signed)) {
      const a = children(buf, expect(attr, TAG_SEQUENCE, "Attribute"));
      const type = oid(buf, expect(a[0], TAG_OID, "attribute type"));
      const values = children(buf, expect(a[1], TAG_SET, "attribute values"));
      if (type === OID_MESSAGE_DIGEST) {
        digests += values.length;
        if (values.length) md = octets(buf, expect(values[0], TAG_OCTET_STRING, "messageDigest"));
      } else if (type === OID_CONTENT_TYPE) {
        if (contentType !== undefined || values.length !== 1) throw new MalformedError("the contentType attribute is repeated");
        contentType = oid(buf, expect(values[0], TAG_OID, "contentType"));
      } else if (type === OID_SIGNING_TIME) {
        // One signingTime with one value, as dcmseal's reader asks: two would leave which one was signed open.
        if (signingTimes++ || values.length !== 1) throw new MalformedError("the signingTime attribute is repeated");
      }
    }
    if (digests !== 1 || !md) throw new IntegrityError(`${DAMAGED_PREFIX}the signer has ${digests} messageDigest values, not one`);
    if (contentType !== OID_DATA) throw new IntegrityError(`${DAMAGED_PREFIX}the signed contentType is not data`);
    if (!equal(md, await digestOf(hash, payload))) throw new IntegrityError(`${DAMAGED_PREFIX}the ${hash} digest does not match the content`);
    const signatureAlgorithm = algorithm(buf, f[4], "signatureAlgorithm").oid;
    if (!(signatureAlgorithm in RSA_SIGNATURE) || (RSA_SIGNATURE[signatureAlgorithm] && RSA_SIGNATURE[signatureAlgorithm] !== hash)) {
      throw new IntegrityError(`${DAMAGED_PREFIX}signature algorithm ${signatureAlgorithm} is not RSA PKCS#1 v1.5 with ${hash}`);
    }
    const signature = octets(buf, expect(f[5], TAG_OCTET_STRING, "signature"));
    // The signature covers the DER of the attributes with the SET OF tag (RFC 5652 §5.4).
    const attrs = buf.slice(signed.start, signed.end);
    attrs[0] = TAG_SET;
    let verified = false;
    for (const cert of certs ? children(buf, certs) : []) {
      if (await verifyWith(buf, cert, hash, signature, attrs)) verified = true;
    }
    if (!verified) throw new IntegrityError(`${DAMAGED_PREFIX}the signature does not verify`);
    hashes = hash;
  }
  return { payload, integrity: `signature (${hashes}), signer certificate not checked against a trust anchor`, verified: true };
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
