/**
 * The reading tools' arithmetic, kept apart from the page so it is tested on its own (test/tools.test.ts):
 * calibration, length, angle, ROI statistics in modality units, window presets, orientation labels, overlays
 * (60xx), the cine rate and the scale bar. Image coordinates are continuous: pixel (c, r) covers [c, c+1) x
 * [r, r+1), so its centre is (c + 0.5, r + 0.5).
 */
import type { DataSet } from "./dicom";
import type { Frame, Window } from "./render";

export interface Point {
  readonly x: number;
  readonly y: number;
}

/** mm per pixel along a row (between columns) and along a column (between rows), and where it comes from. */
export interface Spacing {
  readonly column: number; // horizontal: mm between the centres of adjacent columns
  readonly row: number; // vertical: mm between the centres of adjacent rows
  /** "Pixel Spacing" (in the patient), "Imager Pixel Spacing" (at the detector), or null: uncalibrated. */
  readonly source: "Pixel Spacing" | "Imager Pixel Spacing" | null;
}

const UNCALIBRATED: Spacing = { column: 1, row: 1, source: null };

function pair(ds: DataSet, tag: string): [number, number] | null {
  let text: string | undefined;
  try {
    text = ds.string(tag);
  } catch {
    return null;
  }
  const parts = (text ?? "").split("\\").map((v) => parseFloat(v));
  if (parts.length < 2 || !parts.every((v) => Number.isFinite(v) && v > 0)) return null;
  return [parts[0], parts[1]];
}

/**
 * Pixel Spacing (0028,0030) first: the spacing in the patient (PS3.3 10.7.1.3); else Imager Pixel Spacing
 * (0018,1164), at the detector (a projection image is magnified: the page says which it used); else none.
 * Both give the row spacing (between rows) first, then the column spacing.
 */
export function spacingOf(ds: DataSet): Spacing {
  const ps = pair(ds, "x00280030");
  if (ps) return { row: ps[0], column: ps[1], source: "Pixel Spacing" };
  const ips = pair(ds, "x00181164");
  if (ips) return { row: ips[0], column: ips[1], source: "Imager Pixel Spacing" };
  return UNCALIBRATED;
}

/** Length between two points: mm when calibrated, else pixels. */
export function length(a: Point, b: Point, s: Spacing): number {
  return Math.hypot((b.x - a.x) * s.column, (b.y - a.y) * s.row);
}

/** The angle at `vertex` between the rays to `a` and `b`, in degrees (in the patient: spacing applied). */
export function angle(a: Point, vertex: Point, b: Point, s: Spacing): number {
  const ux = (a.x - vertex.x) * s.column;
  const uy = (a.y - vertex.y) * s.row;
  const vx = (b.x - vertex.x) * s.column;
  const vy = (b.y - vertex.y) * s.row;
  const n = Math.hypot(ux, uy) * Math.hypot(vx, vy);
  if (!n) return 0;
  return (Math.acos(Math.max(-1, Math.min(1, (ux * vx + uy * vy) / n))) * 180) / Math.PI;
}

export interface RoiStats {
  readonly pixels: number;
  readonly mean: number;
  readonly sd: number;
  readonly min: number;
  readonly max: number;
  /** The shape's geometric area: mm² when calibrated, else pixels². */
  readonly area: number;
}

/**
 * Statistics of the modality values (stored value x slope + intercept: HU for CT) of the pixels whose centres
 * lie inside the rectangle or the ellipse inscribed in it; SD is the population standard deviation.
 */
