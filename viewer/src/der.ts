/**
 * A small BER/DER reader (ITU-T X.690) for CMS: definite and indefinite lengths, constructed strings.
 *
 * OpenSSL's `-stream` output and DicomObjects discs use BER indefinite lengths and chunked (constructed)
 * OCTET STRINGs; our own writer uses DER. Both are read by the same code. Every length is checked against
 * the bytes that are left before it is used.
 */

export class MalformedError extends Error {
  override name = "MalformedError";
}

export const TAG_INTEGER = 0x02;
export const TAG_OCTET_STRING = 0x04;
export const TAG_NULL = 0x05;
export const TAG_OID = 0x06;
export const TAG_SEQUENCE = 0x30;
export const TAG_SET = 0x31;

/** Nesting deeper than this is refused (CMS needs about 12 levels). */
const MAX_DEPTH = 64;

export interface Node {
  /** The identifier octet; high tag numbers (>= 31) keep 0x1f in the low bits and their number in `tagNumber`. */
  readonly tag: number;
  readonly tagClass: number; // 0 universal, 1 application, 2 context, 3 private
  readonly tagNumber: number;
  readonly constructed: boolean;
  readonly start: number;
  readonly contentStart: number;
  /** End of the content (before the end-of-contents octets of an indefinite form). */
  readonly contentEnd: number;
  /** End of the whole element, end-of-contents included. */
  readonly end: number;
  readonly indefinite: boolean;
}

/** Read the element that starts at `offset` and ends no later than `limit`. */
export function readNode(buf: Uint8Array, offset: number, limit: number = buf.length, depth = 0): Node {
  if (depth > MAX_DEPTH) throw new MalformedError(`BER nested deeper than ${MAX_DEPTH} levels at byte ${offset}`);
  let pos = offset;
  const need = (n: number): void => {
    if (pos + n > limit) throw new MalformedError(`BER element at byte ${offset} runs past the end of its container`);
  };
  need(2);
  const tag = buf[pos++];
  let tagNumber = tag & 0x1f;
  if (tagNumber === 0x1f) {
    tagNumber = 0;
    for (let i = 0; ; i++) {
      need(1);
      const b = buf[pos++];
      tagNumber = tagNumber * 128 + (b & 0x7f);
      if (!(b & 0x80)) break;
      if (i > 3) throw new MalformedError(`BER tag number too long at byte ${offset}`);
    }
  }
  need(1);
  const first = buf[pos++];
  const constructed = (tag & 0x20) !== 0;
  if (first === 0x80) {
    if (!constructed) throw new MalformedError(`BER indefinite length on a primitive element at byte ${offset}`);
    const contentStart = pos;
    let cursor = pos;
    for (;;) {
      if (cursor + 2 > limit) throw new MalformedError(`BER indefinite element at byte ${offset} has no end-of-contents`);
      if (buf[cursor] === 0 && buf[cursor + 1] === 0) break;
      cursor = readNode(buf, cursor, limit, depth + 1).end;
    }
    return {
      tag, tagClass: tag >> 6, tagNumber, constructed, start: offset, contentStart,
      contentEnd: cursor, end: cursor + 2, indefinite: true,
    };
  }
  let length = first;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count > 6) throw new MalformedError(`BER length of ${count} octets at byte ${offset}`);
    need(count);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[pos++];
  }
  if (pos + length > limit) {
    throw new MalformedError(`BER element at byte ${offset} declares ${length} bytes, only ${limit - pos} are left`);
  }
  return {
    tag, tagClass: tag >> 6, tagNumber, constructed, start: offset, contentStart: pos,
    contentEnd: pos + length, end: pos + length, indefinite: false,
  };
}

/** The elements inside a constructed element. */
export function children(buf: Uint8Array, node: Node): Node[] {
  if (!node.constructed) throw new MalformedError(`BER element at byte ${node.start} is not constructed`);
  const out: Node[] = [];
  let pos = node.contentStart;
  while (pos < node.contentEnd) {
    const child = readNode(buf, pos, node.contentEnd);
    out.push(child);
    pos = child.end;
  }
  return out;
}

/** The content octets of a string type, joining the segments of a constructed (BER) string. */
export function octets(buf: Uint8Array, node: Node): Uint8Array {
  if (!node.constructed) return buf.subarray(node.contentStart, node.contentEnd);
  const parts: Uint8Array[] = [];
  const collect = (n: Node, depth: number): void => {
    if (depth > MAX_DEPTH) throw new MalformedError(`BER string nested too deeply at byte ${n.start}`);
    for (const c of children(buf, n)) {
      if (c.constructed) collect(c, depth + 1);
      else parts.push(buf.subarray(c.contentStart, c.contentEnd));
    }
  };
  collect(node, 0);
  if (parts.length === 1) return parts[0];
  const total = parts.reduce((s, p) => s + p.length, 0);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  return joined;
}

/** Dotted form of an OBJECT IDENTIFIER. */
export function oid(buf: Uint8Array, node: Node): string {
  if (node.tag !== TAG_OID) throw new MalformedError(`expected an OBJECT IDENTIFIER at byte ${node.start}`);
  const bytes = buf.subarray(node.contentStart, node.contentEnd);
  const arcs: number[] = [];
  let value = 0;
  for (const b of bytes) {
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (arcs.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        arcs.push(first, value - first * 40);
      } else arcs.push(value);
      value = 0;
    }
  }
  return arcs.join(".");
}

/** An INTEGER as a BigInt (two's complement). */
export function integer(buf: Uint8Array, node: Node): bigint {
  if (node.tag !== TAG_INTEGER) throw new MalformedError(`expected an INTEGER at byte ${node.start}`);
  const bytes = buf.subarray(node.contentStart, node.contentEnd);
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  if (bytes.length && bytes[0] & 0x80) value -= 1n << BigInt(bytes.length * 8);
  return value;
}

/** A small non-negative INTEGER as a number. */
export function smallInteger(buf: Uint8Array, node: Node): number {
  const v = integer(buf, node);
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MalformedError(`INTEGER out of range at byte ${node.start}`);
  return Number(v);
}

/** Require `node` to carry `tag`, naming what was expected. */
export function expect(node: Node | undefined, tag: number, what: string): Node {
  if (!node) throw new MalformedError(`missing ${what}`);
  if (node.tag !== tag) {
    throw new MalformedError(`expected ${what} (tag 0x${tag.toString(16)}) at byte ${node.start}, found 0x${node.tag.toString(16)}`);
  }
  return node;
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
