"""Make the dcmseal-written vectors of the viewer's unit tests: `.venv/bin/python viewer/test/make_vectors.py`.

`make_vectors.py envelopes` or `make_vectors.py codecs`. Run once; the outputs are committed (random CEKs and IVs, so a rerun gives other bytes and a new SHA256SUMS).
"""
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from dcmseal import cms
from dcmseal.part10.secure import seal_file

V = Path(__file__).resolve().parent / "vectors"

CODEC_SAMPLES = [
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_jls_lossy_line.dcm",
    "SC_rgb_gdcm_KY.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "JPEG-lossy.dcm",
]


def envelopes() -> None:
    src = V / "synthetic.dcm"
    pw = b"Test-Passw0rd!"
    key = serialization.load_pem_private_key((V / "testonly-rsa2048-key.pem").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((V / "testonly-rsa2048-cert.pem").read_bytes())
    def pwr(salt=b"0123456789abcdef"):
        return cms.PasswordRecipient(password=pw, kdf=cms.Pbkdf2Params(salt=salt, iterations=1000, prf=cms.Prf.SHA256))
    for name, kw in {
        "dcmseal-pwri-aes256-sha256.p7m": dict(recipients=[pwr()]),
        "dcmseal-pwri-aes128.p7m": dict(recipients=[pwr()], cipher=cms.ContentCipher.AES128_CBC),
        "dcmseal-pwri-aes192.p7m": dict(recipients=[pwr()], cipher=cms.ContentCipher.AES192_CBC),
        "dcmseal-ktri-pwri-signed.p7m": dict(recipients=[cms.CertificateRecipient(certificate=cert), pwr()],
                                              signer=cms.SignedContent(private_key=key, certificate=cert)),
    }.items():
        out = V / name
        out.unlink(missing_ok=True)
        seal_file(src, out, recipients=kw.pop("recipients"), **kw)
        print(name, out.stat().st_size)
    out = V / "dcmseal-ktri-oaep.p7m"
    out.unlink(missing_ok=True)
    seal_file(src, out, recipients=[cms.CertificateRecipient(certificate=cert, key_transport=cms.KeyTransport.RSA_OAEP)])
    print(out.name, out.stat().st_size)


def codecs() -> None:
    """Copy pydicom's small compressed samples and record the SHA-256 of their pixels as pydicom decodes them."""
    import hashlib
    import json
    import shutil

    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file

    refs = {}
    for name in CODEC_SAMPLES:
        src = Path(get_testdata_file(name))
        shutil.copyfile(src, V / name)
        ds = pydicom.dcmread(src)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        entry = {"transfer_syntax": str(ds.file_meta.TransferSyntaxUID), "frames": frames}
        try:
            arr = ds.pixel_array
        except Exception as exc:  # the 12-bit JPEG: pydicom's plugins fail; DCMTK's dcmdjpeg is the reference
            import gzip
            import subprocess
            import tempfile

            entry["error"] = str(exc)
            refs[name] = entry
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run(["dcmdjpeg", str(src), f"{tmp}/d.dcm"], check=True)
                raw = pydicom.dcmread(f"{tmp}/d.dcm").pixel_array.astype("<u2").tobytes()
            (V / name.replace(".dcm", ".dcmdjpeg.u16.gz")).write_bytes(gzip.compress(raw, mtime=0))
            continue
        first = arr[0] if frames > 1 else arr
        if ds.SamplesPerPixel == 1:
            entry["grey_int32_sha256"] = hashlib.sha256(first.astype("<i4").tobytes()).hexdigest()
        else:
            entry["rgb_sha256"] = hashlib.sha256(np.ascontiguousarray(first, dtype=np.uint8).tobytes()).hexdigest()
        refs[name] = entry
    (V / "codecs.json").write_text(json.dumps(refs, indent=1) + "\n")
    print(json.dumps(refs, indent=1))


if __name__ == "__main__":
    import sys

    {"envelopes": envelopes, "codecs": codecs}[sys.argv[1] if len(sys.argv) > 1 else "envelopes"]()
