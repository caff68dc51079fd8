"""Our output against independent tools: dciodvfy, dcmftest, dcm2pdf, DCMTK's encapsulators and storescp."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import UID

from dcmseal.documents import DocumentKind, EncapsulatedInstance, PatientInfo, encapsulate
from tests.documents.samples import AUDIT, OPERATOR
from tests.documents.test_encapsulation import REQUIRED
from tests.peers.tools import require_tool, run_tool

ALL_KINDS = ["pdf", "pdf_odd", "cda", "stl", "stl_ascii", "obj", "obj_odd", "mtl"]
STL_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.3"


def _errors(output: bytes) -> list[str]:
    return [line for line in output.decode(errors="replace").splitlines() if line.startswith("Error -")]


def _dciodvfy(dciodvfy_bin: str, path: Path, kind: DocumentKind) -> list[str]:
    """dciodvfy's errors; OBJ and MTL (unknown to this dicom3tools) are checked under the STL IOD's rules.

    The Encapsulated OBJ and MTL IODs have the STL IOD's modules except that MTL has no Frame of Reference, and
    dciodvfy's STL rules accept only model/stl as MIME type; those expected differences are not errors.
    """
    result = run_tool([dciodvfy_bin, "-new", str(path)])
    output = result.stdout + result.stderr
    if kind not in (DocumentKind.OBJ, DocumentKind.MTL) or b"Information Object Not found" not in output:
        assert b"Encapsulated" in output
        return _errors(output)
    ds = dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(STL_SOP_CLASS)
    as_stl = path.with_name(path.stem + "_as_stl.dcm")
    ds.save_as(as_stl, enforce_file_format=True)
    result = run_tool([dciodvfy_bin, "-new", str(as_stl)])
    expected = ["MIMETypeOfEncapsulatedDocument(0042,0012)[1]> - Unrecognized enumerated value = <model/"]
    if kind is DocumentKind.MTL:
        expected += [
            "</FrameOfReferenceUID(0020,0052)> - Missing",
            "</PositionReferenceIndicator(0020,1040)> - Missing",
        ]
    return [e for e in _errors(result.stdout + result.stderr) if not any(x in e for x in expected)]


@pytest.mark.parametrize("name", ALL_KINDS)
def test_dciodvfy_and_dcmftest_accept_our_output(
    docs: dict[str, Path],
    patient: PatientInfo,
    tmp_path: Path,
    dciodvfy_bin: str,
    dcmftest_bin: str,
    name: str,
) -> None:
    mtl = docs["mtl"] if name.startswith("obj") else None
    result = encapsulate(
        docs[name], tmp_path / f"{name}.dcm", patient=patient, mtl_for_obj=mtl, audit=AUDIT, operator=OPERATOR
    )
    for instance in result.instances:
        assert _dciodvfy(dciodvfy_bin, instance.path, instance.kind) == [], instance.path
        tested = run_tool([dcmftest_bin, str(instance.path)])
        assert tested.returncode == 0, tested.stdout


def test_dcm2pdf_extracts_our_pdf_identically(
    docs: dict[str, Path], patient: PatientInfo, tmp_path: Path
) -> None:
    dcm2pdf = require_tool("dcm2pdf", "dcmtk")
    for name in ("pdf", "pdf_odd"):
        encapsulate(docs[name], tmp_path / f"{name}.dcm", patient=patient, audit=AUDIT, operator=OPERATOR)
        result = run_tool([dcm2pdf, str(tmp_path / f"{name}.dcm"), str(tmp_path / f"{name}.out.pdf")])
        assert result.returncode == 0, result.stderr
        assert (tmp_path / f"{name}.out.pdf").read_bytes() == docs[name].read_bytes()


@pytest.mark.parametrize(
    ("name", "tool", "extra"),
    [
        ("pdf", "pdf2dcm", ["--title", "T"]),
        ("pdf_odd", "pdf2dcm", []),
        ("cda", "cda2dcm", []),
        ("stl", "stl2dcm", ["--manufacturer", "M", "--manufacturer-model", "X", "--software-versions", "1"]),
    ],
)
def test_we_set_every_required_attribute_dcmtk_sets(
    docs: dict[str, Path],
    patient: PatientInfo,
    tmp_path: Path,
    dciodvfy_bin: str,
    name: str,
    tool: str,
    extra: list[str],
) -> None:
    binary = require_tool(tool, "dcmtk")
    reference = tmp_path / "dcmtk.dcm"
    args = [
        binary,
        *extra,
        "+pn",
        # cda2dcm compares names as written and reads the CDA's as Doe^Jane^^^ (all five components)
        patient.patient_name + ("^^^" if tool == "cda2dcm" else ""),
        "+pi",
        patient.patient_id,
        str(docs[name]),
        str(reference),
    ]
    result = run_tool(args)
    assert result.returncode == 0, result.stderr
    ours = encapsulate(
        docs[name], tmp_path / "ours.dcm", patient=patient, audit=AUDIT, operator=OPERATOR
    ).primary
    theirs_ds, ours_ds = dcmread(reference), dcmread(ours.path)
    required = REQUIRED[ours.kind]
    theirs_required = {k for k in theirs_ds.dir() if k in required}
    assert theirs_required <= set(ours_ds.dir())
    # Beyond the IOD's requirements, everything DCMTK writes at the top level we write too.
    assert set(theirs_ds.dir()) <= set(ours_ds.dir())
    for keyword in ("SOPClassUID", "Modality", "MIMETypeOfEncapsulatedDocument", "EncapsulatedDocumentLength",
                    "PatientID", "BurnedInAnnotation", "HL7InstanceIdentifier", "ConversionType"):  # fmt: skip
        assert theirs_ds.get(keyword) == ours_ds.get(keyword), keyword
    assert bytes(theirs_ds.EncapsulatedDocument) == bytes(ours_ds.EncapsulatedDocument)
    assert _dciodvfy(dciodvfy_bin, reference, ours.kind) == []


# --- C-STORE to DCMTK storescp ------------------------------------------------------------------------------------


def _dataset_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    assert data[132:136] == b"\x02\x00\x00\x00"
    group_length = int.from_bytes(data[140:144], "little")
    return data[144 + group_length :]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """DCMTK storescp on 127.0.0.1, a free port, a temp folder; stopped by PID."""
    binary = require_tool("storescp", "dcmtk")
    folder = tmp_path / "received"
    folder.mkdir()
    port = _free_port()
    # --promiscuous: accept every Storage SOP Class, including any this DCMTK release does not name.
    process = subprocess.Popen(
        [binary, "--promiscuous", "-od", str(folder), "+B", "--aetitle", "STORESCP", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("storescp did not start")
                time.sleep(0.05)
        yield port, folder
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_c_store_of_each_kind(
    docs: dict[str, Path], patient: PatientInfo, tmp_path: Path, storescp: tuple[int, Path]
) -> None:
    storescu = require_tool("storescu", "dcmtk")
    port, received = storescp
    sent = tmp_path / "sent"
    sent.mkdir()
    instances: list[EncapsulatedInstance] = []
    for name in ("pdf_odd", "cda", "stl", "obj"):
        mtl = docs["mtl"] if name == "obj" else None
        instances += encapsulate(
            docs[name], sent / f"{name}.dcm", patient=patient, mtl_for_obj=mtl, audit=AUDIT, operator=OPERATOR
        ).instances
    assert {i.kind for i in instances} == set(DocumentKind)
    result = run_tool(
        [storescu, "-R", "-aec", "STORESCP", "127.0.0.1", str(port), *(str(i.path) for i in instances)]
    )
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 10
    while len(list(received.iterdir())) < len(instances) and time.monotonic() < deadline:
        time.sleep(0.05)
    by_uid = {dcmread(f).SOPInstanceUID: f for f in received.iterdir()}
    for instance in instances:
        got = by_uid[instance.sop_instance_uid]
        # Bit-preserving mode (+B): the data set after the File Meta Information arrives byte for byte.
        assert _dataset_bytes(got) == _dataset_bytes(instance.path)
    shutil.rmtree(received)
