/**
 * Decoders for the compressed transfer syntaxes. Each returns the frame as native little-endian bytes,
 * samples interleaved (planar configuration 0), so the renderer has one path for every syntax.
 *
 * JPEG baseline/extended 8-bit: the browser's own decoder (createImageBitmap). JPEG lossless: jpeg-lossless-
 * decoder-js. JPEG-LS: CharLS (@cornerstonejs/codec-charls), JPEG 2000 and HTJ2K: OpenJPEG
 * (@cornerstonejs/codec-openjpeg), both WebAssembly inlined in the bundle because file:// pages cannot fetch
 * .wasm files (the CSP therefore allows 'wasm-unsafe-eval'). 12-bit JPEG (Extended, process 4): the JavaScript
 * JpegImage decoder of @cornerstonejs/dicom-image-loader (what OHIF uses; browsers decode 8-bit JPEG only).
 * RLE Lossless (PS3.5 Annex G): decoded here.
 */
import charlsFactory from "@cornerstonejs/codec-charls/decodewasmjs";
import charlsWasm from "@cornerstonejs/codec-charls/decodewasm";
import openjpegFactory from "@cornerstonejs/codec-openjpeg/decodewasmjs";
import openjpegWasm from "@cornerstonejs/codec-openjpeg/decodewasm";
import { Decoder as LosslessDecoder } from "jpeg-lossless-decoder-js";
import JpegImage from "dcmseal-jpeg12";

export class CodecError extends Error {
  override name = "CodecError";
}

export interface Decoded {
  /** Native little-endian samples, interleaved. */
  readonly bytes: Uint8Array;
  readonly bitsAllocated: number;
  readonly samples: number;
  /** The colour transform the codec already undid: the result is RGB whatever the file's photometric says. */
  readonly rgb: boolean;
}

let openjpeg: Promise<any> | undefined;
let charls: Promise<any> | undefined;

interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean };
  getDecodedBuffer(): Uint8Array;
  getInterleaveMode?(): number;
  delete?(): void;
}

function runWasm(decoder: WasmDecoder, data: Uint8Array): { bytes: Uint8Array; info: ReturnType<WasmDecoder["getFrameInfo"]>; interleave: number } {
  try {
    decoder.getEncodedBuffer(data.length).set(data);
    decoder.decode();
    const info = decoder.getFrameInfo();
    const interleave = decoder.getInterleaveMode ? decoder.getInterleaveMode() : 1;
    return { bytes: decoder.getDecodedBuffer().slice(), info, interleave };
  } finally {
    decoder.delete?.();
  }
}

function planarToInterleaved(bytes: Uint8Array, samples: number, bytesPerSample: number): Uint8Array {
  const pixels = bytes.length / (samples * bytesPerSample);
  const out = new Uint8Array(bytes.length);
  for (let s = 0; s < samples; s++) {
    for (let p = 0; p < pixels; p++) {
      for (let b = 0; b < bytesPerSample; b++) {
        out[(p * samples + s) * bytesPerSample + b] = bytes[(s * pixels + p) * bytesPerSample + b];
      }
    }
  }
  return out;
}

export async function decodeJ2k(data: Uint8Array): Promise<Decoded> {
  openjpeg ??= openjpegFactory({ wasmBinary: openjpegWasm });
  const m = await openjpeg;
  const { bytes, info } = runWasm(new m.J2KDecoder(), data);
  // The codec returns interleaved components and undoes the RCT/ICT colour transform itself.
  const bytesPerSample = info.bitsPerSample > 8 ? 2 : 1;
  return { bytes, bitsAllocated: bytesPerSample * 8, samples: info.componentCount, rgb: info.componentCount === 3 };
}

export async function decodeJpegLs(data: Uint8Array): Promise<Decoded> {
  charls ??= charlsFactory({ wasmBinary: charlsWasm });
  const m = await charls;
  const { bytes, info, interleave } = runWasm(new m.JpegLSDecoder(), data);
  const bytesPerSample = info.bitsPerSample > 8 ? 2 : 1;
  const out = info.componentCount > 1 && interleave === 0 ? planarToInterleaved(bytes, info.componentCount, bytesPerSample) : bytes;
  return { bytes: out, bitsAllocated: bytesPerSample * 8, samples: info.componentCount, rgb: false };
}

