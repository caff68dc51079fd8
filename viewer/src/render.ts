/**
 * Pixels to screen: stored values -> modality values (rescale) -> VOI window (PS3.3 C.11.2.1.2) -> grey
 * levels, MONOCHROME1 inverted; colour images (RGB, YBR_FULL, YBR_FULL_422) converted to RGB.
 */
import { CodecError, decodeJ2k, decodeJpeg12, decodeJpegBrowser, decodeJpegLossless, decodeJpegLs, decodeRle } from "./codecs";
import { ImageInfo, Palette, TS } from "./dicom";

export interface Window {
  center: number;
  width: number;
}

export type Frame =
  | { readonly kind: "grey"; readonly values: Int32Array; readonly min: number; readonly max: number }
  | { readonly kind: "rgb"; readonly rgba: Uint8ClampedArray };

export class RenderError extends Error {
  override name = "RenderError";
}

/** Decode one frame's bytes (native or compressed) into stored values or RGB. */
export async function decodeFrame(info: ImageInfo, bytes: Uint8Array): Promise<Frame> {
  const ts = info.transferSyntaxUid;
  const { rows, columns } = info;
  if (!rows || !columns) throw new RenderError("the image has no Rows/Columns");
  let native: Uint8Array = bytes;
  let bitsAllocated = info.bitsAllocated;
  let samples = info.samplesPerPixel;
  let planar = info.planarConfiguration;
  let photometric = info.photometric;
  let littleEndian = true;
  switch (ts) {
    case TS.IMPLICIT_LE:
    case TS.EXPLICIT_LE:
    case TS.DEFLATED:
    case "":
      break;
    case TS.EXPLICIT_BE:
      littleEndian = false;
      break;
    case TS.JPEG_BASELINE:
    case TS.JPEG_EXTENDED: {
      if (info.bitsStored > 8 || info.bitsAllocated > 8) {
        if (samples !== 1) throw new RenderError("12-bit colour JPEG is not supported by this viewer");
        const d = decodeJpeg12(bytes, rows, columns);
        native = d.bytes;
        bitsAllocated = 16;
        break;
      }
      const d = await decodeJpegBrowser(bytes, samples);
      native = d.bytes;
      bitsAllocated = 8;
      planar = 0;
      if (d.rgb) photometric = "RGB";
      break;
    }
    case TS.JPEG_LOSSLESS:
    case TS.JPEG_LOSSLESS_SV1: {
      const d = decodeJpegLossless(bytes, info.bitsAllocated);
      native = d.bytes;
      planar = 0;
      break;
    }
    case TS.JPEG_LS_LOSSLESS:
    case TS.JPEG_LS: {
      const d = await decodeJpegLs(bytes);
      native = d.bytes;
      bitsAllocated = d.bitsAllocated;
      planar = 0;
      break;
    }
    case TS.J2K_LOSSLESS:
    case TS.J2K:
    case TS.HTJ2K_LOSSLESS:
    case TS.HTJ2K_LOSSLESS_RPCL:
    case TS.HTJ2K: {
      const d = await decodeJ2k(bytes);
      native = d.bytes;
      bitsAllocated = d.bitsAllocated;
      samples = d.samples;
      planar = 0;
      if (d.rgb) photometric = "RGB";
      break;
    }
    case TS.RLE: {
      const d = decodeRle(bytes, rows, columns, samples, info.bitsAllocated);
      native = d.bytes;
      planar = 0;
      break;
    }
    default:
      throw new RenderError(`transfer syntax ${ts} is not supported by this viewer`);
  }
  try {
    if (samples === 1) return greyFrom(native, rows * columns, bitsAllocated, info.bitsStored, info.pixelRepresentation, littleEndian);
    return colourFrom(native, rows, columns, bitsAllocated, planar, photometric, littleEndian);
  } catch (err) {
    if (err instanceof CodecError || err instanceof RenderError) throw err;
    throw new RenderError(`the pixel data could not be read: ${(err as Error).message}`);
  }
}

