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
};

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
}

class App {
  medium?: Medium;
  patients: Patient[] = [];
  view?: View;
  submittedAt = 0;
  pdfUrl?: string;
  loadToken = 0;

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
    const canvas = $<HTMLCanvasElement>("image");
    // On the stage, not the canvas: a damaged instance leaves no image under the pointer, and scrolling goes on.
    $("stage").addEventListener("wheel", (e) => {
      if (!this.view) return;
      e.preventDefault();
      this.step(e.deltaY > 0 ? 1 : -1);
    }, { passive: false });
    document.addEventListener("keydown", (e) => {
      const target = e.target as HTMLElement;
      if (!this.view || target.tagName === "INPUT" || target.tagName === "SELECT") return;
      if (e.key === "ArrowDown" || e.key === "PageDown" || e.key === "ArrowRight") this.step(1);
      else if (e.key === "ArrowUp" || e.key === "PageUp" || e.key === "ArrowLeft") this.step(-1);
      else return;
      e.preventDefault();
    });
    this.dragWindow(canvas);
    $<HTMLInputElement>("slider").addEventListener("input", (e) => {
      if (this.view) void this.show(Number((e.target as HTMLInputElement).value), 0);
    });
    $<HTMLInputElement>("frame-slider").addEventListener("input", (e) => {
      if (this.view) void this.show(this.view.index, Number((e.target as HTMLInputElement).value));
    });
    $("reset").addEventListener("click", () => {
      if (!this.view?.decoded || !this.view.info) return;
      this.view.userWindow = undefined;
      this.view.window = defaultWindow(this.view.info, this.view.decoded);
      this.paint();
    });
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

  renderList(integrity: string): void {
    const root = $("studies");
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
          row.append(el("td", {}, se.modality), el("td", {}, se.number ? `#${se.number}` : ""), el("td", {}, se.description || ""), el("td", {}, `${se.instances.length} instance(s)`));
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
        this.clearCanvas();
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
      const fs = $<HTMLInputElement>("frame-slider");
      fs.max = String(info.frames - 1);
      fs.value = String(frame);
      $("frame-label").hidden = info.frames < 2;
      this.paint();
      this.readAhead(index + 1);
    } catch (err) {
      if (token !== this.loadToken) return;
      if (err instanceof MediumError && !medium.keys && medium.dicomdir) {
        this.fail(err);
        return;
      }
      this.showDamaged(index, ref, err);
      this.readAhead(index + 1);
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
    const rgba = toRgba(v.decoded, v.info, v.window);
    ctx.putImageData(new ImageData(rgba as unknown as Uint8ClampedArray<ArrayBuffer>, columns, rows), 0, 0);
    v.rendered += 1;
    canvas.dataset.instance = String(v.index);
    canvas.dataset.frame = String(v.frame);
    canvas.dataset.sop = v.series.instances[v.index].sopInstanceUid;
    canvas.dataset.window = `${v.window.center},${v.window.width}`;
    canvas.dataset.rendered = String(v.rendered);
    delete canvas.dataset.damaged;
    canvas.setAttribute("aria-label", `Instance ${v.index + 1} of ${v.series.instances.length}`);
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

  dragWindow(canvas: HTMLCanvasElement): void {
    let last: { x: number; y: number } | undefined;
    canvas.addEventListener("pointerdown", (e) => {
      if (this.view?.decoded?.kind !== "grey" || this.view.info?.palette) return;
      last = { x: e.clientX, y: e.clientY };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointermove", (e) => {
      const v = this.view;
      if (!last || !v?.window || !v.info || v.decoded?.kind !== "grey") return;
      const range = Math.max((v.decoded.max - v.decoded.min) * Math.abs(v.info.slope), 1);
      const scale = range / 512;
      const dx = e.clientX - last.x;
      const dy = e.clientY - last.y;
      last = { x: e.clientX, y: e.clientY };
      // Right: wider window (less contrast); down: higher centre (darker), as most viewers do.
      v.window = { center: v.window.center + dy * scale, width: Math.max(1, v.window.width + dx * scale) };
      v.userWindow = { ...v.window };
      this.paint();
    });
    const end = (): void => {
      last = undefined;
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }
}

function round(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1);
}

export function startViewer(): void {
  const app = new App();
  app.start();
}
