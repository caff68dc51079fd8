// The decoders against pydicom's decoding of its own samples (test/vectors/codecs.json, made by make_vectors.py).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { frameBytes, imageInfo, parseFile } from "../src/dicom";
import { applyWindow, decodeFrame, toRgba } from "../src/render";

const vectors = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "vectors");
const refs = JSON.parse(readFileSync(join(vectors, "codecs.json"), "utf8")) as Record<
  string,
  { transfer_syntax: string; frames: number; grey_int32_sha256?: string; rgb_sha256?: string; error?: string }
>;
const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

for (const [name, ref] of Object.entries(refs)) {
  test(`${name} (${ref.transfer_syntax}) decodes as pydicom does`, async () => {
    const ds = parseFile(new Uint8Array(readFileSync(join(vectors, name))));
    const info = imageInfo(ds);
    assert.ok(info);
    assert.equal(info.transferSyntaxUid, ref.transfer_syntax);
    assert.equal(info.frames, ref.frames);
    if (ref.error) {
      // 12-bit lossy JPEG: pydicom's plugins cannot decode this sample; the reference is DCMTK's dcmdjpeg
      // (test/vectors/JPEG-lossy.dcmdjpeg.u16.gz). Two lossy decoders differ by IDCT rounding: a grey level or so.
      const frame = await decodeFrame(info, frameBytes(ds, info, 0));
      assert.equal(frame.kind, "grey");
      const raw = gunzipSync(readFileSync(join(vectors, name.replace(/\.dcm$/, ".dcmdjpeg.u16.gz"))));
      const expected = new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2);
      if (frame.kind !== "grey") return;
      assert.equal(frame.values.length, expected.length);
      let sum = 0;
      let worst = 0;
      for (let i = 0; i < expected.length; i++) {
        const d = Math.abs(frame.values[i] - expected[i]);
        sum += d;
        worst = Math.max(worst, d);
      }
      assert.ok(sum / expected.length < 0.5, `mean difference ${sum / expected.length}`);
      assert.ok(worst <= 4, `largest difference ${worst}`);
      return;
    }
    const frame = await decodeFrame(info, frameBytes(ds, info, 0));
    if (ref.grey_int32_sha256) {
      assert.equal(frame.kind, "grey");
      if (frame.kind === "grey") assert.equal(sha256(new Uint8Array(frame.values.buffer)), ref.grey_int32_sha256);
    } else {
      assert.equal(frame.kind, "rgb");
      if (frame.kind === "rgb") {
        const rgb = new Uint8Array((frame.rgba.length / 4) * 3);
        for (let p = 0, o = 0; p < frame.rgba.length; p += 4) {
          rgb[o++] = frame.rgba[p];
          rgb[o++] = frame.rgba[p + 1];
          rgb[o++] = frame.rgba[p + 2];
        }
        assert.equal(sha256(rgb), ref.rgb_sha256);
      }
    }
    if (ref.frames > 1) {
      // The last frame decodes too (RLE: one fragment per frame, no Basic Offset Table needed).
      await decodeFrame(info, frameBytes(ds, info, ref.frames - 1));
    }
  });
}

test("linear window (PS3.3 C.11.2.1.2.1): the edges and the middle", () => {
  const w = { center: 40, width: 400 };
  assert.equal(applyWindow(-1000, w), 0);
  assert.equal(applyWindow(40 - 0.5 - 199.5, w), 0);
  assert.equal(applyWindow(1000, w), 255);
  assert.ok(Math.abs(applyWindow(39.5, w) - 127.5) < 1e-9);
  assert.equal(applyWindow(0, { center: 0, width: 1 }), 255);
  assert.equal(applyWindow(-1, { center: 0, width: 1 }), 0);
});

test("MONOCHROME1 is inverted and rescale is applied before the window", () => {
  const base = {
    rows: 1, columns: 2, bitsAllocated: 16, bitsStored: 16, pixelRepresentation: 0, samplesPerPixel: 1,
    planarConfiguration: 0, frames: 1, slope: 2, intercept: -100, windows: [], voiLutFunction: "LINEAR", transferSyntaxUid: "",
  };
  const frame = { kind: "grey" as const, values: Int32Array.from([50, 150]), min: 50, max: 150 };
  const window = { center: 100, width: 200 }; // modality values 0 and 200
  const m2 = toRgba(frame, { ...base, photometric: "MONOCHROME2" }, window);
  const m1 = toRgba(frame, { ...base, photometric: "MONOCHROME1" }, window);
  assert.deepEqual([m2[0], m2[4]], [0, 255]);
  assert.deepEqual([m1[0], m1[4]], [255, 0]);
});

test("DICOMDIR records are followed by their offsets (PS3.3 F.3.2.2), instances in instance-number order", async () => {
  const { readDicomdirLinks } = await import("../src/dicom");
  const { patients, linked } = readDicomdirLinks(new Uint8Array(readFileSync(join(vectors, "dcmseal-plain-DICOMDIR"))));
  assert.equal(linked, true);
  const summary = patients.map((p) => [p.id, p.studies.map((s) => s.series.map((se) => [se.modality, se.instances.length]))]);
  assert.deepEqual(summary, [["1CT1", [[["CT", 3]]]], ["4MR1", [[["MR", 1]]]], ["204", [[["US", 1]]]]]);
  const ct = patients[0].studies[0].series[0].instances;
  assert.deepEqual(ct.map((i) => i.instanceNumber), [1, 2, 3]);
  assert.equal(patients[2].studies[0].series[0].instances[0].frames, 30);
});

test("PALETTE COLOR maps stored values through the three tables, clamped at their ends", async () => {
  const { paletteToRgba } = await import("../src/render");
  const palette = { first: 10, red: Uint8Array.from([0, 100, 200]), green: Uint8Array.from([1, 2, 3]), blue: Uint8Array.from([9, 8, 7]) };
  const rgba = paletteToRgba(Int32Array.from([5, 10, 11, 12, 99]), palette);
  assert.deepEqual(Array.from(rgba), [0, 1, 9, 255, 0, 1, 9, 255, 100, 2, 8, 255, 200, 3, 7, 255, 200, 3, 7, 255]);
});
