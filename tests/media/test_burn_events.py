"""burn and rekey tell their handlers (dcmseal.events) each stage's progress and each file sealed."""

from __future__ import annotations

from pathlib import Path

from dcmseal.audit import FileSink
from dcmseal.events import Event, FileSealed, HandlerSpec, Progress
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, burn
from dcmseal.media.rekey import RekeyRequest, rekey
from dcmseal.part10 import is_secure_file
from tests.media.conftest import MediaEscrow, medium_files, write_series
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD


class Recorder:
    """Every event a workflow emitted, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    @property
    def handlers(self) -> list[HandlerSpec]:
        return [(Event, self.events.append)]

    def sealed(self) -> list[FileSealed]:
        return [e for e in self.events if isinstance(e, FileSealed)]

    def last_progress(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for event in self.events:
            if isinstance(event, Progress):
                found[event.stage] = (event.done, event.total)
        return found


def _request(sources: list[Path], out: Path, escrow: MediaEscrow, **options: object) -> BurnRequest:
    return BurnRequest(
        sources=tuple(str(s) for s in sources),
        out=out,
        operator="events-tester",
        password=PASSWORD.encode(),
        escrow_certificate=escrow.certificate,
        iterations=FAST_ITERATIONS,
        viewer=False,
        **options,  # type: ignore[arg-type]
    )


def test_a_folder_burn_tells_each_file_sealed_and_where_it_is(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    sources = write_series(tmp_path / "src", 4)
    recorder = Recorder()
    out = tmp_path / "medium"
    result = burn(
        _request(sources, out, media_escrow, output_format="dir"),
        registry=registry,
        audit=FileSink(tmp_path / "audit.log"),
        handlers=recorder.handlers,
    )

    sealed = recorder.sealed()
    assert len(sealed) == len(result.files) + 1  # every instance, and the DICOMDIR
    # Each names the user's own file (not a staged copy) and the Secure DICOM File it became on the medium.
    assert {e.path for e in sealed} - {e.path for e in sealed if e.path.name == "DICOMDIR"} == set(sources)
    outputs = {e.output for e in sealed}
    on_medium = {p for p in medium_files(out) if p.name != "README.TXT"}
    assert outputs == on_medium
    assert all(is_secure_file(p) for p in on_medium)
    files = len(result.files) + 1
    progress = recorder.last_progress()
    assert progress["seal"] == (files, files)
    assert progress["conform"][1] == len(sources)
    assert {"collect", "conform", "seal"} <= set(progress)  # a folder is placed in one rename: no "write"


def test_an_image_burn_tells_each_file_sealed_into_the_image(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    sources = write_series(tmp_path / "src", 3)
    recorder = Recorder()
    image = tmp_path / "m.iso"
    result = burn(
        _request(sources, image, media_escrow),
        registry=registry,
        audit=FileSink(tmp_path / "audit.log"),
        handlers=recorder.handlers,
    )

    sealed = recorder.sealed()
    assert len(sealed) == len(result.files) + 1
    assert {e.output for e in sealed} == {image}
    assert {e.path for e in sealed if e.path.name != "DICOMDIR"} == set(sources)
    assert "write" in recorder.last_progress()


def test_a_plain_burn_seals_nothing_and_still_counts_its_files(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    sources = write_series(tmp_path / "src", 2)
    recorder = Recorder()
    request = BurnRequest(
        sources=tuple(str(s) for s in sources),
        out=tmp_path / "plain",
        operator="events-tester",
        output_format="dir",
        encrypt=False,
        viewer=False,
    )
    result = burn(
        request, registry=registry, audit=FileSink(tmp_path / "audit.log"), handlers=recorder.handlers
    )

    assert recorder.sealed() == []
    assert recorder.last_progress()["seal"] == (len(result.files) + 1, len(result.files) + 1)


def test_a_failing_handler_does_not_stop_the_burn(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    sources = write_series(tmp_path / "src", 2)
    calls: list[Event] = []

    def broken(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("a broken progress bar")

    result = burn(
        _request(sources, tmp_path / "m", media_escrow, output_format="dir"),
        registry=registry,
        audit=FileSink(tmp_path / "audit.log"),
        handlers=[(Event, broken)],
    )
    assert len(result.files) == 2
    assert sum(isinstance(e, FileSealed) for e in calls) == 3


def test_rekey_tells_each_file_readdressed(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    sources = write_series(tmp_path / "src", 3)
    first = tmp_path / "first"
    burned = burn(
        _request(sources, first, media_escrow, output_format="dir"),
        registry=registry,
        audit=FileSink(tmp_path / "audit.log"),
    )
    recorder = Recorder()
    out = tmp_path / "second"
    rekey(
        RekeyRequest(
            medium=first,
            out=out,
            operator="events-tester",
            passwords=(PASSWORD.encode(),),
            new_password=b"Harbor-lichen-Copper-saddle-whistle",
            escrow_certificate=media_escrow.certificate,
            iterations=FAST_ITERATIONS,
        ),
        registry=registry,
        audit=FileSink(tmp_path / "audit.log"),
        handlers=recorder.handlers,
    )

    sealed = recorder.sealed()
    assert len(sealed) == len(burned.files) + 1
    assert {e.path for e in sealed} == {p for p in medium_files(first) if is_secure_file(p)}
    assert {e.output for e in sealed} == {p for p in medium_files(out) if is_secure_file(p)}
    assert recorder.last_progress()["seal"] == (len(medium_files(first)), len(medium_files(first)))
