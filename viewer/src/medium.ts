/**
 * The medium as the browser sees it: the files the user chose (folder picker or drag-and-drop), indexed by
 * File ID, and opened (decrypted and verified when they are Secure DICOM Files) on demand.
 */
import {
  DAMAGED_PREFIX, DecryptionError, IntegrityError, KeyKindError, KeyRing, LimitError, isEnvelope, openSecureFile, parseEnvelope,
} from "./cms";
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
  /** False only for a file without digest or signature the user chose to see. */
  readonly verified: boolean;
}

export class MediumError extends Error {
  override name = "MediumError";
}

/** ISO 9660 names reach the browser as "CT000001", "CT000001.", "ct000001" or "CT000001.;1" depending on the OS. */
export function normalise(component: string): string {
  return component.replace(/;\d+$/, "").replace(/\.$/, "").toUpperCase();
}

/** What dcmseal burns beside the File-set (the viewer itself and README.TXT): never DICOM, never counted. */
const OWN_FILES = new Set(["INDEX.HTM", "README.TXT", "AUTORUN.INF"]);
const OWN_FOLDER = "VIEWER";

/** How many files the recipient check may try when the DICOMDIR refuses the key (its key block may be damaged). */
const KEY_CHECK_FILES = 3;

export type KeyCheck = "ok" | "wrong-key";

export class Medium {
  private readonly files = new Map<string, File>();
  private readonly cache = new Map<string, Promise<OpenedFile>>();
  private readonly sizes = new Map<string, number>();
  private readonly order: string[] = [];
  keys: KeyRing | undefined;
  /** Set when the user chose to see files that carry no digest or signature (marked NOT verified). */
  acceptUnprotected = false;
  readonly dicomdir: File | undefined;

  constructor(sources: readonly Source[]) {
    // The DICOMDIR nearest the top is the medium's root: the user may choose the disc or a folder above it.
    // Without one (lost or unreadable), the folder of INDEX.HTM is, and the files are read one by one.
    const nearest = (name: string): { depth: number; root: string[]; file: File } | undefined => {
      let best: { depth: number; root: string[]; file: File } | undefined;
      for (const s of sources) {
        const parts = s.path.split("/").filter(Boolean);
        if (parts.length && normalise(parts[parts.length - 1]) === name && (!best || parts.length - 1 < best.depth)) {
          best = { depth: parts.length - 1, root: parts.slice(0, -1), file: s.file };
        }
      }
      return best;
    };
    const best = nearest("DICOMDIR") ?? nearest("INDEX.HTM");
    if (!best) throw new MediumError("no DICOMDIR in the chosen folder: choose the top folder of the disc (where INDEX.HTM is)");
    this.dicomdir = normalise(best.file.name) === "DICOMDIR" ? best.file : undefined;
    const rootKey = best.root.map(normalise).join("/");
    for (const s of sources) {
      const parts = s.path.split("/").filter(Boolean).map(normalise);
      const head = parts.slice(0, best.depth).join("/");
      if (head !== rootKey) continue;
      this.files.set(parts.slice(best.depth).join("/"), s.file);
    }
  }

  /** The File-set's files (DICOMDIR included): what the user calls the medium's files, without the viewer's own. */
  fileSet(): string[] {
    return [...this.files.keys()].filter((k) => !OWN_FILES.has(k) && k.split("/")[0] !== OWN_FOLDER);
  }

  get fileCount(): number {
    return this.fileSet().length;
  }

  /** Whether the medium is encrypted: by the DICOMDIR, else by the first File-set file that is either kind. */
  async kind(): Promise<"secure" | "plain"> {
    const candidates = [...(this.dicomdir ? ["DICOMDIR"] : []), ...this.fileSet().filter((k) => k !== "DICOMDIR")];
    for (const key of candidates.slice(0, 16)) {
      const file = this.files.get(key) as File;
      const head = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
      if (isPart10(head)) return "plain";
      if (isEnvelope(head)) return "secure";
    }
    throw new MediumError("no DICOM file and no Secure DICOM File in the chosen folder");
  }