export function roiStats(
  frame: Frame, columns: number, rows: number, slope: number, intercept: number,
  shape: "rectangle" | "ellipse", a: Point, b: Point, s: Spacing,
): RoiStats | null {
  if (frame.kind !== "grey") return null;
  const x0 = Math.min(a.x, b.x);
  const x1 = Math.max(a.x, b.x);
  const y0 = Math.min(a.y, b.y);
  const y1 = Math.max(a.y, b.y);
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const rx = (x1 - x0) / 2;
  const ry = (y1 - y0) / 2;
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let r = Math.max(0, Math.floor(y0)); r < Math.min(rows, Math.ceil(y1)); r++) {
    const py = r + 0.5;
    if (py < y0 || py > y1) continue;
    for (let c = Math.max(0, Math.floor(x0)); c < Math.min(columns, Math.ceil(x1)); c++) {
      const px = c + 0.5;
      if (px < x0 || px > x1) continue;
      if (shape === "ellipse" && rx > 0 && ry > 0 && ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 > 1) continue;
      const v = frame.values[r * columns + c] * slope + intercept;
      n += 1;
      sum += v;
      sumSq += v * v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  if (!n) return null;
  const mean = sum / n;
  const sd = Math.sqrt(Math.max(0, sumSq / n - mean * mean));
  const w = (x1 - x0) * s.column;
  const h = (y1 - y0) * s.row;
  const area = shape === "ellipse" ? (Math.PI * w * h) / 4 : w * h;
  return { pixels: n, mean, sd, min, max, area };
}

/** The unit of modality values: HU for CT (or when Rescale Type says so), else none known. */
export function modalityUnit(ds: DataSet, modality: string): string {
  let type = "";
  try {
    type = (ds.string("x00281054") ?? "").trim();
  } catch {
    type = "";
  }
  if (type === "HU" || (!type && modality === "CT")) return "HU";
  return type && type !== "US" ? type : "";
}

export interface Preset {
  readonly name: string;
  readonly window: Window;
}

/** CT windows as radiology departments use them (centre / width in HU). */
const CT_PRESETS: readonly Preset[] = [
  { name: "Brain", window: { center: 40, width: 80 } },
  { name: "Subdural", window: { center: 75, width: 215 } },
  { name: "Stroke", window: { center: 32, width: 8 } },
  { name: "Temporal bone", window: { center: 600, width: 2800 } },
  { name: "Lung", window: { center: -600, width: 1500 } },
  { name: "Mediastinum", window: { center: 50, width: 350 } },
  { name: "Abdomen", window: { center: 40, width: 400 } },
  { name: "Liver", window: { center: 60, width: 160 } },
  { name: "Bone", window: { center: 400, width: 1800 } },
];

/**
 * The presets offered for an image: the file's own windows (named by their explanation, 0028,1055), then the
 * modality's (CT), then the full range of the values.
 */
export function presetsFor(modality: string, own: readonly Window[], explanations: readonly string[], frame: Frame, slope: number, intercept: number): Preset[] {
  const out: Preset[] = own.map((w, i) => ({ name: explanations[i] || `File window ${i + 1}`, window: { ...w } }));
  if (modality === "CT") out.push(...CT_PRESETS.map((p) => ({ name: p.name, window: { ...p.window } })));
  if (frame.kind === "grey") {
    const a = frame.min * slope + intercept;
    const b = frame.max * slope + intercept;
    out.push({ name: "Full range", window: { center: (a + b) / 2, width: Math.max(Math.abs(b - a), 1) } });
  }
  return out;
}

/** Patient-axis letters of a direction (PS3.3 C.7.6.2.1.1): up to three, the dominant first. */
export function directionLabel(v: readonly number[]): string {
  const axes: [number, string, string][] = [
    [v[0], "L", "R"], // +x: towards the patient's left
    [v[1], "P", "A"], // +y: posterior
    [v[2], "H", "F"], // +z: head
  ];
  return axes
    .filter(([c]) => Math.abs(c) > 0.25)
    .sort((p, q) => Math.abs(q[0]) - Math.abs(p[0]))
    .map(([c, plus, minus]) => (c > 0 ? plus : minus))
    .join("");
}

export interface Orientation {
  readonly left: string;
  readonly right: string;
  readonly top: string;
  readonly bottom: string;
}

const OPPOSITE: Record<string, string> = { L: "R", R: "L", A: "P", P: "A", H: "F", F: "H" };

/**
 * The letters at the image's edges: from Image Orientation (Patient) (0020,0037; cross-sectional images), else
 * from Patient Orientation (0020,0020; projection images: the row direction, then the column direction).
 */
export function orientationOf(ds: DataSet): Orientation | null {
  let iop: number[] = [];
  let po = "";
  try {
    iop = (ds.string("x00200037") ?? "").split("\\").map((v) => parseFloat(v));
    po = (ds.string("x00200020") ?? "").trim();
  } catch {
    return null;
  }
  if (iop.length === 6 && iop.every(Number.isFinite)) {
    const row = iop.slice(0, 3);
    const column = iop.slice(3, 6);
    return {
      right: directionLabel(row), left: directionLabel(row.map((c) => -c)),
      bottom: directionLabel(column), top: directionLabel(column.map((c) => -c)),
    };
  }
  const parts = po.split("\\");
  if (parts.length === 2 && parts.every((p) => /^[LRAPHF]+$/.test(p))) {
    const flip = (p: string): string => [...p].map((c) => OPPOSITE[c]).join("");
    return { right: parts[0], left: flip(parts[0]), bottom: parts[1], top: flip(parts[1]) };
  }
  return null;
}

export interface Overlay {
  readonly group: number;
  readonly rows: number;
  readonly columns: number;
  /** 0-based row and column of the overlay's first pixel in the image (Overlay Origin is 1-based). */
  readonly top: number;
  readonly left: number;
  readonly type: string;
  readonly description: string;
  /** One byte per overlay pixel: 1 drawn, 0 not. */
  readonly bits: Uint8Array;
}

/**
 * The overlay planes (60xx, PS3.3 C.9.2) that apply to frame `frame`: Overlay Data unpacked (bit 0 of each
 * byte first, little endian words), Image Frame Origin and Number of Frames in Overlay honoured.
 */
export function overlaysOf(ds: DataSet, frame: number): Overlay[] {
  const out: Overlay[] = [];
  const bytes = ds.byteArray as Uint8Array;
  for (let group = 0x6000; group <= 0x601e; group += 2) {
    const g = group.toString(16);
    const data = ds.elements[`x${g}3000`];
    if (!data || !data.length) continue;
    const u16 = (e: string): number | undefined => {
      const el = ds.elements[`x${g}${e}`];
      if (!el || el.length < 2) return undefined;
      return ds.uint16(`x${g}${e}`);
    };
    const rows = u16("0010") ?? 0;
    const columns = u16("0011") ?? 0;
    if (!rows || !columns) continue;
    const framesIn = Number.parseInt(safe(ds, `x${g}0015`) || "1", 10) || 1;
    const firstFrame = (u16("0051") ?? 1) - 1;
    const index = framesIn > 1 ? frame - firstFrame : 0;
    if (index < 0 || index >= framesIn) continue;
    let top = 0;
    let left = 0;
    const origin = ds.elements[`x${g}0050`];
    if (origin && origin.length >= 4) {
      top = (ds.int16(`x${g}0050`, 0) ?? 1) - 1;
      left = (ds.int16(`x${g}0050`, 1) ?? 1) - 1;
    }
    const count = rows * columns;
    const bits = new Uint8Array(count);
    const start = index * count;
    for (let i = 0; i < count; i++) {
      const bit = start + i;
      const byte = data.dataOffset + (bit >> 3);
      if (byte >= data.dataOffset + data.length) break;
      bits[i] = (bytes[byte] >> (bit & 7)) & 1;
    }
    out.push({ group, rows, columns, top, left, type: safe(ds, `x${g}0040`) || "G", description: safe(ds, `x${g}0022`), bits });
  }
  return out;
}

function safe(ds: DataSet, tag: string): string {
  try {
    return (ds.string(tag) ?? "").trim();
  } catch {
    return "";
  }
}

/**
 * Frames per second for cine: Recommended Display Frame Rate (0008,2144), else Cine Rate (0018,0040), else
 * Frame Time (0018,1063, ms), else 10; with where it came from.
 */
export function cineRate(ds: DataSet): { fps: number; source: string } {
  const n = (tag: string): number => parseFloat(safe(ds, tag));
  const recommended = n("x00082144");
  if (recommended > 0) return { fps: recommended, source: "Recommended Display Frame Rate" };
  const cine = n("x00180040");
  if (cine > 0) return { fps: cine, source: "Cine Rate" };
  const frameTime = n("x00181063");
  if (frameTime > 0) return { fps: 1000 / frameTime, source: "Frame Time" };
  return { fps: 10, source: "default" };
}

/** A round length (1, 2, 5 x 10^n mm) whose bar is at most `maxPixels` on screen at `mmPerPixel`. */
export function scaleBar(mmPerScreenPixel: number, maxPixels: number): { mm: number; pixels: number } | null {
  if (!(mmPerScreenPixel > 0)) return null;
  const limit = mmPerScreenPixel * maxPixels;
  let best = 0;
  for (let e = -2; e <= 4; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v <= limit) best = v;
    }
  }
  return best ? { mm: best, pixels: best / mmPerScreenPixel } : null;
}
