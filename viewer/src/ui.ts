/**
 * The page: choose the medium, give the password or key, list patients/studies/series, show images,
 * documents and key attributes. Everything stays in this page: no request leaves it (CSP connect-src 'none').
 * Text from the medium is only ever set with textContent, never parsed as markup.
 */
import {
  DAMAGED_PREFIX, DecryptionError, IntegrityError, KeyKindError, KeyRing, LimitError, MalformedError, NOT_VERIFIED, UnprotectedError,
  UnsupportedError, stats,
} from "./cms";
import {
  DataSet, DicomError, ImageInfo, InstanceRef, Patient, SOP_ENCAPSULATED_PDF, Series, encapsulatedDocument, formatDate,
  formatName, frameBytes, imageInfo, indexFiles, keyAttributes, parseFile, readDicomdir,
} from "./dicom";
import { Medium, MediumError, Source, fromDrop, fromInput } from "./medium";
import { Frame, Window, decodeFrame, defaultWindow, toRgba } from "./render";
import {
  Overlay, Point, Preset, Spacing, angle, cineRate, length, modalityUnit, orientationOf, overlaysOf, presetsFor,
  roiStats, scaleBar, spacingOf,
} from "./tools";
import { loadPrivateKey } from "./rsa";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** What tests and the curious can read: counters and timings, never a key or a patient detail. */
export const exposed = {
  stats,
  timings: { submitToListMs: -1, submitToFirstImageMs: -1 },
  state: "start",
  files: 0,
  /** File IDs ("/"-joined) found damaged or refused so far, and why (no patient data: names of files only). */
  damaged: {} as Record<string, string>,
  /** How the study list was made: from the DICOMDIR, or from the files themselves (DICOMDIR damaged or absent). */
  listSource: "",
  /** The image's place on the stage (CSS pixels): screen = (t + image * scale), y scaled by the pixel aspect too. */
  display: {
    scale: 1, aspect: 1, tx: 0, ty: 0, columns: 0, rows: 0, inverted: false, preset: "",
    orientation: null as null | { left: string; right: string; top: string; bottom: string },
  },
  /** The measurements on the image shown: values only (what the page lists under the image). */
  measurements: [] as { kind: string; text: string; value: number; unit: string; stats?: Record<string, number> }[],
  cine: { playing: false, fps: 0, source: "", shown: 0 },
  /** "done" once every series of the list has its thumbnail (or was found unreadable). */
  thumbnails: "",
  /** The compared series' pane: which instance it shows (linked to the main pane's position). */
  compare: { active: false, index: -1, instances: 0, rendered: 0, damaged: false },
};

type Tool = "window" | "pan" | "zoom" | "length" | "angle" | "rectangle" | "ellipse";

interface Measurement {
  readonly kind: "length" | "angle" | "rectangle" | "ellipse";
  points: Point[];
}

const fileKey = (fileId: readonly string[]): string => fileId.map((c) => c.toUpperCase()).join("/");

/** What a per-file failure is called on screen: damage and refusals are the file's, never the session's. */
function describe(err: unknown): { damaged: boolean; text: string } {
  if (err instanceof IntegrityError || err instanceof MalformedError) {
    const why = err.message.startsWith(DAMAGED_PREFIX) ? err.message.slice(DAMAGED_PREFIX.length) : err.message;
    return { damaged: true, text: `damaged or altered: integrity check failed (${why})` };
  }
  if (err instanceof DecryptionError) {
    return { damaged: true, text: "does not open with the medium's key (its key block is damaged, or it is addressed to another key)" };
  }
  if (err instanceof DicomError) return { damaged: true, text: `damaged (${err.message})` };
  if (err instanceof UnprotectedError) return { damaged: false, text: "not shown: no integrity protection (no digest or signature)" };
  if (err instanceof LimitError || err instanceof UnsupportedError || err instanceof KeyKindError) return { damaged: false, text: `not shown: ${err.message}` };
  return { damaged: false, text: `cannot be shown: ${(err as Error)?.message ?? String(err)}` };
}

interface View {
  series: Series;
  index: number; // instance
  frame: number;
  frames: number;
  info?: ImageInfo;
  decoded?: Frame;
  window?: Window;
  userWindow?: Window; // kept while scrolling the series
  rendered: number;
  /** Damaged instances stepped over on the way to this one (shown beside the image). */
  skipped: number[];
  ds?: DataSet;
  spacing?: Spacing;
  presets?: Preset[];
  unit?: string;
  overlays?: Overlay[];
  unverified?: boolean;
}

class App {
  medium?: Medium;
  patients: Patient[] = [];
  view?: View;
  submittedAt = 0;
  pdfUrl?: string;
  loadToken = 0;
  /** How the image sits on the stage: fitted (follows the stage's size) or where the user zoomed and moved it. */
  fitted = true;
  scale = 1;
  tx = 0;
  ty = 0;
  inverted = false;
  showOverlays = true;
  tool: Tool = "window";
  /** Measurements by SOP Instance UID and frame: they stay with their image while the series scrolls. */
  marks = new Map<string, Measurement[]>();
  drawing?: Measurement;
  cineTimer?: number;
  rgbaBuffer?: Uint8ClampedArray;

