// The reading tools' arithmetic on data sets parsed by dicom-parser from bytes written here (explicit VR LE).
import assert from "node:assert/strict";
import { test } from "node:test";

import * as dp from "dicom-parser";

import type { Frame } from "../src/render";
import {
  angle, cineRate, directionLabel, length, modalityUnit, orientationOf, overlaysOf, presetsFor, roiStats, scaleBar,
  spacingOf,
} from "../src/tools";

type Value = string | Uint8Array | number[];
const LONG = new Set(["OB", "OW", "UN", "SQ", "UT"]);

/** A data set in explicit VR little endian from (tag, VR, value) triples; US values as number arrays. */
function dataset(elements: [number, string, Value][]): dp.DataSet {
  const parts: number[] = [];
  const u16 = (v: number): void => {
    parts.push(v & 0xff, v >> 8);
  };
  for (const [tag, vr, value] of [...elements].sort((a, b) => a[0] - b[0])) {
    let bytes: number[];
    if (typeof value === "string") {
      bytes = Array.from(new TextEncoder().encode(value));
      if (bytes.length % 2) bytes.push(vr === "UI" ? 0 : 0x20);
    } else if (value instanceof Uint8Array) {
      bytes = Array.from(value);
      if (bytes.length % 2) bytes.push(0);
    } else {
      bytes = [];
      for (const n of value) bytes.push(n & 0xff, (n >> 8) & 0xff);
    }
    u16(tag >>> 16);
    u16(tag & 0xffff);
    parts.push(vr.charCodeAt(0), vr.charCodeAt(1));
    if (LONG.has(vr)) {
      u16(0);
      u16(bytes.length & 0xffff);
      u16(bytes.length >>> 16);
    } else u16(bytes.length);
    parts.push(...bytes);
  }
  return dp.parseDicom(Uint8Array.from(parts), { TransferSyntaxUID: "1.2.840.10008.1.2.1" } as never);
}

const grey = (values: number[]): Frame => ({ kind: "grey", values: Int32Array.from(values), min: Math.min(...values), max: Math.max(...values) });

test("calibration: Pixel Spacing first, then Imager Pixel Spacing (at the detector), else uncalibrated", () => {
  const both = dataset([[0x00280030, "DS", "0.5\\0.25"], [0x00181164, "DS", "0.7\\0.7"]]);
  assert.deepEqual(spacingOf(both), { row: 0.5, column: 0.25, source: "Pixel Spacing" });
  assert.deepEqual(spacingOf(dataset([[0x00181164, "DS", "0.14\\0.14"]])), { row: 0.14, column: 0.14, source: "Imager Pixel Spacing" });
  assert.equal(spacingOf(dataset([[0x00080060, "CS", "OT"]])).source, null);
});

test("length and angle use the spacing along each axis", () => {
  const s = { row: 0.5, column: 0.25, source: "Pixel Spacing" as const };
  assert.equal(length({ x: 10, y: 0 }, { x: 50, y: 0 }, s), 10); // 40 columns x 0.25 mm
  assert.equal(length({ x: 0, y: 10 }, { x: 0, y: 30 }, s), 10); // 20 rows x 0.5 mm
  assert.ok(Math.abs(angle({ x: 40, y: 0 }, { x: 0, y: 0 }, { x: 0, y: 20 }, s) - 90) < 1e-9);
  // 45 degrees in the patient: 20 columns (5 mm) against 10 rows (5 mm).
  assert.ok(Math.abs(angle({ x: 20, y: 0 }, { x: 0, y: 0 }, { x: 20, y: 10 }, s) - 45) < 1e-9);
});

