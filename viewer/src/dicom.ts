/**
 * DICOM reading for the viewer (dicom-parser underneath): the DICOMDIR tree (PS3.3 F.3), instance facts,
 * pixel-data frames and the attributes shown to the user.
 */
import * as dp from "dicom-parser";

export type DataSet = dp.DataSet;

export interface InstanceRef {
  readonly fileId: readonly string[];
  readonly recordType: string;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly transferSyntaxUid: string;
  readonly instanceNumber: number;
  readonly frames: number;
}

export interface Series {
  readonly uid: string;
  readonly modality: string;
  readonly number: string;
  readonly description: string;
  readonly instances: InstanceRef[];
}

export interface Study {
  readonly uid: string;
  readonly date: string;
  readonly time: string;
  readonly description: string;
  readonly accession: string;
  readonly id: string;
  readonly series: Series[];
}

export interface Patient {
  readonly name: string;
  readonly id: string;
  readonly birthDate: string;
  readonly sex: string;
  readonly studies: Study[];
}

export const TS = {
  IMPLICIT_LE: "1.2.840.10008.1.2",
  EXPLICIT_LE: "1.2.840.10008.1.2.1",
  DEFLATED: "1.2.840.10008.1.2.1.99",
  EXPLICIT_BE: "1.2.840.10008.1.2.2",
  JPEG_BASELINE: "1.2.840.10008.1.2.4.50",
  JPEG_EXTENDED: "1.2.840.10008.1.2.4.51",
  JPEG_LOSSLESS: "1.2.840.10008.1.2.4.57",
  JPEG_LOSSLESS_SV1: "1.2.840.10008.1.2.4.70",
  JPEG_LS_LOSSLESS: "1.2.840.10008.1.2.4.80",
  JPEG_LS: "1.2.840.10008.1.2.4.81",
  J2K_LOSSLESS: "1.2.840.10008.1.2.4.90",
  J2K: "1.2.840.10008.1.2.4.91",
  HTJ2K_LOSSLESS: "1.2.840.10008.1.2.4.201",
  HTJ2K_LOSSLESS_RPCL: "1.2.840.10008.1.2.4.202",
  HTJ2K: "1.2.840.10008.1.2.4.203",
  RLE: "1.2.840.10008.1.2.5",
} as const;

export const SOP_ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1";

export class DicomError extends Error {
  override name = "DicomError";
}

function str(ds: DataSet, tag: string, index?: number): string {
  try {
    return (ds.string(tag, index) ?? "").trim();
  } catch {
    return "";
  }
}

/** Tags of VR US that num() reads, for Implicit VR files where the element carries no VR. */
const US_TAGS = new Set(["x00280002", "x00280006", "x00280010", "x00280011", "x00280100", "x00280101", "x00280102", "x00280103", "x00041410"]);

function num(ds: DataSet, tag: string, fallback: number, index = 0): number {
  const el = ds.elements[tag];
  if (!el || el.length === 0) return fallback;
  if (el.vr === "US" || (!el.vr && US_TAGS.has(tag))) return ds.uint16(tag, index) ?? fallback;
  if (el.vr === "UL") return ds.uint32(tag, index) ?? fallback;
  const v = parseFloat(str(ds, tag, index));
  return Number.isFinite(v) ? v : fallback;
}

/** Parse a whole PS3.10 file (preamble + DICM + meta + data set). */
export function parseFile(bytes: Uint8Array): DataSet {
  try {
    return dp.parseDicom(bytes);
  } catch (err) {
    const msg = typeof err === "string" ? err : (err as Error)?.message ?? String(err);
    throw new DicomError(`not a readable DICOM file: ${msg}`);
  }
}

