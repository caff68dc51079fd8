/**
 * The page: choose the medium, give the password or key, list patients/studies/series, show images,
 * documents and key attributes. Everything stays in this page: no request leaves it (CSP connect-src 'none').
 * Text from the medium is only ever set with textContent, never parsed as markup.
 */
import { DecryptionError, IntegrityError, KeyRing, MalformedError, UnsupportedError, stats } from "./cms";
import {
  DataSet, ImageInfo, InstanceRef, Patient, SOP_ENCAPSULATED_PDF, Series, encapsulatedDocument, formatDate, formatName,
  frameBytes, imageInfo, keyAttributes, parseFile, readDicomdir,
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
};

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
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer) void fromDrop(e.dataTransfer.items).then((s) => this.choose(s));
    });
    $<HTMLFormElement>("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.unlock();
    });
    const canvas = $<HTMLCanvasElement>("image");
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.step(e.deltaY > 0 ? 1 : -1);
    }, { passive: false });
    document.addEventListener("keydown", (e) => {
      if (!this.view || (e.target as HTMLElement).tagName === "INPUT") return;
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

  async choose(sources: Source[]): Promise<void> {
    this.reset();
    try {
      this.medium = new Medium(sources);
      exposed.files = this.medium.fileCount;
      const kind = await this.medium.dicomdirKind();
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
    const password = $<HTMLInputElement>("password").value;
    const keyFile = $<HTMLInputElement>("keyfile").files?.[0];
    try {
      const rsa = keyFile ? loadPrivateKey(await keyFile.text()) : undefined;
      if (!password && !rsa) {
        this.error("Type the password, or choose a private key file.");
        return;
      }
      this.medium.keys = new KeyRing(password ? new TextEncoder().encode(password) : undefined, rsa);
      this.setState("opening");
      this.status("Deriving the key and opening the DICOMDIR...");
      await this.list();
    } catch (err) {
      this.medium.keys = undefined;
      this.fail(err);
    }
  }

  fail(err: unknown): void {
    this.clearImage();
    let text: string;
    if (err instanceof DecryptionError) {
      text = "Wrong password (or this key cannot open this medium). Nothing has been shown.";
      $("studies").replaceChildren();
      $("studies").hidden = true;
      $("viewer").hidden = true;
      this.setState("wrong-key");
    } else if (err instanceof IntegrityError) {
      text = `Integrity check failed: this file has been altered or damaged and is not shown. (${err.message})`;
      this.setState("integrity-error");
    } else if (err instanceof UnsupportedError || err instanceof MediumError || err instanceof MalformedError) {
      text = err.message;
      this.setState("error");
    } else {
      text = `Cannot show this: ${(err as Error)?.message ?? String(err)}`;
      this.setState("error");
    }
    this.error(text);
    this.status("");
  }

  async list(): Promise<void> {
    const medium = this.medium as Medium;
    const dicomdir = await medium.open("DICOMDIR");
    this.patients = readDicomdir(dicomdir.bytes);
    exposed.timings.submitToListMs = this.submittedAt ? performance.now() - this.submittedAt : 0;
    $("step-key").hidden = true;
    this.status(`${medium.fileCount} files, ${dicomdir.encrypted ? "decrypted on this computer" : "not encrypted"}.`);
    this.renderList(dicomdir.integrity);
    $("step-folder").hidden = true;
    this.setState("listed");
    const first = this.patients.flatMap((p) => p.studies.flatMap((s) => s.series)).find((s) => s.instances.length);
    if (first) await this.open(first);
  }

  renderList(integrity: string): void {
    const root = $("studies");
    root.replaceChildren();
    root.hidden = false;
    const series = this.patients.reduce((n, p) => n + p.studies.reduce((m, s) => m + s.series.length, 0), 0);
    root.append(el("h2", {}, `${this.patients.length} patient(s), ${series} series`));
    root.append(el("p", { class: "note" }, `DICOMDIR integrity: ${integrity}.`));
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
          const row = el("tr", { "data-testid": "series", "data-modality": se.modality, "data-instances": String(se.instances.length), tabindex: "0" });
          row.append(el("td", {}, se.modality), el("td", {}, se.number ? `#${se.number}` : ""), el("td", {}, se.description || ""), el("td", {}, `${se.instances.length} instance(s)`));
          row.addEventListener("click", () => void this.open(se));
          row.addEventListener("keydown", (e) => {
            if (e.key === "Enter") void this.open(se);
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
    this.view = { series, index: 0, frame: 0, frames: 1, rendered: 0 };
    $("viewer").hidden = false;
    const slider = $<HTMLInputElement>("slider");
    slider.max = String(Math.max(series.instances.length - 1, 0));
    slider.value = "0";
    $("slider-label").hidden = series.instances.length < 2;
    await this.show(0, 0);
  }

  step(delta: number): void {
    const v = this.view;
    if (!v) return;
    let { index, frame } = v;
    frame += delta;
    if (frame >= v.frames) {
      if (index + 1 < v.series.instances.length) {
        index += 1;
        frame = 0;
      } else frame = v.frames - 1;
    } else if (frame < 0) {
      if (index > 0) {
        index -= 1;
        frame = Math.max((v.series.instances[index].frames || 1) - 1, 0);
      } else frame = 0;
    }
    if (index !== v.index || frame !== v.frame) void this.show(index, frame);
  }

  async show(index: number, frameIndex: number): Promise<void> {
    const v = this.view;
    const medium = this.medium;
    if (!v || !medium) return;
    const token = ++this.loadToken;
    const ref: InstanceRef = v.series.instances[index];
    this.error(null);
    try {
      const opened = await medium.open(ref.fileId);
      if (token !== this.loadToken) return;
      const ds = parseFile(opened.bytes);
      this.showAttributes(ds, opened.integrity, ref);
      const info = imageInfo(ds);
      v.index = index;
      $<HTMLInputElement>("slider").value = String(index);
      if (ref.sopClassUid === SOP_ENCAPSULATED_PDF || (!info && ds.elements.x00420011)) {
        this.showDocument(ds);
        return;
      }
      $("pdf-box").hidden = true;
      if (!info) {
        this.clearImage();
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
      // Read the next file ahead so scrolling does not wait on decryption.
      const next = v.series.instances[index + 1];
      if (next) void medium.open(next.fileId).catch(() => undefined);
    } catch (err) {
      if (token !== this.loadToken) return;
      this.fail(err);
      this.overlay(`Instance ${index + 1}/${v.series.instances.length}: not shown`);
    }
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
    if (exposed.timings.submitToFirstImageMs < 0 && this.submittedAt) {
      exposed.timings.submitToFirstImageMs = performance.now() - this.submittedAt;
    }
    const w = v.decoded.kind === "grey" && !v.info.palette ? `  W ${round(v.window.width)} C ${round(v.window.center)}` : "";
    this.overlay(`Instance ${v.index + 1}/${v.series.instances.length}${v.frames > 1 ? `  Frame ${v.frame + 1}/${v.frames}` : ""}${w}`);
    this.setState("image");
  }

  overlay(text: string): void {
    $("overlay").textContent = text;
  }

  clearImage(): void {
    const canvas = $<HTMLCanvasElement>("image");
    canvas.width = 0;
    canvas.height = 0;
    canvas.removeAttribute("data-rendered");
    canvas.removeAttribute("data-sop");
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
    const mime = doc.mime.toLowerCase() === "application/pdf" ? "application/pdf" : "text/plain";
    this.pdfUrl = URL.createObjectURL(new Blob([doc.bytes as unknown as Uint8Array<ArrayBuffer>], { type: mime }));
    const frame = $<HTMLIFrameElement>("pdf");
    frame.src = this.pdfUrl;
    const link = $<HTMLAnchorElement>("pdf-link");
    link.href = this.pdfUrl;
    $("pdf-box").hidden = false;
    this.overlay(`Encapsulated document (${doc.mime}), ${doc.bytes.length} bytes`);
    this.setState("document");
  }

  showAttributes(ds: DataSet, integrity: string, ref: InstanceRef): void {
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
    const row = el("tr");
    row.append(el("th", {}, "Integrity"), el("td", { "data-testid": "integrity" }, integrity === "none" ? "not verified: the file carries no digest" : integrity));
    table.append(row);
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
