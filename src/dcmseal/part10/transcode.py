"""Lossless conversion of a PS3.10 file to a transfer syntax its reader allows (Explicit VR Little Endian); never lossy."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian

from dcmseal.errors import NotPart10Error, UnsupportedAlgorithmError
from dcmseal.fsutil import CHUNK_SIZE_BYTES, atomic_write, make_dirs, try_hard_link
from dcmseal.part10.fileformat import ZERO_PREAMBLE, read_file_meta
from dcmseal.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = [
    "ALWAYS_LOSSY",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "MAYBE_LOSSY",
    "ConformResult",
    "conform",
]

logger = logging.getLogger(__name__)


# Transfer syntaxes whose codestreams are lossy by construction (the DCT processes of JPEG).
ALWAYS_LOSSY = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
        "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    }
)
# Transfer syntaxes that may or may not have lost information; an explicit (0028,2110) "00" is trusted.
MAYBE_LOSSY = frozenset(
    {
        "1.2.840.10008.1.2.4.81",  # JPEG-LS Lossy (Near-Lossless)
        "1.2.840.10008.1.2.4.91",  # JPEG 2000 (reversible or irreversible)
        "1.2.840.10008.1.2.4.92",  # JPEG 2000 Part 2 Multi-component
        "1.2.840.10008.1.2.4.203",  # HTJ2K
    }
)
# PS3.3 C.7.6.1.1.5.1, Defined Terms of (0028,2114) Lossy Image Compression Method.
_LOSSY_METHOD = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.92": "ISO_15444_1",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",
}
# Binary VRs whose values pydicom leaves in the file's byte order (pydicom.filewriter.dcmwrite, "Encoding").
_SWAP_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_DECODE_ERRORS = (RuntimeError, ValueError, NotImplementedError, AttributeError, KeyError)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConformResult:
    """What :func:`conform` did to one file."""

    source: Path
    destination: Path
    converted: bool
    from_ts: str
    to_ts: str
    reason: str
    #: The Pixel Data came from a lossy codestream; (0028,2110) Lossy Image Compression is "01" in the output.
    decoded_lossy: bool = False

    def to_json(self) -> dict[str, object]:
        """The result as JSON-ready values (paths as strings)."""
        return {
            "source": str(self.source),
            "destination": str(self.destination),
            "converted": self.converted,
            "from_ts": self.from_ts,
            "to_ts": self.to_ts,
            "reason": self.reason,
            "decoded_lossy": self.decoded_lossy,
        }


def conform(
    src: Path,
    dst: Path,
    *,
    allowed: Collection[str],
    allowed_by: str,
    overwrite: bool = False,
    durable: bool = True,
    link: bool = False,
) -> ConformResult:
    """Write ``src`` to ``dst`` in a transfer syntax among ``allowed``, losing nothing.

    A file whose transfer syntax is allowed (a profile's, PS3.11 Tables D.3-1, H.3-1, J.3-1) is copied byte for
    byte. Any other file is rewritten in Explicit VR Little Endian: implicit VR, big endian and deflated data
    sets are re-encoded, compressed Pixel Data is decoded (pydicom with the pylibjpeg/openjpeg plugins). Nothing
    is ever encoded lossily. Decoding a lossy codestream adds no loss, but the output then says so: (0028,2110)
    Lossy Image Compression is set to "01" and Lossy Image Compression Ratio/Method are kept (added from this
    codestream when neither is present). A rewritten file keeps its SOP Instance UID, gets a zero preamble and
    dcmseal's Implementation Class UID and Version Name (PS3.10 §7.1).

    Parameters
    ----------
    src : Path
        A PS3.10 file; never modified.
    dst : Path
        Where the conformed file goes; written atomically.
    allowed : Collection[str]
        The transfer syntaxes the output may use (Explicit VR Little Endian is the one a rewrite uses).
    allowed_by : str
        Who allows them, for the result's reason (a profile's name, "the import").
    overwrite : bool
        Replace an existing ``dst``.
    durable : bool
        Fsync ``dst`` (false for scratch copies in a staging folder).
    link : bool
        A file kept byte for byte becomes a hard link to ``src`` where the file system allows one (else a
        copy): the caller promises never to write to ``dst``, which would change ``src``.

    Returns
    -------
    ConformResult

    Raises
    ------
    NotPart10Error
        ``src`` is not a PS3.10 file, or its data set does not parse.
    UnsupportedAlgorithmError
        The Pixel Data cannot be decoded (no decoder or plugin for the transfer syntax, or the codestream is
        refused), or a big endian value of unknown structure (VR UN) cannot be byte-swapped.
    FileExistsError
        ``dst`` exists and ``overwrite`` is false.
    ValueError
        ``src`` and ``dst`` are the same file.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() and src.resolve() == dst.resolve():
        raise ValueError(f"{src}: source and destination are the same file")
    meta = read_file_meta(src)
    from_ts = UID(meta.transfer_syntax_uid)
    if str(from_ts) in allowed:
        if not (link and _hard_link(src, dst, overwrite=overwrite)):
            with open(src, "rb") as fin, atomic_write(dst, overwrite=overwrite, durable=durable) as out:
                shutil.copyfileobj(fin, out, CHUNK_SIZE_BYTES)
        logger.info("%s: %s kept (%s)", src, from_ts.name, meta.sop_instance_uid)
        return ConformResult(
            source=src,
            destination=dst,
            converted=False,
            from_ts=str(from_ts),
            to_ts=str(from_ts),
            reason=f"{from_ts.name} is allowed by {allowed_by}",
        )

    ds = _read(src)
    if from_ts.is_compressed and "PixelData" in ds:
        decoded_lossy = _decode(src, ds, from_ts)
        how = "decoded to Explicit VR Little Endian"
        if decoded_lossy:
            how += " (the source was lossy: Lossy Image Compression is 01; decoding adds no loss)"
    else:
        decoded_lossy = False
        if not from_ts.is_little_endian:
            _swap_to_little_endian(src, ds)
        how = "re-encoded as Explicit VR Little Endian"
    dataset_uid = str(ds.get("SOPInstanceUID", "") or "")
    if dataset_uid and dataset_uid != meta.sop_instance_uid:
        # pydicom's writer makes (0002,0003) equal (0008,0018), as PS3.10 §7.1 has it; the data set is the instance.
        logger.warning(
            "%s: File Meta SOP Instance UID differs from the data set's; using %s", src, dataset_uid
        )
        how += "; Media Storage SOP Instance UID set to the data set's SOP Instance UID"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.preamble = ZERO_PREAMBLE
    with atomic_write(dst, overwrite=overwrite, durable=durable) as out:
        dcmwrite(out, ds, enforce_file_format=True)
    logger.info("%s: %s %s (%s)", src, from_ts.name, how, meta.sop_instance_uid)
    return ConformResult(
        source=src,
        destination=dst,
        converted=True,
        from_ts=str(from_ts),
        to_ts=str(ExplicitVRLittleEndian),
        reason=f"{from_ts.name} is not allowed by {allowed_by}; {how}",
        decoded_lossy=decoded_lossy,
    )