function greyFrom(bytes: Uint8Array, pixels: number, bitsAllocated: number, bitsStored: number, signed: number, le: boolean): Frame {
  const values = new Int32Array(pixels);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = Math.min(bitsStored, bitsAllocated);
  const mask = stored >= 32 ? 0xffffffff : 2 ** stored - 1;
  const signBit = 2 ** (stored - 1);
  const step = bitsAllocated / 8;
  if (bytes.length < pixels * step) throw new RenderError(`Pixel Data holds ${bytes.length} bytes, the image needs ${pixels * step}`);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < pixels; i++) {
    let v: number;
    if (step === 1) v = bytes[i];
    else if (step === 2) v = view.getUint16(i * 2, le);
    else v = view.getUint32(i * 4, le);
    v = stored >= 32 ? v : v & mask;
    if (signed && v >= signBit) v -= 2 * signBit;
    values[i] = v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { kind: "grey", values, min, max };
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function colourFrom(bytes: Uint8Array, rows: number, columns: number, bitsAllocated: number, planar: number, photometric: string, le: boolean): Frame {
  const pixels = rows * columns;
  const rgba = new Uint8ClampedArray(pixels * 4);
  const step = bitsAllocated / 8;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sample = (p: number, s: number): number => {
    const index = planar ? s * pixels + p : p * 3 + s;
    if (step === 1) return bytes[index];
    return view.getUint16(index * 2, le) >> (bitsAllocated - 8); // 16-bit colour shown at 8 bits
  };
  if (photometric === "YBR_FULL_422" && step === 1 && bytes.length < pixels * 3) {
    // Native YBR_FULL_422 (PS3.3 C.7.6.3.1.2): Y1 Y2 Cb Cr for each pair of pixels.
    for (let p = 0; p < pixels; p += 2) {
      const base = p * 2;
      const cb = bytes[base + 2] - 128;
      const cr = bytes[base + 3] - 128;
      for (let k = 0; k < 2 && p + k < pixels; k++) {
        const y = bytes[base + k];
        const o = (p + k) * 4;
        rgba[o] = clamp(y + 1.402 * cr);
        rgba[o + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
        rgba[o + 2] = clamp(y + 1.772 * cb);
        rgba[o + 3] = 255;
      }
    }
    return { kind: "rgb", rgba };
  }
  if (bytes.length < pixels * 3 * step) throw new RenderError(`Pixel Data holds ${bytes.length} bytes, the image needs ${pixels * 3 * step}`);
  const ybr = photometric.startsWith("YBR_FULL");
  for (let p = 0; p < pixels; p++) {
    const a = sample(p, 0);
    const b = sample(p, 1);
    const c = sample(p, 2);
    const o = p * 4;
    if (ybr) {
      rgba[o] = clamp(a + 1.402 * (c - 128));
      rgba[o + 1] = clamp(a - 0.344136 * (b - 128) - 0.714136 * (c - 128));
      rgba[o + 2] = clamp(a + 1.772 * (b - 128));
    } else {
      rgba[o] = a;
      rgba[o + 1] = b;
      rgba[o + 2] = c;
    }
    rgba[o + 3] = 255;
  }
  return { kind: "rgb", rgba };
}

/** The window a frame opens with: the file's first, else the full range of its modality values. */
export function defaultWindow(info: ImageInfo, frame: Frame): Window {
  if (info.windows.length) return { ...info.windows[0] };
  if (frame.kind !== "grey") return { center: 127.5, width: 256 };
  const a = frame.min * info.slope + info.intercept;
  const b = frame.max * info.slope + info.intercept;
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return { center: (lo + hi) / 2, width: Math.max(hi - lo, 1) };
}

/** PS3.3 C.11.2.1.2.1 (LINEAR) and C.11.2.1.3.1 (SIGMOID), output range 0..255. */
export function applyWindow(x: number, w: Window, fn = "LINEAR"): number {
  const c = w.center;
  const width = Math.max(w.width, 1);
  if (fn === "SIGMOID") return 255 / (1 + Math.exp((-4 * (x - c)) / width));
  if (fn === "LINEAR_EXACT") {
    if (x <= c - width / 2) return 0;
    if (x > c + width / 2) return 255;
    return ((x - c) / width + 0.5) * 255;
  }
  if (width <= 1) return x <= c - 0.5 ? 0 : 255;
  if (x <= c - 0.5 - (width - 1) / 2) return 0;
  if (x > c - 0.5 + (width - 1) / 2) return 255;
  return ((x - (c - 0.5)) / (width - 1) + 0.5) * 255;
}

/** RGBA for the canvas. Grey frames go through a lookup table over their stored-value range. */
export function toRgba(frame: Frame, info: ImageInfo, window: Window, out?: Uint8ClampedArray, inverted = false): Uint8ClampedArray {
  if (frame.kind === "rgb" || info.palette) {
    const rgba = frame.kind === "rgb" ? frame.rgba : paletteToRgba(frame.values, info.palette as Palette);
    if (!inverted) return rgba;
    const copy = new Uint8ClampedArray(rgba.length);
    for (let i = 0; i < rgba.length; i += 4) {
      copy[i] = 255 - rgba[i];
      copy[i + 1] = 255 - rgba[i + 1];
      copy[i + 2] = 255 - rgba[i + 2];
      copy[i + 3] = 255;
    }
    return copy;
  }
  const pixels = frame.values.length;
  const rgba = out && out.length === pixels * 4 ? out : new Uint8ClampedArray(pixels * 4);
  // The user's invert on top of MONOCHROME1's own (which shows low values white).
  const invert = (info.photometric === "MONOCHROME1") !== inverted;
  const fn = info.voiLutFunction;
  const span = frame.max - frame.min + 1;
  const grey = (v: number): number => {
    const y = Math.round(applyWindow(v * info.slope + info.intercept, window, fn));
    return invert ? 255 - y : y;
  };
  if (span <= 1 << 20) {
    const lut = new Uint8ClampedArray(span);
    for (let i = 0; i < span; i++) lut[i] = grey(frame.min + i);
    for (let p = 0, o = 0; p < pixels; p++, o += 4) {
      const g = lut[frame.values[p] - frame.min];
      rgba[o] = g;
      rgba[o + 1] = g;
      rgba[o + 2] = g;
      rgba[o + 3] = 255;
    }
  } else {
    for (let p = 0, o = 0; p < pixels; p++, o += 4) {
      const g = grey(frame.values[p]);
      rgba[o] = g;
      rgba[o + 1] = g;
      rgba[o + 2] = g;
      rgba[o + 3] = 255;
    }
  }
  return rgba;
}

/** PALETTE COLOR: each stored value through the red, green and blue tables (clamped to their ends). */
export function paletteToRgba(values: Int32Array, palette: Palette): Uint8ClampedArray {
  const rgba = new Uint8ClampedArray(values.length * 4);
  const last = palette.red.length - 1;
  for (let p = 0, o = 0; p < values.length; p++, o += 4) {
    let i = values[p] - palette.first;
    i = i < 0 ? 0 : i > last ? last : i;
    rgba[o] = palette.red[i];
    rgba[o + 1] = palette.green[i];
    rgba[o + 2] = palette.blue[i];
    rgba[o + 3] = 255;
  }
  return rgba;
}
