"""Every foreign medium of the corpus through ``import`` into a real Orthanc, over C-STORE and STOW-RS.

The corpus (:mod:`tests.foreign.corpus`) says where ``open`` puts each file of each medium; the import must
account for the same files and end each in the matching place: what open copies is stored (sanitized first
when the scan asks for it), what open quarantines or leaves out is never sent, and Orthanc then holds exactly
the instances the medium should give, never one it should not (the polyglot, a file a link points at).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dcmseal.audit import FileSink
from dcmseal.importer.pipeline import ImportResult, import_medium
from tests.foreign.corpus import OPENABLE, ForeignMedium
from tests.importer.conftest import dimse_target, import_request, stow_target
from tests.peers.orthanc import OrthancPeer

#: Real peers: Orthanc; the corpus is made with DCMTK, genisoimage and udftools (a UDF-only image is read with 7z).
pytestmark = [pytest.mark.interop, pytest.mark.slow]

#: Where open puts a file -> the outcomes the import may give it. What open quarantines (a polyglot, data
#: appended to a data set) the import sanitizes when the sanitizer can make it safe, and sends only then
#: (test_import_orthanc: the polyglot reaches the PACS only sanitized); else it quarantines it too.
OUTCOMES = {
    "copied": {"stored", "sanitized then stored"},
    "opened": {"stored", "sanitized then stored"},
    "quarantined": {"quarantined", "sanitized then stored"},
    "skipped": {"skipped", "not DICOM"},
    "failed": {"failed", "quarantined"},
}


def _import(tmp_path: Path, medium: ForeignMedium, peer: OrthancPeer, protocol: str) -> ImportResult:
    target = dimse_target(peer) if protocol == "C-STORE" else stow_target(peer)
    request = import_request(tmp_path, medium.path, target)
    return import_medium(request, audit=FileSink(tmp_path / "audit.log"))


@pytest.mark.parametrize("protocol", ["C-STORE", "STOW-RS"])
@pytest.mark.parametrize("name", OPENABLE)
def test_every_file_of_a_foreign_medium_ends_where_open_puts_it_and_the_pacs_holds_its_instances(
    tmp_path: Path, orthanc: OrthancPeer, foreign_corpus: dict[str, ForeignMedium], name: str, protocol: str
) -> None:
    medium = foreign_corpus[name]

    result = _import(tmp_path, medium, orthanc, protocol)

    ended = {f.path: f for f in result.files}
    expected = medium.expected
    assert set(ended) == set(expected)  # every file of the medium, once (a Rock Ridge link too)
    wrong = [
        (path, status, ended[path].outcome, ended[path].reason)
        for path, status in expected.items()
        if ended[path].outcome not in OUTCOMES[status]
        # open puts the DICOMDIR in its File-set; the import never sends it (not an instance)
        and not (Path(path).name.upper() == "DICOMDIR" and ended[path].outcome == "skipped")
    ]
    assert wrong == []
    for f in result.files:
        assert f.reason is not None, f.path
        assert len(f.reason.splitlines()) == 1, (f.path, f.reason)
        assert "Traceback" not in f.reason
    assert result.peer_error is None
    sanitized = {f.sent_sop_instance_uid for f in result.files if f.outcome == "sanitized then stored"}
    held = orthanc.sop_instance_uids()
    assert held == medium.instances | sanitized
    assert not held & (medium.excluded - sanitized)  # never what a link points at, outside the medium
