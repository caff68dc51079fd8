/**
 * The medium as the browser sees it: the files the user chose (folder picker or drag-and-drop), indexed by
 * File ID, and opened (decrypted and verified when they are Secure DICOM Files) on demand.
 */
import { IntegrityError, KeyRing, isEnvelope, openSecureFile } from "./cms";
import { isPart10 } from "./dicom";

export interface Source {
  /** Path relative to what the user chose, "/"-separated. */
  readonly path: string;
  readonly file: File;
}

export interface OpenedFile {
  readonly bytes: Uint8Array;
  readonly integrity: string;
  readonly encrypted: boolean;
}

export class MediumError extends Error {
  override name = "MediumError";
}

/** ISO 9660 names reach the browser as "CT000001", "CT000001.", "ct000001" or "CT000001.;1" depending on the OS. */
export function normalise(component: string): string {
  return component.replace(/;\d+$/, "").replace(/\.$/, "").toUpperCase();
}

export class Medium {
  private readonly files = new Map<string, File>();
  private readonly cache = new Map<string, Promise<OpenedFile>>();
  private readonly sizes = new Map<string, number>();
  private readonly order: string[] = [];
  keys: KeyRing | undefined;
  readonly dicomdir: File;

  constructor(sources: readonly Source[]) {
    // The DICOMDIR nearest the top is the medium's root: the user may choose the disc or a folder above it.
    let best: { depth: number; root: string[]; file: File } | undefined;
    for (const s of sources) {
      const parts = s.path.split("/").filter(Boolean);
      if (parts.length && normalise(parts[parts.length - 1]) === "DICOMDIR" && (!best || parts.length - 1 < best.depth)) {
        best = { depth: parts.length - 1, root: parts.slice(0, -1), file: s.file };
      }
    }
    if (!best) throw new MediumError("no DICOMDIR in the chosen folder: choose the top folder of the disc (where INDEX.HTM is)");
    this.dicomdir = best.file;
    const rootKey = best.root.map(normalise).join("/");
    for (const s of sources) {
      const parts = s.path.split("/").filter(Boolean).map(normalise);
      const head = parts.slice(0, best.depth).join("/");
      if (head !== rootKey) continue;
      this.files.set(parts.slice(best.depth).join("/"), s.file);
    }
  }

  get fileCount(): number {
    return this.files.size;
  }

  async dicomdirKind(): Promise<"secure" | "plain"> {
    const head = new Uint8Array(await this.dicomdir.slice(0, 4096).arrayBuffer());
    if (isPart10(head)) return "plain";
    const all = new Uint8Array(await this.dicomdir.arrayBuffer());
    if (isEnvelope(all)) return "secure";
    throw new MediumError("DICOMDIR is neither a DICOM file nor a Secure DICOM File");
  }

  file(fileId: readonly string[]): File | undefined {
    return this.files.get(fileId.map(normalise).join("/"));
  }

  /** Read, decrypt and verify one file; results are cached (a few dozen files) so scrolling back is quick. */
  open(fileId: readonly string[] | "DICOMDIR"): Promise<OpenedFile> {
    const key = fileId === "DICOMDIR" ? "DICOMDIR" : fileId.map(normalise).join("/");
    let pending = this.cache.get(key);
    if (!pending) {
      const file = fileId === "DICOMDIR" ? this.dicomdir : this.file(fileId);
      if (!file) return Promise.reject(new MediumError(`${key} is listed in the DICOMDIR but is not on the medium`));
      pending = this.read(file);
      this.cache.set(key, pending);
      this.order.push(key);
      pending.then(
        (opened) => {
          this.sizes.set(key, opened.bytes.length);
          this.evict();
        },
        () => this.cache.delete(key),
      );
      this.evict();
    }
    return pending;
  }

  /** Keep at most 48 files and about 512 MB of decrypted data (multi-frame files can be large). */
  private evict(): void {
    let total = 0;
    for (const size of this.sizes.values()) total += size;
    while (this.order.length > 1 && (this.order.length > 48 || total > 512e6)) {
      const key = this.order.shift() as string;
      this.cache.delete(key);
      total -= this.sizes.get(key) ?? 0;
      this.sizes.delete(key);
    }
  }

  private async read(file: File): Promise<OpenedFile> {
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (isPart10(bytes)) return { bytes, integrity: "not encrypted", encrypted: false };
    if (!isEnvelope(bytes)) throw new IntegrityError(`${file.name}: neither a DICOM file nor a Secure DICOM File`);
    if (!this.keys) throw new MediumError("this file is encrypted: give the password first");
    const opened = await openSecureFile(bytes, this.keys);
    return { bytes: opened.payload, integrity: opened.integrity, encrypted: true };
  }
}

/** The files of an <input webkitdirectory>. */
export function fromInput(list: FileList): Source[] {
  return Array.from(list, (file) => ({ path: (file as File & { webkitRelativePath: string }).webkitRelativePath || file.name, file }));
}

/** The files of a drag-and-drop, folders walked with the File and Directory Entries API. */
export async function fromDrop(items: DataTransferItemList): Promise<Source[]> {
  const out: Source[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((ok, ko) => (entry as FileSystemFileEntry).file(ok, ko));
      out.push({ path: prefix + entry.name, file });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((ok, ko) => reader.readEntries(ok, ko));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  const entries = Array.from(items, (i) => i.webkitGetAsEntry()).filter((e): e is FileSystemEntry => e !== null);
  for (const e of entries) await walk(e, "");
  return out;
}