export function isPart10(bytes: Uint8Array): boolean {
  return bytes.length > 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

interface RecordNode {
  readonly ds: DataSet;
  readonly type: string;
  readonly next: number;
  readonly lower: number;
}

/**
 * Read the DICOMDIR's directory records into patients, studies, series and instances. Records are linked
 * by byte offsets (0004,1400) / (0004,1420) from the start of the file (PS3.3 F.3.2.2); when the offsets
 * do not resolve, the order of the records in the sequence is used instead.
 */
export function readDicomdir(bytes: Uint8Array): Patient[] {
  return readDicomdirLinks(bytes).patients;
}

/** readDicomdir, and whether the record offsets were followed (true) or the record order was used (false). */
export function readDicomdirLinks(bytes: Uint8Array): { patients: Patient[]; linked: boolean } {
  const ds = parseFile(bytes);
  const seq = ds.elements.x00041220;
  if (!seq?.items?.length) throw new DicomError("the DICOMDIR has no directory records");
  const byOffset = new Map<number, RecordNode>();
  const records: RecordNode[] = [];
  for (const item of seq.items) {
    if (!item.dataSet) continue;
    const r: RecordNode = {
      ds: item.dataSet,
      type: str(item.dataSet, "x00041430").toUpperCase(),
      next: item.dataSet.uint32("x00041400") ?? 0,
      lower: item.dataSet.uint32("x00041420") ?? 0,
    };
    records.push(r);
    byOffset.set(item.dataOffset - 8, r);
  }
  const first = ds.uint32("x00041200") ?? 0;
  const linked = byOffset.has(first);
  const patients: Patient[] = [];
  if (linked) {
    const siblings = (offset: number): RecordNode[] => {
      const out: RecordNode[] = [];
      const seen = new Set<number>();
      while (offset && byOffset.has(offset) && !seen.has(offset)) {
        seen.add(offset);
        const r = byOffset.get(offset) as RecordNode;
        if ((r.ds.uint16("x00041410") ?? 0xffff) !== 0) out.push(r); // in-use flag 0 = inactive record
        offset = r.next;
      }
      return out;
    };
    for (const p of siblings(first)) {
      if (p.type !== "PATIENT") continue;
      const patient = makePatient(p.ds);
      for (const s of siblings(p.lower)) {
        if (s.type !== "STUDY") continue;
        const study = makeStudy(s.ds);
        for (const se of siblings(s.lower)) {
          if (se.type !== "SERIES") continue;
          const series = makeSeries(se.ds);
          for (const i of siblings(se.lower)) {
            const ref = makeInstance(i.ds, i.type);
            if (ref) series.instances.push(ref);
          }
          study.series.push(series);
        }
        patient.studies.push(study);
      }
      patients.push(patient);
    }
  } else {
    let patient: Patient | undefined;
    let study: Study | undefined;
    let series: Series | undefined;
    for (const r of records) {
      if (r.type === "PATIENT") patients.push((patient = makePatient(r.ds)));
      else if (r.type === "STUDY" && patient) patient.studies.push((study = makeStudy(r.ds)));
      else if (r.type === "SERIES" && study) study.series.push((series = makeSeries(r.ds)));
      else if (series) {
        const ref = makeInstance(r.ds, r.type);
        if (ref) series.instances.push(ref);
      }
    }
  }
  for (const p of patients) for (const st of p.studies) for (const se of st.series) se.instances.sort((a, b) => a.instanceNumber - b.instanceNumber);
  return { patients, linked };
}

/**
 * The patients, studies and series of files read one by one (the medium's folder listing), for when the
 * DICOMDIR is damaged or missing. Grouped by Patient ID, Study and Series Instance UID, in File ID order.
 */
export function indexFiles(files: readonly { fileId: readonly string[]; ds: DataSet }[]): Patient[] {
  const patients = new Map<string, Patient>();
  const studies = new Map<string, Study>();
  const series = new Map<string, Series>();
  for (const { fileId, ds } of files) {
    const pid = `${str(ds, "x00100020")}|${str(ds, "x00100010")}`;
    let patient = patients.get(pid);
    if (!patient) patients.set(pid, (patient = makePatient(ds)));
    const studyUid = str(ds, "x0020000d");
    let study = studies.get(`${pid}|${studyUid}`);
    if (!study) {
      study = makeStudy(ds);
      studies.set(`${pid}|${studyUid}`, study);
      patient.studies.push(study);
    }
    const seriesUid = str(ds, "x0020000e");
    let se = series.get(`${pid}|${studyUid}|${seriesUid}`);
    if (!se) {
      se = makeSeries(ds);
      series.set(`${pid}|${studyUid}|${seriesUid}`, se);
      study.series.push(se);
    }
    se.instances.push({
      fileId, recordType: "IMAGE", sopClassUid: str(ds, "x00080016"), sopInstanceUid: str(ds, "x00080018"),
      transferSyntaxUid: str(ds, "x00020010"), instanceNumber: num(ds, "x00200013", 0), frames: num(ds, "x00280008", 1),
    });
  }
  const out = [...patients.values()];
  for (const p of out) for (const st of p.studies) for (const se of st.series) se.instances.sort((a, b) => a.instanceNumber - b.instanceNumber);
  return out;
}

function makePatient(ds: DataSet): Patient {
  return { name: str(ds, "x00100010"), id: str(ds, "x00100020"), birthDate: str(ds, "x00100030"), sex: str(ds, "x00100040"), studies: [] };
}

function makeStudy(ds: DataSet): Study {
  return {
    uid: str(ds, "x0020000d"), date: str(ds, "x00080020"), time: str(ds, "x00080030"), description: str(ds, "x00081030"),
    accession: str(ds, "x00080050"), id: str(ds, "x00200010"), series: [],
  };
}

function makeSeries(ds: DataSet): Series {
  return { uid: str(ds, "x0020000e"), modality: str(ds, "x00080060"), number: str(ds, "x00200011"), description: str(ds, "x0008103e"), instances: [] };
}

function makeInstance(ds: DataSet, type: string): InstanceRef | null {
  const fileId = str(ds, "x00041500");
  if (!fileId) return null;
  return {
    fileId: fileId.split("\\").map((c) => c.trim()).filter(Boolean),
    recordType: type,
    sopClassUid: str(ds, "x00041510"),
    sopInstanceUid: str(ds, "x00041511"),
    transferSyntaxUid: str(ds, "x00041512"),
    instanceNumber: num(ds, "x00200013", 0),
    frames: num(ds, "x00280008", 1),
  };
}

/** What the renderer needs to know about an image. */
export interface ImageInfo {
  readonly rows: number;
  readonly columns: number;
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly pixelRepresentation: number;
  readonly samplesPerPixel: number;
  readonly photometric: string;
  readonly planarConfiguration: number;
  readonly frames: number;
  readonly slope: number;
  readonly intercept: number;
  readonly windows: readonly { center: number; width: number }[];
  readonly voiLutFunction: string;
  readonly transferSyntaxUid: string;
  /** PALETTE COLOR lookup tables (PS3.3 C.7.6.3.1.5), 8-bit per channel, indexed by stored value - first. */
  readonly palette?: Palette;
}

export interface Palette {
  readonly first: number;
  readonly red: Uint8Array;
  readonly green: Uint8Array;
  readonly blue: Uint8Array;
}

/** Read the three LUTs (descriptor: entries (0 = 65536), first value mapped, bits per entry); null if absent. */
function readPalette(ds: DataSet): Palette | undefined {
  const bytes = ds.byteArray as Uint8Array;
  const channel = (descriptor: string, data: string): { first: number; lut: Uint8Array } | undefined => {
    const d = ds.elements[descriptor];
    const el = ds.elements[data];
    if (!d || !el || !el.length) return undefined;
    const entries = ds.uint16(descriptor, 0) || 65536;
    const first = ds.elements[descriptor].vr === "SS" ? (ds.int16(descriptor, 1) ?? 0) : (ds.uint16(descriptor, 1) ?? 0);
    const bits = ds.uint16(descriptor, 2) ?? 16;
    const lut = new Uint8Array(entries);
    const view = new DataView(bytes.buffer, bytes.byteOffset + el.dataOffset, el.length);
    // 16-bit entries are scaled to 8 bits; 8-bit entries may still be stored in 16-bit words (low byte).
    const wide = el.length >= entries * 2;
    for (let i = 0; i < entries; i++) {
      if (wide) {
        const v = view.getUint16(i * 2, true);
        lut[i] = bits > 8 ? v >> 8 : v & 0xff;
      } else lut[i] = view.getUint8(i);
    }
    return { first, lut };
  };
  const r = channel("x00281101", "x00281201");
  const g = channel("x00281102", "x00281202");
  const b = channel("x00281103", "x00281203");
  if (!r || !g || !b) return undefined;
  return { first: r.first, red: r.lut, green: g.lut, blue: b.lut };
}

export function imageInfo(ds: DataSet): ImageInfo | null {
  if (!ds.elements.x7fe00010) return null;
  const windows: { center: number; width: number }[] = [];
  const centers = str(ds, "x00281050").split("\\");
  const widths = str(ds, "x00281051").split("\\");
  for (let i = 0; i < Math.min(centers.length, widths.length); i++) {
    const c = parseFloat(centers[i]);
    const w = parseFloat(widths[i]);
    if (Number.isFinite(c) && Number.isFinite(w) && w > 0) windows.push({ center: c, width: w });
  }
  const bitsAllocated = num(ds, "x00280100", 16);
  return {
    rows: num(ds, "x00280010", 0),
    columns: num(ds, "x00280011", 0),
    bitsAllocated,
    bitsStored: num(ds, "x00280101", bitsAllocated),
    pixelRepresentation: num(ds, "x00280103", 0),
    samplesPerPixel: num(ds, "x00280002", 1),
    photometric: str(ds, "x00280004").toUpperCase() || "MONOCHROME2",
    planarConfiguration: num(ds, "x00280006", 0),
    frames: Math.max(1, Math.floor(num(ds, "x00280008", 1))),
    slope: num(ds, "x00281053", 1) || 1,
    intercept: num(ds, "x00281052", 0),
    windows,
    voiLutFunction: str(ds, "x00281056").toUpperCase() || "LINEAR",
    transferSyntaxUid: str(ds, "x00020010"),
    palette: str(ds, "x00280004").toUpperCase() === "PALETTE COLOR" ? readPalette(ds) : undefined,
  };
}

/** The bytes of frame `index`: a slice of native Pixel Data, or the frame's compressed bitstream. */
export function frameBytes(ds: DataSet, info: ImageInfo, index: number): Uint8Array {
  const el = ds.elements.x7fe00010;
  const bytes = ds.byteArray as Uint8Array;
  if (el.encapsulatedPixelData) {
    const fragments = el.fragments ?? [];
    if (el.basicOffsetTable && el.basicOffsetTable.length) return dp.readEncapsulatedImageFrame(ds, el, index) as Uint8Array;
    if (info.frames === 1) return dp.readEncapsulatedPixelDataFromFragments(ds, el, 0, fragments.length) as Uint8Array;
    if (fragments.length === info.frames) return dp.readEncapsulatedPixelDataFromFragments(ds, el, index, 1) as Uint8Array;
    const table = dp.createJPEGBasicOffsetTable(ds, el);
    return dp.readEncapsulatedImageFrame(ds, el, index, table) as Uint8Array;
  }
  const frameSize = (info.rows * info.columns * info.samplesPerPixel * info.bitsAllocated) / 8;
  const start = el.dataOffset + Math.floor(frameSize * index);
  if (info.bitsAllocated === 1) {
    return bytes.subarray(el.dataOffset, el.dataOffset + el.length);
  }
  if (start + frameSize > el.dataOffset + el.length || start + frameSize > bytes.length) {
    throw new DicomError(`Pixel Data is shorter than frame ${index + 1} needs`);
  }
  return bytes.subarray(start, start + frameSize);
}

/** The encapsulated document (Encapsulated PDF, CDA) and its MIME type, if the instance is one. */
export function encapsulatedDocument(ds: DataSet): { mime: string; title: string; bytes: Uint8Array } | null {
  const el = ds.elements.x00420011;
  if (!el) return null;
  let length = el.length;
  const bytes = ds.byteArray as Uint8Array;
  // PS3.3 A.45.1: the document may be padded with one trailing NUL to an even length.
  if (length > 0 && bytes[el.dataOffset + length - 1] === 0) length -= 1;
  return {
    mime: str(ds, "x00420012") || "application/pdf",
    title: str(ds, "x00420010"),
    bytes: bytes.slice(el.dataOffset, el.dataOffset + length),
  };
}

export function formatName(pn: string): string {
  const [family = "", given = "", middle = "", prefix = "", suffix = ""] = pn.split("=")[0].split("^");
  return [prefix, [family, [given, middle].filter(Boolean).join(" ")].filter(Boolean).join(", "), suffix].filter(Boolean).join(" ").trim();
}

export function formatDate(da: string): string {
  return /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}` : da;
}

export function formatTime(tm: string): string {
  return /^\d{4}/.test(tm) ? `${tm.slice(0, 2)}:${tm.slice(2, 4)}${tm.length >= 6 ? `:${tm.slice(4, 6)}` : ""}` : tm;
}

const SHOWN: readonly [string, string, string][] = [
  ["Patient", "Patient's name", "x00100010"],
  ["Patient", "Patient ID", "x00100020"],
  ["Patient", "Birth date", "x00100030"],
  ["Patient", "Sex", "x00100040"],
  ["Study", "Study date", "x00080020"],
  ["Study", "Study time", "x00080030"],
  ["Study", "Study description", "x00081030"],
  ["Study", "Accession number", "x00080050"],
  ["Study", "Referring physician", "x00080090"],
  ["Study", "Study ID", "x00200010"],
  ["Study", "Institution", "x00080080"],
  ["Study", "Study Instance UID", "x0020000d"],
  ["Series", "Modality", "x00080060"],
  ["Series", "Series number", "x00200011"],
  ["Series", "Series description", "x0008103e"],
  ["Series", "Body part", "x00180015"],
  ["Series", "Series Instance UID", "x0020000e"],
  ["Instance", "Instance number", "x00200013"],
  ["Instance", "Content date", "x00080023"],
  ["Instance", "Image type", "x00080008"],
  ["Instance", "Rows x columns", "rowscols"],
  ["Instance", "Frames", "x00280008"],
  ["Instance", "Photometric interpretation", "x00280004"],
  ["Instance", "Bits stored", "x00280101"],
  ["Instance", "Pixel spacing (mm)", "x00280030"],
  ["Instance", "Slice thickness (mm)", "x00180050"],
  ["Instance", "Window centre / width", "window"],
  ["Instance", "Rescale slope / intercept", "rescale"],
  ["Instance", "Manufacturer / model", "maker"],
  ["Instance", "SOP Class UID", "x00080016"],
  ["Instance", "SOP Instance UID", "x00080018"],
  ["Instance", "Transfer syntax", "x00020010"],
];

/** The key attributes, grouped (Patient, Study, Series, Instance), as plain text (the page never renders markup). */
export function keyAttributes(ds: DataSet): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (const [group, label, tag] of SHOWN) {
    let value: string;
    if (tag === "rowscols") value = ds.elements.x00280010 ? `${num(ds, "x00280010", 0)} x ${num(ds, "x00280011", 0)}` : "";
    else if (tag === "window") value = str(ds, "x00281050") ? `${str(ds, "x00281050")} / ${str(ds, "x00281051")}` : "";
    else if (tag === "rescale") value = str(ds, "x00281053") ? `${str(ds, "x00281053")} / ${str(ds, "x00281052")}` : "";
    else if (tag === "maker") value = [str(ds, "x00080070"), str(ds, "x00081090")].filter(Boolean).join(" / ");
    else if (ds.elements[tag]?.vr === "US") value = String(num(ds, tag, 0));
    else value = str(ds, tag);
    if (!value) continue;
    if (tag === "x00100010" || tag === "x00080090") value = formatName(value);
    if (/date/i.test(label)) value = formatDate(value);
    if (/time/i.test(label)) value = formatTime(value);
    out.push([group, label, value.replace(/\\/g, " \\ ")]);
  }
  return out;
}