  start(): void {
    const folder = $<HTMLInputElement>("folder");
    folder.addEventListener("change", () => {
      if (folder.files?.length) void this.choose(fromInput(folder.files));
    });
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    // The whole page takes the drop, so a folder dropped beside the box is not opened by the browser instead.
    for (const target of [document.documentElement]) {
      target.addEventListener("dragover", (e) => e.preventDefault());
      target.addEventListener("drop", (e) => {
        e.preventDefault();
        drop.classList.remove("over");
        if (e.dataTransfer) void this.dropped(e.dataTransfer);
      });
    }
    $("open").addEventListener("click", () => void this.unlock());
    $<HTMLInputElement>("password").addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        void this.unlock();
      }
    });
    $("accept-unprotected").addEventListener("click", () => void this.acceptUnprotected());
    // On the stage, not the canvas: a damaged instance leaves no image under the pointer, and scrolling goes on.
    $("stage").addEventListener("wheel", (e) => {
      if (!this.view) return;
      e.preventDefault();
      if (e.ctrlKey || e.metaKey) {
        const r = $("stage").getBoundingClientRect();
        this.zoomBy(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
      } else this.step(e.deltaY > 0 ? 1 : -1);
    }, { passive: false });
    document.addEventListener("keydown", (e) => {
      const target = e.target as HTMLElement;
      // Text fields and lists keep their keys; radio buttons and sliders only their arrows.
      const input = target.tagName === "INPUT" ? (target as HTMLInputElement).type : "";
      const typing = (input && !["radio", "checkbox", "range", "button"].includes(input)) || target.tagName === "SELECT" || target.tagName === "TEXTAREA";
      if (!this.view || typing || (input && e.key.startsWith("Arrow")) || e.altKey || e.ctrlKey || e.metaKey) return;
      if (!this.key(e)) return;
      e.preventDefault();
    });
    this.pointer($("stage"));
    for (const radio of document.querySelectorAll<HTMLInputElement>("input[name=tool]")) {
      radio.addEventListener("change", () => {
        this.tool = radio.value as Tool;
        this.drawing = undefined;
      });
    }
    $("fit").addEventListener("click", () => this.fit());
    $("one-to-one").addEventListener("click", () => this.oneToOne());
    $("zoom-in").addEventListener("click", () => this.zoomBy(1.25));
    $("zoom-out").addEventListener("click", () => this.zoomBy(0.8));
    $("invert").addEventListener("click", () => this.invert());
    $("overlays-toggle").addEventListener("click", () => this.toggleOverlays());
    $("cine").addEventListener("click", () => this.toggleCine());
    $("clear-marks").addEventListener("click", () => {
      const key = this.markKey();
      if (key) this.marks.delete(key);
      this.annotate();
    });
    $<HTMLSelectElement>("preset").addEventListener("change", (e) => this.applyPreset(Number((e.target as HTMLSelectElement).value)));
    new ResizeObserver(() => {
      if (this.view?.info) {
        this.layout();
        this.annotate();
      }
    }).observe($("stage"));
    new ResizeObserver(() => {
      const canvas = $<HTMLCanvasElement>("image2");
      if (this.compared && canvas.width) this.fitInto($("stage2"), canvas, Number(canvas.dataset.aspect || 1));
    }).observe($("stage2"));
    $<HTMLInputElement>("slider").addEventListener("input", (e) => {
      if (this.view) void this.show(Number((e.target as HTMLInputElement).value), 0);
    });
    $<HTMLInputElement>("frame-slider").addEventListener("input", (e) => {
      if (this.view) void this.show(this.view.index, Number((e.target as HTMLInputElement).value));
    });
    $("reset").addEventListener("click", () => this.resetView());
    $("compare-close").addEventListener("click", () => this.closeCompare());
    $("back").addEventListener("click", () => this.showList());
    $("change").addEventListener("click", () => {
      $("step-folder").hidden = false;
      $("step-folder").scrollIntoView();
    });
    this.setState("start");
  }

  setState(state: string): void {
    exposed.state = state;
    document.body.dataset.state = state;
  }

  status(text: string): void {
    $("status").textContent = text;
  }

  error(text: string | null): void {
    const box = $("error");
    box.textContent = text ?? "";
    box.hidden = !text;
  }

  /**
   * A folder dropped on the page. Chromium refuses to read the files of a drop into a file:// page
   * (EncodingError from the File and Directory Entries API; the same drop works over http://): the page then
   * says that the folder button is the way, instead of failing silently.
   */
  async dropped(transfer: DataTransfer): Promise<void> {
    let sources: Source[];
    try {
      sources = await fromDrop(transfer.items);
    } catch {
      sources = [];
    }
    if (!sources.length) {
      this.error("This browser does not let a page opened from a disc read a dropped folder. Use the \u201cChoose folder\u201d button instead.");
      this.setState("drop-refused");
      $<HTMLInputElement>("folder").focus();
      return;
    }
    await this.choose(sources);
  }

  async choose(sources: Source[]): Promise<void> {
    this.reset();
    try {
      this.medium = new Medium(sources);
      exposed.files = this.medium.fileCount;
      const kind = await this.medium.kind();
      if (kind === "plain") {
        this.status(`${this.medium.fileCount} files. This medium is not encrypted.`);
        await this.list();
      } else {
        this.status(`${this.medium.fileCount} files. The medium is encrypted: give its password, or the private key of a recipient.`);
        $("step-key").hidden = false;
        this.setState("need-key");
        $<HTMLInputElement>("password").focus();
      }
    } catch (err) {
      this.fail(err);
    }
  }

  reset(): void {
    this.error(null);
    this.medium = undefined;
    this.view = undefined;
    this.patients = [];
    this.damaged.clear();
    exposed.damaged = {};
    exposed.listSource = "";
    $("unprotected-box").hidden = true;
    if (this.compared) this.closeCompare();
    $("studies").replaceChildren();
    $("studies").hidden = true;
    $("viewer").hidden = true;
    $("step-key").hidden = true;
    this.clearImage();
  }

  async unlock(): Promise<void> {
    if (!this.medium) return;
    this.error(null);
    this.submittedAt = performance.now();
    const field = $<HTMLInputElement>("password");
    const password = field.value;
    const keyFile = $<HTMLInputElement>("keyfile").files?.[0];
    try {
      const rsa = keyFile ? loadPrivateKey(await keyFile.text()) : undefined;
      if (!password && !rsa) {
        this.error("Type the password, or choose a private key file.");
        return;
      }
      // Emptied at once: the page keeps only the derived key, and a browser finds no password to offer to save.
      field.value = "";
      this.medium.keys = new KeyRing(password ? new TextEncoder().encode(password) : undefined, rsa);
      this.setState("opening");
      this.status("Deriving the key...");
      // "Wrong password" is decided here, by the recipients alone, never by one file's content.
      if ((await this.medium.checkKey()) === "wrong-key") throw new DecryptionError();
      this.status("Opening the DICOMDIR...");
      await this.list();
    } catch (err) {
      if (this.medium) this.medium.keys = undefined;
      this.fail(err);
      field.focus();
    }
  }

  /** Session-level failures only (wrong key, nothing readable); one file's damage never comes here. */
  fail(err: unknown): void {
    this.clearImage();
    let text: string;
    if (err instanceof DecryptionError) {
      text = "Wrong password (or this key cannot open this medium). Nothing has been shown.";
      $("studies").replaceChildren();
      $("studies").hidden = true;
      $("viewer").hidden = true;
      this.setState("wrong-key");
    } else if (err instanceof KeyKindError) {
      text = `${err.message[0].toUpperCase()}${err.message.slice(1)}.`;
      this.setState("key-kind");
    } else if (err instanceof UnsupportedError || err instanceof MediumError || err instanceof MalformedError || err instanceof LimitError) {
      text = err.message;
      this.setState("error");
    } else {
      text = `Cannot show this: ${(err as Error)?.message ?? String(err)}`;
      this.setState("error");
    }
    this.error(text);
    this.status("");
  }

  damaged = new Map<string, string>();

  markDamaged(fileId: readonly string[], err: unknown): string {
    const { text } = describe(err);
    this.damaged.set(fileKey(fileId), text);
    exposed.damaged[fileKey(fileId)] = text;
    if (err instanceof UnprotectedError && !this.medium?.acceptUnprotected) $("unprotected-box").hidden = false;
    return text;
  }

  async list(): Promise<void> {
    const medium = this.medium as Medium;
    let integrity: string;
    let warning: string | null = null;
    try {
      const dicomdir = await medium.open("DICOMDIR");
      this.patients = readDicomdir(dicomdir.bytes);
      integrity = dicomdir.verified ? dicomdir.integrity : dicomdir.encrypted ? NOT_VERIFIED : "not encrypted";
      exposed.listSource = "DICOMDIR";
    } catch (err) {
      if (err instanceof MediumError && medium.dicomdir) throw err;
      // A damaged (or absent) DICOMDIR: the files themselves say what they are.
      const why = medium.dicomdir ? `The DICOMDIR is ${describe(err).text}` : "The medium has no DICOMDIR";
      if (medium.dicomdir) this.markDamaged(["DICOMDIR"], err);
      this.patients = await this.rebuild();
      integrity = "each file checked on its own";
      exposed.listSource = "files";
      warning = `${why}. The list below was made by reading the medium's files themselves.`;
    }
    exposed.timings.submitToListMs = this.submittedAt ? performance.now() - this.submittedAt : 0;
    $("step-key").hidden = true;
    const encrypted = medium.keys !== undefined;
    this.status(`${medium.fileCount} files${encrypted ? ", opened on this computer" : ", not encrypted"}.`);
    this.renderList(integrity);
    this.error(warning);
    $("step-folder").hidden = true;
    this.setState("listed");
    const first = this.patients.flatMap((p) => p.studies.flatMap((s) => s.series)).find((s) => s.instances.length);
    if (first) await this.open(first);
    void this.thumbnails();
  }

  /** Read every file of the File-set (the folder listing) into patients, studies and series; damaged files are named. */
  async rebuild(): Promise<Patient[]> {
    const medium = this.medium as Medium;
    const paths = medium.fileSet().filter((k) => k !== "DICOMDIR").sort();
    const found: { fileId: string[]; ds: DataSet }[] = [];
    let done = 0;
    for (const path of paths) {
      const fileId = path.split("/");
      try {
        const opened = await medium.open(fileId);
        found.push({ fileId, ds: parseFile(opened.bytes) });
      } catch (err) {
        this.markDamaged(fileId, err);
      }
      if (++done % 10 === 0) this.status(`Reading the files themselves: ${done} of ${paths.length}...`);
    }
    return indexFiles(found);
  }

  async acceptUnprotected(): Promise<void> {
    const medium = this.medium;
    if (!medium) return;
    medium.acceptUnprotected = true;
    medium.forget();
    $("unprotected-box").hidden = true;
    this.damaged.clear();
    exposed.damaged = {};
    await this.list().catch((err) => this.fail(err));
  }

  /** Each series' thumbnail canvas and description cell in the list. */
  thumbs = new Map<Series, { canvas: HTMLCanvasElement; description: HTMLElement }>();

  /**
   * Thumbnails, after the first image is up: the middle instance of each series, in the background, one at a
   * time; a series the DICOMDIR gives no description gets its first opened instance's Series Description.
   */
  async thumbnails(): Promise<void> {
    const medium = this.medium;
    exposed.thumbnails = "running";
    for (const [series, cells] of this.thumbs) {
      if (this.medium !== medium || !medium) return;
      const ref = series.instances[Math.floor(series.instances.length / 2)];
      if (!ref || this.damaged.has(fileKey(ref.fileId))) continue;
      try {
        const opened = await medium.open(ref.fileId);
        const ds = parseFile(opened.bytes);
        if (!cells.description.textContent) {
          const description = (ds.string("x0008103e") ?? "").trim();
          cells.description.textContent = description;
          (series as { description: string }).description = description;
        }
        const info = imageInfo(ds);
        const ctx = cells.canvas.getContext("2d") as CanvasRenderingContext2D;
        if (!info) {
          ctx.fillStyle = "#555";
          ctx.fillRect(0, 0, 64, 64);
          ctx.fillStyle = "#fff";
          ctx.font = "bold 14px system-ui, sans-serif";
          ctx.textAlign = "center";
          ctx.fillText(ds.elements.x00420011 ? "DOC" : "—", 32, 37);
          continue;
        }
        const frame = await decodeFrame(info, frameBytes(ds, info, Math.floor((info.frames - 1) / 2)));
        const full = document.createElement("canvas");
        full.width = info.columns;
        full.height = info.rows;
        const rgba = toRgba(frame, info, defaultWindow(info, frame));
        (full.getContext("2d") as CanvasRenderingContext2D).putImageData(new ImageData(rgba as unknown as Uint8ClampedArray<ArrayBuffer>, info.columns, info.rows), 0, 0);
        const k = Math.min(64 / info.columns, 64 / info.rows);
        ctx.fillStyle = "#000";
        ctx.fillRect(0, 0, 64, 64);
        ctx.drawImage(full, (64 - info.columns * k) / 2, (64 - info.rows * k) / 2, info.columns * k, info.rows * k);
        cells.canvas.dataset.drawn = "true";
      } catch {
        // A damaged file has its own marker when shown; the list keeps an empty thumbnail.
      }
    }
    if (this.medium === medium) exposed.thumbnails = "done";
  }

  renderList(integrity: string): void {
    const root = $("studies");
    this.thumbs.clear();
    root.replaceChildren();
    root.hidden = false;
    const series = this.patients.reduce((n, p) => n + p.studies.reduce((m, s) => m + s.series.length, 0), 0);
    root.append(el("h2", {}, `${this.patients.length} patient(s), ${series} series`));
    root.append(el("p", { class: "note" }, `DICOMDIR integrity: ${integrity}.`));
    if (this.damaged.size) {
      const box = el("div", { class: "damaged-files", "data-testid": "damaged-files", role: "note" });
      box.append(el("strong", {}, `${this.damaged.size} damaged or refused file(s), not shown:`));
      const ul = el("ul");
      for (const [name, why] of this.damaged) ul.append(el("li", {}, `${name.replace(/\//g, "\\")}: ${why}`));
      box.append(ul);
      root.append(box);
    }
    for (const p of this.patients) {
      const box = el("section", { class: "patient", "data-testid": "patient", "data-patient-id": p.id, "data-studies": String(p.studies.length) });
      const head = el("h3");
      head.append(el("span", { class: "name" }, formatName(p.name) || "(no name)"));
      head.append(el("span", { class: "meta" }, ` ID ${p.id || "-"}${p.birthDate ? `, born ${formatDate(p.birthDate)}` : ""}${p.sex ? `, ${p.sex}` : ""}`));
      box.append(head);
      for (const st of p.studies) {
        const count = st.series.reduce((n, s) => n + s.instances.length, 0);
        const sbox = el("div", { class: "study", "data-testid": "study", "data-series": String(st.series.length), "data-instances": String(count) });
        sbox.append(el("div", { class: "study-head" }, `${formatDate(st.date) || "(no date)"}  ${st.description || "(no description)"}${st.accession ? `  Acc. ${st.accession}` : ""}  ${st.series.length} series, ${count} instance(s)`));
        const table = el("table", { class: "series" });
        for (const se of st.series) {
          const label = `${se.modality} series${se.number ? ` ${se.number}` : ""}${se.description ? `, ${se.description}` : ""}, ${se.instances.length} instance(s)`;
          const row = el("tr", { "data-testid": "series", "data-modality": se.modality, "data-instances": String(se.instances.length), tabindex: "0", role: "button", "aria-label": `Show ${label}` });
          const thumb = el("canvas", { class: "thumb", width: "64", height: "64", "aria-hidden": "true" });
          this.thumbs.set(se, { canvas: thumb, description: el("td", { class: "description" }, se.description || "") });
          const thumbCell = el("td");
          thumbCell.append(thumb);
          row.append(thumbCell, el("td", {}, se.modality), el("td", {}, se.number ? `#${se.number}` : ""), (this.thumbs.get(se) as { description: HTMLElement }).description, el("td", {}, `${se.instances.length} instance(s)`));
          const compare = el("button", { type: "button", class: "compare", "aria-label": `Compare ${label} beside the image on screen`, title: "Show beside the image on screen, scrolled together" }, "Compare");
          compare.addEventListener("click", (e) => {
            e.stopPropagation();
            // Back to the image: the arrow keys scroll both panes from there.
            void this.compareWith(se).then(() => $("image").focus({ preventScroll: true }));
          });
          compare.addEventListener("keydown", (e) => {
            if (e.key === "Enter" || e.key === " ") e.stopPropagation(); // the button's own, not the row's
          });
          const compareCell = el("td");
          compareCell.append(compare);
          row.append(compareCell);
          row.addEventListener("click", () => void this.open(se));
          row.addEventListener("keydown", (e) => {
            if (e.key === "Enter" || e.key === " ") {
              e.preventDefault();
              // Keyboard users land on the image, where the arrow keys scroll the series.
              void this.open(se).then(() => $("image").focus({ preventScroll: true }));
            }
          });
          table.append(row);
        }
        sbox.append(table);
        box.append(sbox);
      }
      root.append(box);
    }
  }

  showList(): void {
    $("studies").hidden = false;
    $("studies").scrollIntoView();
  }

  async open(series: Series): Promise<void> {
    this.stopCine();
    this.fitted = true;
    this.drawing = undefined;
    this.view = { series, index: 0, frame: 0, frames: 1, rendered: 0, skipped: [] };
    $("viewer").hidden = false;
    const slider = $<HTMLInputElement>("slider");
    slider.max = String(Math.max(series.instances.length - 1, 0));
    slider.value = "0";
    $("slider-label").hidden = series.instances.length < 2;
    this.seriesDamage();
    await this.show(0, 0);
  }

  isDamaged(index: number): boolean {
    const ref = this.view?.series.instances[index];
    return !!ref && this.damaged.has(fileKey(ref.fileId));
  }

  /** Next image (delta 1) or previous (-1): frames first, then instances; known-damaged instances are stepped over. */
  step(delta: number): void {
    const v = this.view;
    if (!v) return;
    let { index, frame } = v;
    frame += delta;
    const skipped: number[] = [];
    if (frame >= v.frames || frame < 0) {
      let next = index + delta;
      while (next >= 0 && next < v.series.instances.length && this.isDamaged(next) && next + delta >= 0 && next + delta < v.series.instances.length) {
        skipped.push(next);
        next += delta;
      }
      if (next >= 0 && next < v.series.instances.length) {
        index = next;
        frame = delta > 0 ? 0 : Math.max((v.series.instances[index].frames || 1) - 1, 0);
      } else {
        frame = delta > 0 ? v.frames - 1 : 0;
        skipped.length = 0;
      }
    }
    if (index !== v.index || frame !== v.frame) {
      v.skipped = skipped;
      void this.show(index, frame);
    }
  }

  async show(index: number, frameIndex: number): Promise<void> {
    const v = this.view;
    const medium = this.medium;
    if (!v || !medium) return;
    const token = ++this.loadToken;
    const ref: InstanceRef = v.series.instances[index];
    // Where the user is, whatever this file turns out to be: the next step goes on from here.
    v.index = index;
    $<HTMLInputElement>("slider").value = String(index);
    try {
      const opened = await medium.open(ref.fileId);
      if (token !== this.loadToken) return;
      const ds = parseFile(opened.bytes);
      v.ds = ds;
      v.unverified = opened.encrypted && !opened.verified;
      this.notice(null);
      this.showAttributes(ds, opened.verified || !opened.encrypted ? opened.integrity : NOT_VERIFIED, ref, opened.encrypted && !opened.verified);
      const info = imageInfo(ds);
      if (ref.sopClassUid === SOP_ENCAPSULATED_PDF || (!info && ds.elements.x00420011)) {
        v.frames = 1;
        v.frame = 0;
        this.showDocument(ds);
        return;
      }
      $("pdf-box").hidden = true;
      if (!info) {
        v.frames = 1;
        v.frame = 0;
        v.info = undefined;
        v.decoded = undefined;
        this.clearCanvas();
        this.annotate();
        this.overlay(`Instance ${index + 1}/${v.series.instances.length}: no image in this instance (attributes only)`);
        this.setState("no-image");
        return;
      }
      const frame = Math.min(Math.max(frameIndex, 0), info.frames - 1);
      const decoded = await decodeFrame(info, frameBytes(ds, info, frame));
      if (token !== this.loadToken) return;
      v.frame = frame;
      v.frames = info.frames;
      v.info = info;
      v.decoded = decoded;
      v.window = v.userWindow ? { ...v.userWindow } : defaultWindow(info, decoded);
      v.spacing = spacingOf(ds);
      const modality = v.series.modality || (ds.string("x00080060") ?? "").trim();
      v.unit = modalityUnit(ds, modality);
      v.overlays = overlaysOf(ds, frame);
      const explanations = (ds.string("x00281055") ?? "").split("\\").map((e) => e.trim());
      const presets = presetsFor(modality, info.windows, explanations, decoded, info.slope, info.intercept);
      const changed = presets.map((p) => p.name).join("|") !== (v.presets ?? []).map((p) => p.name).join("|");
      v.presets = presets;
      if (changed) {
        this.fillPresets();
        const select = $<HTMLSelectElement>("preset");
        // The window the image opens with is the file's first, else the full range: the list says which.
        const opening = info.windows.length ? 0 : presets.findIndex((p) => p.name === "Full range");
        select.value = !v.userWindow && opening >= 0 ? String(opening) : "";
        if (!v.userWindow) exposed.display.preset = opening >= 0 ? presets[opening].name : "";
      }
      const fs = $<HTMLInputElement>("frame-slider");
      fs.max = String(info.frames - 1);
      fs.value = String(frame);
      $("frame-label").hidden = info.frames < 2;
      this.paint();
      this.readAhead(index + 1);
      void this.showCompared();
    } catch (err) {
      if (token !== this.loadToken) return;
      if (err instanceof MediumError && !medium.keys && medium.dicomdir) {
        this.fail(err);
        return;
      }
      this.showDamaged(index, ref, err);
      this.readAhead(index + 1);
      void this.showCompared();
    }
  }

  /** Read the next file ahead so scrolling does not wait on decryption; its damage is known before the user gets there. */
  readAhead(index: number): void {
    const v = this.view;
    const next = v?.series.instances[index];
    if (!v || !next || !this.medium || this.damaged.has(fileKey(next.fileId))) return;
    const series = v.series;
    void this.medium.open(next.fileId).catch((err) => {
      this.markDamaged(next.fileId, err);
      if (this.view?.series === series) this.seriesDamage();
    });
  }

  /** An instance that cannot be shown: a marked placeholder, what the DICOMDIR says of it, and scrolling goes on. */
  showDamaged(index: number, ref: InstanceRef, err: unknown): void {
    const v = this.view as View;
    const text = this.markDamaged(ref.fileId, err);
    v.frames = 1;
    v.frame = 0;
    v.info = undefined;
    v.decoded = undefined;
    $("pdf-box").hidden = true;
    const canvas = $<HTMLCanvasElement>("image");
    canvas.hidden = false;
    if (!canvas.width || !canvas.height) {
      canvas.width = 256;
      canvas.height = 256;
    }
    const ctx = canvas.getContext("2d", { willReadFrequently: true }) as CanvasRenderingContext2D;
    ctx.fillStyle = "#222";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#a4161a";
    ctx.lineWidth = Math.max(2, canvas.width / 64);
    ctx.beginPath();
    ctx.moveTo(0, 0);
    ctx.lineTo(canvas.width, canvas.height);
    ctx.moveTo(canvas.width, 0);
    ctx.lineTo(0, canvas.height);
    ctx.stroke();
    canvas.dataset.instance = String(index);
    canvas.dataset.frame = "0";
    canvas.dataset.sop = ref.sopInstanceUid;
    canvas.dataset.damaged = "true";
    canvas.setAttribute("aria-label", `Instance ${index + 1}: not shown`);
    $("stage").classList.remove("document");
    this.layout();
    this.annotate();
    const file = ref.fileId.join("\\");
    this.notice(`Instance ${index + 1} (${file}) ${text}. It is not shown; scroll on for the others.`);
    this.overlay(`Instance ${index + 1}/${v.series.instances.length}: NOT SHOWN (${describe(err).damaged ? "damaged" : "refused"})`);
    this.showRecord(ref, text);
    this.seriesDamage();
    this.setState("damaged");
  }

  /** The damaged instances of the series on screen, as a line under the image. */
  seriesDamage(): void {
    const v = this.view;
    const box = $("series-damage");
    if (!v) return;
    const bad = v.series.instances.map((r, i) => [r, i] as const).filter(([r]) => this.damaged.has(fileKey(r.fileId)));
    box.hidden = !bad.length;
    box.textContent = bad.length ? `Not shown in this series: instance ${bad.map(([, i]) => i + 1).join(", ")} (${bad.map(([r]) => r.fileId.join("\\")).join(", ")}); scrolling steps over them.` : "";
  }

  notice(text: string | null): void {
    const box = $("notice");
    box.textContent = text ?? "";
    box.hidden = !text;
  }

  paint(): void {
    const v = this.view;
    if (!v?.info || !v.decoded || !v.window) return;
    const canvas = $<HTMLCanvasElement>("image");
    canvas.hidden = false;
    const { rows, columns } = v.info;
    if (canvas.width !== columns || canvas.height !== rows) {
      canvas.width = columns;
      canvas.height = rows;
    }
    const ctx = canvas.getContext("2d", { willReadFrequently: true }) as CanvasRenderingContext2D;
    // One RGBA buffer reused from paint to paint: scrolling a 512 x 512 series allocates no 1 MB array per image.
    const rgba = toRgba(v.decoded, v.info, v.window, this.rgbaBuffer, this.inverted);
    if (v.decoded.kind === "grey" && !v.info.palette) this.rgbaBuffer = rgba;
    ctx.putImageData(new ImageData(rgba as unknown as Uint8ClampedArray<ArrayBuffer>, columns, rows), 0, 0);
    v.rendered += 1;
    canvas.dataset.instance = String(v.index);
    canvas.dataset.frame = String(v.frame);
    canvas.dataset.sop = v.series.instances[v.index].sopInstanceUid;
    canvas.dataset.window = `${v.window.center},${v.window.width}`;
    canvas.dataset.rendered = String(v.rendered);
    delete canvas.dataset.damaged;
    canvas.setAttribute("aria-label", `Instance ${v.index + 1} of ${v.series.instances.length}`);
    $("stage").classList.remove("document");
    this.layout();
    this.annotate();
    if (exposed.timings.submitToFirstImageMs < 0 && this.submittedAt) {
      exposed.timings.submitToFirstImageMs = performance.now() - this.submittedAt;
    }
    const w = v.decoded.kind === "grey" && !v.info.palette ? `  W ${round(v.window.width)} C ${round(v.window.center)}` : "";
    const skipped = v.skipped.length ? `  (stepped over instance ${v.skipped.map((i) => i + 1).join(", ")}: not shown)` : "";
    this.overlay(`Instance ${v.index + 1}/${v.series.instances.length}${v.frames > 1 ? `  Frame ${v.frame + 1}/${v.frames}` : ""}${w}${skipped}`);
    this.setState("image");
  }

  overlay(text: string): void {
    $("overlay").textContent = text;
  }

  clearCanvas(): void {
    const canvas = $<HTMLCanvasElement>("image");
    canvas.width = 0;
    canvas.height = 0;
    canvas.removeAttribute("data-rendered");
    canvas.removeAttribute("data-sop");
    canvas.removeAttribute("data-damaged");
  }

  clearImage(): void {
    this.clearCanvas();
    this.notice(null);
    $("pdf-box").hidden = true;
    if (this.pdfUrl) URL.revokeObjectURL(this.pdfUrl);
    this.pdfUrl = undefined;
    $("attributes").replaceChildren();
  }

  showDocument(ds: DataSet): void {
    const doc = encapsulatedDocument(ds);
    const canvas = $<HTMLCanvasElement>("image");
    canvas.hidden = true;
    $("stage").classList.add("document");
    if (!doc) return;
    if (this.pdfUrl) URL.revokeObjectURL(this.pdfUrl);
    const pdf = doc.mime.toLowerCase() === "application/pdf";
    const mime = pdf ? "application/pdf" : "text/plain";
    // The document's own title (0042,0010) names it everywhere the page can: the frame, the links and the file
    // saved (a blob: URL has no name of its own).
    const title = doc.title || "Encapsulated document";
    const fileName = `${title.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, "_").slice(0, 120)}.${pdf ? "pdf" : "txt"}`;
    this.pdfUrl = URL.createObjectURL(new File([doc.bytes as unknown as Uint8Array<ArrayBuffer>], fileName, { type: mime }));
    const frame = $<HTMLIFrameElement>("pdf");
    frame.src = this.pdfUrl;
    frame.title = title;
    $("pdf-title").textContent = title;
    const link = $<HTMLAnchorElement>("pdf-link");
    link.href = this.pdfUrl;
    link.textContent = `Open \u201c${title}\u201d in a new tab`;
    const save = $<HTMLAnchorElement>("pdf-save");
    save.href = this.pdfUrl;
    save.download = fileName;
    save.textContent = `Save as ${fileName}`;
    $("pdf-box").hidden = false;
    this.overlay(`${title} (${doc.mime}), ${doc.bytes.length} bytes`);
    this.setState("document");
  }

  /** What the DICOMDIR (or the folder listing) says of an instance that cannot be shown. */
  showRecord(ref: InstanceRef, why: string): void {
    const table = $("attributes");
    table.replaceChildren();
    const head = el("tr", { class: "group" });
    head.append(el("th", { colspan: "2" }, "Instance (from the DICOMDIR; the file itself is not shown)"));
    table.append(head);
    const rows: [string, string][] = [
      ["Instance number", ref.instanceNumber ? String(ref.instanceNumber) : ""],
      ["SOP Instance UID", ref.sopInstanceUid],
      ["SOP Class UID", ref.sopClassUid],
    ];
    for (const [label, value] of rows) {
      if (!value) continue;
      const row = el("tr");
      row.append(el("th", {}, label), el("td", {}, value));
      table.append(row);
    }
    const row = el("tr", { class: "bad" });
    row.append(el("th", {}, "Integrity"), el("td", { "data-testid": "integrity" }, `NOT SHOWN: ${why}`));
    table.append(row);
    const file = el("tr");
    file.append(el("th", {}, "File ID"), el("td", {}, ref.fileId.join("\\")));
    table.append(file);
  }

  showAttributes(ds: DataSet, integrity: string, ref: InstanceRef, unverified = false): void {
    const table = $("attributes");
    table.replaceChildren();
    let group = "";
    for (const [g, label, value] of keyAttributes(ds)) {
      if (g !== group) {
        group = g;
        const head = el("tr", { class: "group" });
        head.append(el("th", { colspan: "2" }, g));
        table.append(head);
      }
      const row = el("tr");
      row.append(el("th", {}, label), el("td", {}, value));
      table.append(row);
    }
    const row = el("tr", unverified ? { class: "bad" } : {});
    row.append(el("th", {}, "Integrity"), el("td", { "data-testid": "integrity" }, integrity));
    table.append(row);
    // A file shown without a digest or signature (the user asked) says so above the image, every time.
    this.notice(unverified ? "Integrity NOT verified: this file carries no digest or signature; it may have been altered." : null);
    const file = el("tr");
    file.append(el("th", {}, "File ID"), el("td", {}, ref.fileId.join("\\")));
    table.append(file);
  }

  /** The keyboard's reading tools; false when the key is not one of them. */
  key(e: KeyboardEvent): boolean {
    const v = this.view as View;
    if (e.shiftKey && e.key.startsWith("Arrow") && v.window && v.decoded?.kind === "grey" && !v.info?.palette) {
      // Shift+arrows: up/down move the centre, left/right narrow or widen the window, by a 20th of the width.
      const step = Math.max(v.window.width / 20, 1);
      const w = { ...v.window };
      if (e.key === "ArrowUp") w.center += step;
      else if (e.key === "ArrowDown") w.center -= step;
      else if (e.key === "ArrowRight") w.width += step;
      else w.width = Math.max(1, w.width - step);
      this.setWindow(w, "");
      return true;
    }
    if (e.key === "ArrowDown" || e.key === "PageDown" || e.key === "ArrowRight") this.step(1);
    else if (e.key === "ArrowUp" || e.key === "PageUp" || e.key === "ArrowLeft") this.step(-1);
    else if (e.key === "Home") void this.show(0, 0);
    else if (e.key === "End") void this.show(v.series.instances.length - 1, 0);
    else if (e.key === "+" || e.key === "=") this.zoomBy(1.25);
    else if (e.key === "-") this.zoomBy(0.8);
    else if (e.key === "f" || e.key === "F") this.fit();
    else if (e.key === "0") this.oneToOne();
    else if (e.key === "i" || e.key === "I") this.invert();
    else if (e.key === "r" || e.key === "R") this.resetView();
    else if (e.key === "v" || e.key === "V") this.toggleOverlays();
    else if (e.key === "c" || e.key === "C" || e.key === " ") this.toggleCine();
    else if (e.key === "Escape") {
      this.drawing = undefined;
      this.annotate();
    } else if (/^[1-9]$/.test(e.key)) this.applyPreset(Number(e.key) - 1);
    else return false;
    return true;
  }

  setWindow(w: Window, preset: string): void {
    const v = this.view;
    if (!v) return;
    v.window = { ...w };
    v.userWindow = { ...w };
    exposed.display.preset = preset;
    const select = $<HTMLSelectElement>("preset");
    const index = (v.presets ?? []).findIndex((p) => p.name === preset);
    select.value = index >= 0 ? String(index) : "";
    this.paint();
  }

  applyPreset(index: number): void {
    const preset = this.view?.presets?.[index];
    if (preset && this.view?.decoded?.kind === "grey") this.setWindow(preset.window, preset.name);
  }

  fillPresets(): void {
    const v = this.view as View;
    const select = $<HTMLSelectElement>("preset");
    select.replaceChildren(el("option", { value: "", disabled: "" }, "(custom)"));
    (v.presets ?? []).forEach((p, i) => {
      select.append(el("option", { value: String(i) }, `${i < 9 ? `${i + 1}: ` : ""}${p.name} (${round(p.window.center)} / ${round(p.window.width)})`));
    });
    select.disabled = !(v.presets ?? []).length;
  }

  invert(): void {
    this.inverted = !this.inverted;
    $("invert").setAttribute("aria-pressed", String(this.inverted));
    this.paint();
  }

  toggleOverlays(): void {
    this.showOverlays = !this.showOverlays;
    $("overlays-toggle").setAttribute("aria-pressed", String(this.showOverlays));
    this.annotate();
  }

  resetView(): void {
    const v = this.view;
    this.inverted = false;
    $("invert").setAttribute("aria-pressed", "false");
    this.fitted = true;
    if (v?.info && v.decoded) {
      v.userWindow = undefined;
      v.window = defaultWindow(v.info, v.decoded);
      const opening = v.info.windows.length ? 0 : (v.presets ?? []).findIndex((p) => p.name === "Full range");
      exposed.display.preset = opening >= 0 ? (v.presets?.[opening]?.name ?? "") : "";
      $<HTMLSelectElement>("preset").value = opening >= 0 ? String(opening) : "";
    }
    this.paint();
  }

  /** Fit: the whole image in the stage, magnified when it is small (a 64 x 64 MR fills the stage). */
  fit(): void {
    this.fitted = true;
    this.layout();
    this.annotate();
  }

  /** One image pixel per device pixel, centred. */
  oneToOne(): void {
    const v = this.view;
    if (!v?.info) return;
    const stage = $("stage");
    this.fitted = false;
    this.scale = 1 / (window.devicePixelRatio || 1);
    const aspect = this.aspect();
    this.tx = Math.round((stage.clientWidth - v.info.columns * this.scale) / 2);
    this.ty = Math.round((stage.clientHeight - v.info.rows * this.scale * aspect) / 2);
    this.layout();
    this.annotate();
  }

  /** Zoom by `factor` keeping the stage point (cx, cy) (default: the centre) where it is. */
  zoomBy(factor: number, cx?: number, cy?: number): void {
    const v = this.view;
    if (!v?.info) return;
    const stage = $("stage");
    const x = cx ?? stage.clientWidth / 2;
    const y = cy ?? stage.clientHeight / 2;
    const next = Math.min(64, Math.max(0.02, this.scale * factor));
    const k = next / this.scale;
    this.fitted = false;
    this.tx = Math.round(x - (x - this.tx) * k);
    this.ty = Math.round(y - (y - this.ty) * k);
    this.scale = next;
    this.layout();
    this.annotate();
  }

  /** Height of a pixel over its width on screen: the Pixel Spacing's ratio (non-square pixels drawn true). */
  aspect(): number {
    const s = this.view?.spacing;
    return s?.source ? s.row / s.column : 1;
  }

  /** Place the image canvas on the stage (CSS transform: the canvas keeps the image's own pixels). */
  layout(): void {
    const v = this.view;
    const canvas = $<HTMLCanvasElement>("image");
    if (!v || !canvas.width || !canvas.height) return;
    const stage = $("stage");
    const W = stage.clientWidth;
    const H = stage.clientHeight;
    const aspect = canvas.dataset.damaged ? 1 : this.aspect();
    if (this.fitted) {
      this.scale = Math.min(W / canvas.width, H / (canvas.height * aspect));
      this.tx = Math.round((W - canvas.width * this.scale) / 2);
      this.ty = Math.round((H - canvas.height * this.scale * aspect) / 2);
    }
    canvas.style.width = `${canvas.width}px`;
    canvas.style.height = `${canvas.height}px`;
    canvas.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale}, ${this.scale * aspect})`;
    // Magnified, each pixel is shown as the square it is; minified, the browser's smoothing avoids aliasing.
    canvas.style.imageRendering = this.scale * (window.devicePixelRatio || 1) > 1 ? "pixelated" : "auto";
    Object.assign(exposed.display, { scale: this.scale, aspect, tx: this.tx, ty: this.ty, columns: canvas.width, rows: canvas.height, inverted: this.inverted });
  }

  /** Stage coordinates (CSS pixels from the stage's top left) to image coordinates, and back. */
  toImage(x: number, y: number): Point {
    return { x: (x - this.tx) / this.scale, y: (y - this.ty) / (this.scale * this.aspect()) };
  }

  toStage(p: Point): Point {
    return { x: this.tx + p.x * this.scale, y: this.ty + p.y * this.scale * this.aspect() };
  }

  markKey(): string | undefined {
    const v = this.view;
    if (!v?.info) return undefined;
    return `${v.series.instances[v.index].sopInstanceUid}#${v.frame}`;
  }

  /** Mouse and touch: the chosen tool with the left button; pan with the middle button or Shift. */
  pointer(stage: HTMLElement): void {
    let drag: { mode: Tool; x: number; y: number } | undefined;
    const local = (e: PointerEvent): Point => {
      const r = stage.getBoundingClientRect();
      return { x: e.clientX - r.left, y: e.clientY - r.top };
    };
    stage.addEventListener("pointerdown", (e) => {
      const v = this.view;
      if (!v?.info || !v.decoded || (e.button !== 0 && e.button !== 1)) return;
      const at = local(e);
      const mode: Tool = e.button === 1 || e.shiftKey ? "pan" : this.tool;
      stage.setPointerCapture(e.pointerId);
      e.preventDefault();
      drag = { mode, x: at.x, y: at.y };
      if (mode === "length" || mode === "rectangle" || mode === "ellipse") {
        const p = this.toImage(at.x, at.y);
        this.drawing = { kind: mode, points: [p, p] };
      } else if (mode === "angle") {
        const p = this.toImage(at.x, at.y);
        if (this.drawing?.kind === "angle" && this.drawing.points.length === 2) this.drawing.points.push(p);
        else this.drawing = { kind: "angle", points: [p, p] };
      }
    });
    stage.addEventListener("pointermove", (e) => {
      const v = this.view;
      if (!drag || !v?.info) return;
      const at = local(e);
      const dx = at.x - drag.x;
      const dy = at.y - drag.y;
      drag.x = at.x;
      drag.y = at.y;
      if (drag.mode === "window") {
        if (!v.window || v.decoded?.kind !== "grey" || v.info.palette) return;
        const range = Math.max((v.decoded.max - v.decoded.min) * Math.abs(v.info.slope), 1);
        const scale = range / 512;
        // Right: wider window (less contrast); down: higher centre (darker), as most viewers do.
        this.setWindow({ center: v.window.center + dy * scale, width: Math.max(1, v.window.width + dx * scale) }, "");
      } else if (drag.mode === "pan") {
        this.fitted = false;
        this.tx += dx;
        this.ty += dy;
        this.layout();
        this.annotate();
      } else if (drag.mode === "zoom") {
        this.zoomBy(Math.exp(-dy / 100));
      } else if (this.drawing) {
        this.drawing.points[this.drawing.points.length - 1] = this.toImage(at.x, at.y);
        this.annotate();
      }
    });
    const end = (): void => {
      if (!drag) return;
      const mode = drag.mode;
      drag = undefined;
      const m = this.drawing;
      if (!m || mode === "window" || mode === "pan" || mode === "zoom") return;
      if (m.kind === "angle" && m.points.length < 3) {
        this.annotate(); // the first arm is drawn; the next click ends the second
        return;
      }
      this.drawing = undefined;
      const key = this.markKey();
      const [a, b] = m.points;
      if (key && (m.kind === "angle" || Math.hypot(b.x - a.x, b.y - a.y) > 0.5)) {
        this.marks.set(key, [...(this.marks.get(key) ?? []), m]);
      }
      this.annotate();
    };
    stage.addEventListener("pointerup", end);
    stage.addEventListener("pointercancel", end);
    stage.addEventListener("dblclick", () => this.fit());
  }

  /** A measurement's text, and its values for the list under the image. */
  describeMark(m: Measurement): { text: string; value: number; unit: string; stats?: Record<string, number> } {
    const v = this.view as View;
    const s = v.spacing as Spacing;
    const calibrated = s.source !== null;
    const lengthUnit = calibrated ? "mm" : "px";
    const note = calibrated ? (s.source === "Imager Pixel Spacing" ? " (at the detector: Imager Pixel Spacing)" : "") : " (uncalibrated: no Pixel Spacing)";
    if (m.kind === "length") {
      const d = length(m.points[0], m.points[1], s);
      return { text: `Length ${d.toFixed(1)} ${lengthUnit}${note}`, value: d, unit: lengthUnit };
    }
    if (m.kind === "angle") {
      const a = angle(m.points[0], m.points[1], m.points[2] ?? m.points[1], s);
      return { text: `Angle ${a.toFixed(1)}\u00b0`, value: a, unit: "deg" };
    }
    const info = v.info as ImageInfo;
    const stats = v.decoded ? roiStats(v.decoded, info.columns, info.rows, info.slope, info.intercept, m.kind, m.points[0], m.points[1], s) : null;
    const areaUnit = calibrated ? "mm\u00b2" : "px\u00b2";
    const name = m.kind === "rectangle" ? "Rectangle" : "Ellipse";
    if (!stats) return { text: `${name}: no grey pixels inside`, value: 0, unit: areaUnit };
    const u = v.unit ? ` ${v.unit}` : "";
    const f = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1));
    return {
      text: `${name}: mean ${f(stats.mean)}${u}, SD ${f(stats.sd)}, min ${f(stats.min)}, max ${f(stats.max)}, area ${stats.area.toFixed(1)} ${areaUnit}${note}`,
      value: stats.area, unit: areaUnit,
      stats: { mean: stats.mean, sd: stats.sd, min: stats.min, max: stats.max, pixels: stats.pixels, area: stats.area },
    };
  }

  /**
   * The layer over the image: overlays (60xx), measurements, orientation letters, the corner text and a scale
   * bar. Drawn in stage coordinates, so it stays sharp at any zoom; the image pixels are never touched.
   */
  annotate(): void {
    const v = this.view;
    const layer = $<HTMLCanvasElement>("annot");
    const stage = $("stage");
    const dpr = window.devicePixelRatio || 1;
    const W = stage.clientWidth;
    const H = stage.clientHeight;
    if (layer.width !== Math.round(W * dpr) || layer.height !== Math.round(H * dpr)) {
      layer.width = Math.round(W * dpr);
      layer.height = Math.round(H * dpr);
    }
    const ctx = layer.getContext("2d") as CanvasRenderingContext2D;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, layer.width, layer.height);
    const list = $("measurements");
    list.replaceChildren();
    exposed.measurements = [];
    if (!v?.info || !v.decoded || $<HTMLCanvasElement>("image").dataset.damaged) return;
    const aspect = this.aspect();
    // Overlays: one bitmap per plane, drawn with the image's transform.
    if (this.showOverlays && v.overlays?.length) {
      ctx.setTransform(dpr * this.scale, 0, 0, dpr * this.scale * aspect, dpr * this.tx, dpr * this.ty);
      ctx.imageSmoothingEnabled = false;
      for (const o of v.overlays) {
        const bitmap = new ImageData(o.columns, o.rows);
        for (let i = 0; i < o.bits.length; i++) {
          if (!o.bits[i]) continue;
          bitmap.data[i * 4] = 255;
          bitmap.data[i * 4 + 1] = 255;
          bitmap.data[i * 4 + 2] = 0;
          bitmap.data[i * 4 + 3] = 255;
        }
        const plane = document.createElement("canvas");
        plane.width = o.columns;
        plane.height = o.rows;
        (plane.getContext("2d") as CanvasRenderingContext2D).putImageData(bitmap, 0, 0);
        ctx.drawImage(plane, o.left, o.top);
      }
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = "13px system-ui, sans-serif";
    ctx.lineWidth = 1.5;
    const shadowText = (text: string, x: number, y: number, align: CanvasTextAlign, colour = "#fff"): void => {
      ctx.textAlign = align;
      ctx.fillStyle = "#000";
      ctx.fillText(text, x + 1, y + 1);
      ctx.fillStyle = colour;
      ctx.fillText(text, x, y);
    };
    // Measurements, the one being drawn last.
    const key = this.markKey();
    const marks = [...(key ? this.marks.get(key) ?? [] : []), ...(this.drawing ? [this.drawing] : [])];
    marks.forEach((m, i) => {
      const pts = m.points.map((p) => this.toStage(p));
      ctx.strokeStyle = "#3cf";
      ctx.beginPath();
      if (m.kind === "length" || m.kind === "angle") {
        ctx.moveTo(pts[0].x, pts[0].y);
        for (const p of pts.slice(1)) ctx.lineTo(p.x, p.y);
      } else if (m.kind === "rectangle") {
        ctx.rect(Math.min(pts[0].x, pts[1].x), Math.min(pts[0].y, pts[1].y), Math.abs(pts[1].x - pts[0].x), Math.abs(pts[1].y - pts[0].y));
      } else {
        ctx.ellipse((pts[0].x + pts[1].x) / 2, (pts[0].y + pts[1].y) / 2, Math.abs(pts[1].x - pts[0].x) / 2, Math.abs(pts[1].y - pts[0].y) / 2, 0, 0, 2 * Math.PI);
      }
      ctx.stroke();
      const d = this.describeMark(m);
      const anchor = pts[pts.length - 1];
      // Labels of shapes drawn from the same corner would overlap: each a line lower.
      const same = marks.slice(0, i).filter((o) => {
        const q = this.toStage(o.points[o.points.length - 1]);
        return Math.abs(q.x - anchor.x) < 2 && Math.abs(q.y - anchor.y) < 2;
      }).length;
      shadowText(`${i + 1}: ${d.text.split(",")[0]}`, anchor.x + 6, anchor.y - 6 + same * 15, "left", "#3cf");
      if (m !== this.drawing) {
        list.append(el("li", { "data-testid": "measurement" }, `${i + 1}. ${d.text}`));
        exposed.measurements.push({ kind: m.kind, ...d });
      }
    });
    // Orientation letters at the middle of each edge.
    const o = v.ds ? orientationOf(v.ds) : null;
    exposed.display.orientation = o;
    if (o) {
      ctx.font = "bold 15px system-ui, sans-serif";
      shadowText(o.left, 8, H / 2, "left", "#fd4");
      shadowText(o.right, W - 8, H / 2, "right", "#fd4");
      shadowText(o.top, W / 2, 20, "center", "#fd4");
      shadowText(o.bottom, W / 2, H - 28, "center", "#fd4");
      ctx.font = "13px system-ui, sans-serif";
    }
    // The corner text: patient (top left), study (top right), series and image (bottom left), display (bottom right).
    const ds = v.ds;
    const t = (tag: string): string => {
      try {
        return (ds?.string(tag) ?? "").trim();
      } catch {
        return "";
      }
    };
    const lines = (texts: string[], x: number, yTop: number, align: CanvasTextAlign, up: boolean, colour = "#fff"): void => {
      const kept = texts.filter(Boolean);
      kept.forEach((text, i) => shadowText(text, x, up ? yTop - (kept.length - 1 - i) * 16 : yTop + i * 16, align, colour));
    };
    lines([formatName(t("x00100010")), t("x00100020") && `ID ${t("x00100020")}`, [formatDate(t("x00100030")), t("x00100040")].filter(Boolean).join(" ")], 8, 18, "left", false);
    lines([t("x00080080"), [formatDate(t("x00080020")), t("x00080030").slice(0, 4).replace(/^(\d\d)(\d\d)$/, "$1:$2")].filter(Boolean).join(" "), t("x00081030")], W - 8, 18, "right", false);
    const slice = [t("x00201041") && `Loc ${round(parseFloat(t("x00201041")))} mm`, t("x00180050") && `Thk ${round(parseFloat(t("x00180050")))} mm`].filter(Boolean).join("  ");
    lines([
      [t("x00200011") && `Se ${t("x00200011")}`, t("x0008103e")].filter(Boolean).join(" "),
      `Im ${v.index + 1}/${v.series.instances.length}${v.frames > 1 ? `  Fr ${v.frame + 1}/${v.frames}` : ""}`,
      slice,
    ], 8, H - 10, "left", true);
    const grey = v.decoded.kind === "grey" && !v.info.palette && v.window;
    lines([
      v.unverified ? "INTEGRITY NOT VERIFIED" : "",
      grey && v.window ? `W ${round(v.window.width)}  C ${round(v.window.center)}${exposed.display.preset ? `  ${exposed.display.preset}` : ""}` : "",
      `Zoom ${Math.round(this.scale * (window.devicePixelRatio || 1) * 100)}%${this.inverted ? "  Inverted" : ""}`,
    ], W - 8, H - 10, "right", true, v.unverified ? "#f66" : "#fff");
    // Scale bar: a round length in mm, along the bottom, when the image is calibrated.
    const s = v.spacing;
    if (s?.source) {
      const bar = scaleBar(s.column / this.scale, W / 4);
      if (bar) {
        const x0 = (W - bar.pixels) / 2;
        const y = H - 12;
        ctx.strokeStyle = "#fff";
        ctx.beginPath();
        ctx.moveTo(x0, y - 5);
        ctx.lineTo(x0, y);
        ctx.lineTo(x0 + bar.pixels, y);
        ctx.lineTo(x0 + bar.pixels, y - 5);
        ctx.stroke();
        shadowText(`${bar.mm} mm${s.source === "Imager Pixel Spacing" ? " (detector)" : ""}`, W / 2, y - 6, "center");
      }
    }
  }

  compared?: { series: Series; index: number; token: number };

  /**
   * Side by side: `series` (a prior, say) beside the image on screen, scrolled with it. The panes are linked by
   * position in their series (the same fraction of the way through: slice for slice when the counts match).
   */
  async compareWith(series: Series): Promise<void> {
    if (!this.view) return;
    this.compared = { series, index: -1, token: 0 };
    $("panes").classList.add("compare");
    $("compare-pane").hidden = false;
    $("compare-title").textContent = `${series.modality} series${series.number ? ` ${series.number}` : ""}${series.description ? `, ${series.description}` : ""}`;
    Object.assign(exposed.compare, { active: true, index: -1, instances: series.instances.length, rendered: 0, damaged: false });
    this.layout();
    this.annotate();
    await this.showCompared();
  }

  closeCompare(): void {
    this.compared = undefined;
    $("panes").classList.remove("compare");
    $("compare-pane").hidden = true;
    exposed.compare.active = false;
    this.layout();
    this.annotate();
  }

  /** The compared series' instance at the main pane's position, windowed as the file says, fitted to its pane. */
  async showCompared(): Promise<void> {
    const c = this.compared;
    const v = this.view;
    const medium = this.medium;
    if (!c || !v || !medium) return;
    const n1 = v.series.instances.length;
    const n2 = c.series.instances.length;
    const index = n1 > 1 ? Math.round((v.index * (n2 - 1)) / (n1 - 1)) : 0;
    if (index === c.index) return;
    c.index = index;
    const token = ++c.token;
    const ref = c.series.instances[index];
    const canvas = $<HTMLCanvasElement>("image2");
    exposed.compare.index = index;
    try {
      const opened = await medium.open(ref.fileId);
      const ds = parseFile(opened.bytes);
      const info = imageInfo(ds);
      if (!info) throw new DicomError("no image in this instance");
      const frame = await decodeFrame(info, frameBytes(ds, info, 0));
      if (token !== c.token || this.compared !== c) return;
      canvas.width = info.columns;
      canvas.height = info.rows;
      const rgba = toRgba(frame, info, defaultWindow(info, frame), undefined, this.inverted);
      (canvas.getContext("2d") as CanvasRenderingContext2D).putImageData(new ImageData(rgba as unknown as Uint8ClampedArray<ArrayBuffer>, info.columns, info.rows), 0, 0);
      const spacing = spacingOf(ds);
      canvas.dataset.aspect = String(spacing.source ? spacing.row / spacing.column : 1);
      this.fitInto($("stage2"), canvas, Number(canvas.dataset.aspect));
      canvas.dataset.instance = String(index);
      canvas.setAttribute("aria-label", `Compared image: instance ${index + 1} of ${n2}`);
      exposed.compare.rendered += 1;
      exposed.compare.damaged = false;
    } catch (err) {
      if (token !== c.token || this.compared !== c) return;
      this.markDamaged(ref.fileId, err);
      canvas.width = canvas.height = 0;
      canvas.dataset.instance = String(index);
      exposed.compare.damaged = true;
    }
    $("compare-title").dataset.instance = String(index);
    $("compare-title").textContent = `${c.series.modality} series${c.series.number ? ` ${c.series.number}` : ""}${c.series.description ? `, ${c.series.description}` : ""}: instance ${index + 1}/${n2}${exposed.compare.damaged ? " (not shown: damaged)" : ""}`;
  }

  /** A canvas fitted and centred in its stage by a CSS transform (the compared pane). */
  fitInto(stage: HTMLElement, canvas: HTMLCanvasElement, aspect: number): void {
    const scale = Math.min(stage.clientWidth / canvas.width, stage.clientHeight / (canvas.height * aspect));
    const tx = Math.round((stage.clientWidth - canvas.width * scale) / 2);
    const ty = Math.round((stage.clientHeight - canvas.height * scale * aspect) / 2);
    canvas.style.width = `${canvas.width}px`;
    canvas.style.height = `${canvas.height}px`;
    canvas.style.transform = `translate(${tx}px, ${ty}px) scale(${scale}, ${scale * aspect})`;
    canvas.style.imageRendering = scale * (window.devicePixelRatio || 1) > 1 ? "pixelated" : "auto";
  }

  /** Cine: play the frames (a multi-frame image) or the instances (a series), at the file's own rate. */
  toggleCine(): void {
    const v = this.view;
    if (this.cineTimer !== undefined) {
      this.stopCine();
      return;
    }
    if (!v || (v.frames < 2 && v.series.instances.length < 2)) return;
    const { fps, source } = v.ds ? cineRate(v.ds) : { fps: 10, source: "default" };
    Object.assign(exposed.cine, { playing: true, fps, source, shown: 0 });
    $("cine").setAttribute("aria-pressed", "true");
    $("cine").textContent = "Pause";
    $("cine-rate").textContent = `${fps.toFixed(fps % 1 ? 1 : 0)} frames/s${source === "default" ? "" : ` (${source})`}`;
    const interval = 1000 / Math.min(Math.max(fps, 0.5), 60);
    const tick = async (): Promise<void> => {
      const w = this.view;
      if (!w || this.cineTimer === undefined) return;
      const started = performance.now();
      let index = w.index;
      let frame = w.frame + 1;
      if (frame >= w.frames) {
        frame = 0;
        index = index + 1 < w.series.instances.length ? index + 1 : 0;
      }
      await this.show(index, frame);
      exposed.cine.shown += 1;
      if (this.cineTimer !== undefined) this.cineTimer = window.setTimeout(() => void tick(), Math.max(0, interval - (performance.now() - started)));
    };
    this.cineTimer = window.setTimeout(() => void tick(), interval);
  }

  stopCine(): void {
    if (this.cineTimer !== undefined) window.clearTimeout(this.cineTimer);
    this.cineTimer = undefined;
    exposed.cine.playing = false;
    $("cine").setAttribute("aria-pressed", "false");
    $("cine").textContent = "Play";
  }
}

function round(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1);
}

export function startViewer(): void {
  const app = new App();
  app.start();
}