def _hard_link(src: Path, dst: Path, *, overwrite: bool) -> bool:
    """Link ``dst`` to ``src`` (atomic, no bytes copied); false where the file system cannot, e.g. another device."""
    if dst.exists():
        if not overwrite:
            raise FileExistsError(str(dst))
        return False  # replacing goes through atomic_write, which renames over dst
    make_dirs(dst.parent)
    return try_hard_link(src, dst)


def _read(src: Path) -> FileDataset:
    try:
        return dcmread(src)
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError) as exc:
        raise NotPart10Error(f"the data set does not parse: {exc}", path=src) from exc


def _decode(src: Path, ds: Dataset, ts: UID) -> bool:
    """Decode the Pixel Data in place to native Explicit VR Little Endian; return whether it was lossy."""
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise UnsupportedAlgorithmError(
            f"cannot decode {ts.name} ({ts}): no decoder for this transfer syntax", path=src
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise UnsupportedAlgorithmError(
            f"cannot decode {ts.name} ({ts}): no decoding plugin installed ({missing})", path=src
        )
    lossy = _is_lossy(ds, ts)
    compressed_length = len(ds.PixelData)
    try:
        # as_rgb=False: keep the colour space the codec yields (a YCbCr -> RGB conversion of lossless data would
        # round); generate_instance_uid=False: a change of transfer syntax is the same SOP Instance (PS3.5 §10).
        ds.decompress(as_rgb=False, generate_instance_uid=False)
    except _DECODE_ERRORS as exc:
        raise UnsupportedAlgorithmError(f"cannot decode {ts.name} ({ts}): {exc}", path=src) from exc
    _fix_ybr_full_422(ds)
    if lossy:
        _mark_lossy(ds, ts, compressed_length)
    return lossy


def _is_lossy(ds: Dataset, ts: UID) -> bool:
    """Whether the decoded Pixel Data must be flagged as having been through lossy compression."""
    declared = str(ds.get("LossyImageCompression", "") or "").strip()
    if declared == "01" or ts in ALWAYS_LOSSY:
        return True
    # A syntax that can be either way counts as lossy unless its creator stated "00" (PS3.3 C.7.6.1.1.5).
    return ts in MAYBE_LOSSY and declared != "00"


def _mark_lossy(ds: Dataset, ts: UID, compressed_length: int) -> None:
    ds.LossyImageCompression = "01"
    if "LossyImageCompressionRatio" in ds or "LossyImageCompressionMethod" in ds:
        return  # an earlier history is recorded; keep it as it is
    method = _LOSSY_METHOD.get(str(ts))
    if method is None or compressed_length == 0:
        return
    ds.LossyImageCompressionRatio = f"{len(ds.PixelData) / compressed_length:.2f}"
    ds.LossyImageCompressionMethod = method


def _fix_ybr_full_422(ds: Dataset) -> None:
    """Name decoded YBR_FULL_422 data for what it is (pydicom 3.0 keeps the subsampled name).

    The decoders return one Y, Cb and Cr sample per pixel, which is YBR_FULL in native encoding; uncompressed
    YBR_FULL_422 would have to be subsampled (PS3.3 C.7.6.3.1.2).
    """
    if ds.get("PhotometricInterpretation") != "YBR_FULL_422":
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    full = ds.Rows * ds.Columns * ds.SamplesPerPixel * frames * ((ds.BitsAllocated + 7) // 8)
    if len(ds.PixelData) in (full, full + 1):
        ds.PhotometricInterpretation = "YBR_FULL"


def _swap_to_little_endian(src: Path, ds: Dataset) -> None:
    """Byte-swap the binary values pydicom leaves in big endian order, recursively."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _swap_to_little_endian(src, item)
            continue
        value = elem.value
        if value is None or not isinstance(value, bytes | bytearray) or len(value) == 0:
            continue
        width = _SWAP_WIDTH.get(str(elem.VR))
        if width is None:
            if elem.VR == "UN":
                raise UnsupportedAlgorithmError(
                    f"cannot convert big endian {elem.tag} with VR UN to little endian: its structure is unknown",
                    path=src,
                )
            continue
        if len(value) % width:
            raise UnsupportedAlgorithmError(
                f"cannot byte-swap {elem.tag} ({elem.VR}): length {len(value)} is not a multiple of {width}",
                path=src,
            )
        elem.value = np.frombuffer(value, dtype=f">u{width}").astype(f"<u{width}").tobytes()