export function decodeJpegLossless(data: Uint8Array, bitsAllocated: number): Decoded {
  const decoder = new LosslessDecoder();
  const bytesPerSample = bitsAllocated <= 8 ? 1 : 2;
  let out: ArrayBuffer;
  try {
    const copy = data.slice();
    out = (decoder.decode(copy.buffer, 0, copy.length, bytesPerSample) as unknown as Uint8Array).buffer as ArrayBuffer;
  } catch (err) {
    throw new CodecError(`JPEG lossless decoding failed: ${(err as Error).message}`);
  }
  return { bytes: new Uint8Array(out), bitsAllocated: bytesPerSample * 8, samples: decoder.numComp || 1, rgb: false };
}

/** PS3.5 Annex G: a 64-byte header of segment offsets, then one PackBits segment per byte of each sample. */
export function decodeRle(data: Uint8Array, rows: number, columns: number, samples: number, bitsAllocated: number): Decoded {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.length < 64) throw new CodecError("RLE frame shorter than its header");
  const count = view.getUint32(0, true);
  const bytesPerSample = bitsAllocated / 8;
  if (count !== samples * bytesPerSample || count > 15) throw new CodecError(`RLE frame has ${count} segments, expected ${samples * bytesPerSample}`);
  const pixels = rows * columns;
  const out = new Uint8Array(pixels * samples * bytesPerSample);
  for (let seg = 0; seg < count; seg++) {
    const start = view.getUint32(4 + seg * 4, true);
    const end = seg + 1 < count ? view.getUint32(8 + seg * 4, true) : data.length;
    const sample = Math.floor(seg / bytesPerSample);
    // Segments run from the most significant byte; the output is little endian.
    const byte = bytesPerSample - 1 - (seg % bytesPerSample);
    const stride = samples * bytesPerSample;
    let o = sample * bytesPerSample + byte;
    let p = 0;
    let i = start;
    while (i < end && p < pixels) {
      const n = (data[i++] << 24) >> 24;
      if (n >= 0) {
        for (let k = 0; k <= n && i < end && p < pixels; k++, p++, o += stride) out[o] = data[i++];
      } else if (n !== -128) {
        const v = data[i++];
        for (let k = 0; k < 1 - n && p < pixels; k++, p++, o += stride) out[o] = v;
      }
    }
  }
  return { bytes: out, bitsAllocated, samples, rgb: false };
}

/** The browser's JPEG decoder: 8-bit baseline and extended; RGB output (greyscale comes back as R = G = B). */
export async function decodeJpegBrowser(data: Uint8Array, samples: number): Promise<Decoded> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([data as unknown as BlobPart], { type: "image/jpeg" }), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    throw new CodecError("the browser could not decode this JPEG image (12-bit JPEG is not supported by browsers)");
  }
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true }) as CanvasRenderingContext2D;
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  bitmap.close();
  const pixels = rgba.length / 4;
  const out = new Uint8Array(pixels * samples);
  for (let p = 0; p < pixels; p++) {
    for (let s = 0; s < samples; s++) out[p * samples + s] = rgba[p * 4 + s];
  }
  return { bytes: out, bitsAllocated: 8, samples, rgb: samples === 3 };
}

/** 12-bit JPEG (process 2/4, 1.2.840.10008.1.2.4.51): greyscale to 16-bit little-endian samples. */
export function decodeJpeg12(data: Uint8Array, rows: number, columns: number): Decoded {
  let samples: Uint16Array;
  try {
    const jpeg = new JpegImage();
    jpeg.parse(data);
    jpeg.colorTransform = false;
    if (jpeg.width !== columns || jpeg.height !== rows) {
      throw new Error(`the JPEG is ${jpeg.width}x${jpeg.height}, the image ${columns}x${rows}`);
    }
    samples = jpeg.getData16(columns, rows);
  } catch (err) {
    throw new CodecError(`12-bit JPEG decoding failed: ${(err as Error)?.message ?? String(err)}`);
  }
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples.length; i++) view.setUint16(i * 2, samples[i], true);
  return { bytes, bitsAllocated: 16, samples: 1, rgb: false };
}