  file(fileId: readonly string[]): File | undefined {
    return this.files.get(fileId.map(normalise).join("/"));
  }

  /**
   * Whether the key opens the medium, decided by the recipient check alone (the KEK unwrap and RFC 3211's
   * check bytes, or RSA's padding): never by one file's content. The DICOMDIR's recipients are checked first;
   * if they refuse, a few other files are asked too, so a DICOMDIR whose key block is damaged does not turn a
   * right password into "wrong password". Throws KeyKindError for a key of the wrong kind.
   */
  async checkKey(): Promise<KeyCheck> {
    const keys = this.keys;
    if (!keys) throw new MediumError("no key given");
    const order = [...(this.dicomdir ? ["DICOMDIR"] : []), ...this.fileSet().filter((k) => k !== "DICOMDIR")];
    let refused = 0;
    let kindError: unknown;
    for (const key of order) {
      if (refused >= KEY_CHECK_FILES) break;
      const bytes = new Uint8Array(await (this.files.get(key) as File).arrayBuffer());
      let envelope;
      try {
        if (!isEnvelope(bytes)) continue;
        envelope = parseEnvelope(bytes);
      } catch {
        continue; // a damaged envelope says nothing about the key
      }
      try {
        await keys.cek(envelope);
        return "ok";
      } catch (err) {
        if (err instanceof DecryptionError) refused += 1;
        else if (err instanceof KeyKindError) {
          kindError ??= err;
          refused += 1;
        } else if (!(err instanceof LimitError)) throw err;
      }
    }
    if (kindError) throw kindError;
    if (!refused) throw new MediumError("no file of the medium has a readable envelope: the medium is damaged");
    return "wrong-key";
  }

  /** Read, decrypt and verify one file; results are cached (a few dozen files) so scrolling back is quick. */
  open(fileId: readonly string[] | "DICOMDIR"): Promise<OpenedFile> {
    const key = fileId === "DICOMDIR" ? "DICOMDIR" : fileId.map(normalise).join("/");
    let pending = this.cache.get(key);
    if (!pending) {
      const file = fileId === "DICOMDIR" ? this.dicomdir : this.file(fileId);
      if (!file) {
        return Promise.reject(new MediumError(fileId === "DICOMDIR" ? "the medium has no DICOMDIR" : `${key} is listed in the DICOMDIR but is not on the medium`));
      }
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

  /** Drop what was cached (after the user chose to see unprotected files, say). */
  forget(): void {
    this.cache.clear();
    this.sizes.clear();
    this.order.length = 0;
  }

  /**
   * Keep at most 24 files and about 256 MB of decrypted data (multi-frame files can be large): enough to
   * scroll back without decrypting again, small enough to keep the renderer of a 300-slice CT under 300 MB
   * (tests/viewer/test_viewer_bench.py: 48 files cost it about 45 MB more).
   */
  private evict(): void {
    let total = 0;
    for (const size of this.sizes.values()) total += size;
    while (this.order.length > 1 && (this.order.length > 24 || total > 256e6)) {
      const key = this.order.shift() as string;
      this.cache.delete(key);
      total -= this.sizes.get(key) ?? 0;
      this.sizes.delete(key);
    }
  }

  private async read(file: File): Promise<OpenedFile> {
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (isPart10(bytes)) return { bytes, integrity: "not encrypted", encrypted: false, verified: false };
    if (!isEnvelope(bytes)) throw new IntegrityError(`${DAMAGED_PREFIX}neither a DICOM file nor a Secure DICOM File`);
    if (!this.keys) throw new MediumError("this file is encrypted: give the password first");
    const opened = await openSecureFile(bytes, this.keys, this.acceptUnprotected);
    return { bytes: opened.payload, integrity: opened.integrity, encrypted: true, verified: opened.verified };
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