test("ROI statistics in modality units over the pixels whose centres are inside", () => {
  // 4 x 4 image, stored values 0..15, rescale 2x - 10.
  const frame = grey(Array.from({ length: 16 }, (_, i) => i));
  const s = { row: 1, column: 1, source: "Pixel Spacing" as const };
  const rect = roiStats(frame, 4, 4, 2, -10, "rectangle", { x: 1, y: 1 }, { x: 3, y: 3 }, s);
  assert.ok(rect);
  assert.equal(rect.pixels, 4); // stored 5, 6, 9, 10
  assert.equal(rect.mean, 2 * 7.5 - 10);
  assert.equal(rect.min, 0);
  assert.equal(rect.max, 10);
  assert.ok(Math.abs(rect.sd - 2 * Math.sqrt(((5 - 7.5) ** 2 + (6 - 7.5) ** 2 + (9 - 7.5) ** 2 + (10 - 7.5) ** 2) / 4)) < 1e-9);
  assert.equal(rect.area, 4);
  const ellipse = roiStats(frame, 4, 4, 1, 0, "ellipse", { x: 0, y: 0 }, { x: 4, y: 4 }, s);
  assert.ok(ellipse);
  assert.equal(ellipse.pixels, 12); // the four corners' centres lie outside the circle
  assert.ok(Math.abs(ellipse.area - Math.PI * 4) < 1e-9);
});

test("units: HU for CT, Rescale Type when given", () => {
  assert.equal(modalityUnit(dataset([[0x00080060, "CS", "CT"]]), "CT"), "HU");
  assert.equal(modalityUnit(dataset([[0x00281054, "LO", "OD"]]), "XA"), "OD");
  assert.equal(modalityUnit(dataset([[0x00080060, "CS", "MR"]]), "MR"), "");
});

test("presets: the file's windows by their explanation, CT's, then the full range", () => {
  const names = presetsFor("CT", [{ center: 40, width: 400 }], ["SOFT TISSUE"], grey([0, 100]), 1, -1024).map((p) => p.name);
  assert.equal(names[0], "SOFT TISSUE");
  assert.ok(names.includes("Lung") && names.includes("Mediastinum") && names.includes("Bone") && names.includes("Brain"));
  assert.equal(names[names.length - 1], "Full range");
  assert.deepEqual(presetsFor("MR", [], [], grey([0, 100]), 1, 0).map((p) => [p.name, p.window]), [["Full range", { center: 50, width: 100 }]]);
});

test("orientation letters from Image Orientation (Patient), and from Patient Orientation", () => {
  const axial = orientationOf(dataset([[0x00200037, "DS", "1\\0\\0\\0\\1\\0"]]));
  assert.deepEqual(axial, { right: "L", left: "R", bottom: "P", top: "A" });
  const coronal = orientationOf(dataset([[0x00200037, "DS", "1\\0\\0\\0\\0\\-1"]]));
  assert.deepEqual(coronal, { right: "L", left: "R", bottom: "F", top: "H" });
  assert.equal(directionLabel([0.7, 0.7, 0]), "LP");
  assert.deepEqual(orientationOf(dataset([[0x00200020, "CS", "A\\F"]])), { right: "A", left: "P", bottom: "F", top: "H" });
});

test("overlay planes (60xx) are unpacked bit 0 first and placed at their 1-based origin", () => {
  // 4 x 4 overlay at row 2, column 3 (1-based 3, 4): bits 0 and 5 set.
  const ds = dataset([
    [0x60000010, "US", [4]], [0x60000011, "US", [4]], [0x60000040, "CS", "G"], [0x60000050, "SS", [3, 4]],
    [0x60000100, "US", [1]], [0x60000102, "US", [0]], [0x60003000, "OW", Uint8Array.from([0b00100001, 0])],
  ]);
  const [o] = overlaysOf(ds, 0);
  assert.deepEqual([o.rows, o.columns, o.top, o.left, o.type], [4, 4, 2, 3, "G"]);
  assert.deepEqual(Array.from(o.bits), [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
});

test("cine rate: Recommended Display Frame Rate, Cine Rate, Frame Time, else 10", () => {
  assert.deepEqual(cineRate(dataset([[0x00082144, "IS", "25"], [0x00181063, "DS", "33.3"]])), { fps: 25, source: "Recommended Display Frame Rate" });
  assert.deepEqual(cineRate(dataset([[0x00181063, "DS", "40"]])), { fps: 25, source: "Frame Time" });
  assert.deepEqual(cineRate(dataset([[0x00080060, "CS", "US"]])), { fps: 10, source: "default" });
});

test("scale bar: the longest round length that fits", () => {
  assert.deepEqual(scaleBar(0.5, 100), { mm: 50, pixels: 100 });
  assert.deepEqual(scaleBar(0.3, 100), { mm: 20, pixels: 20 / 0.3 });
  assert.equal(scaleBar(0, 100), null);
});
