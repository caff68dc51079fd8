"""burn signs in to a WADO-RS source as import does (issue 14 §3): --user with its password from a file or a
variable, or a bearer token; never credentials in a URL on the command line. Against Orthanc with HTTP Basic on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from pydicom import dcmread

from dcmseal.webauth import HttpCredentials
from tests.cli.runner import run_dcmseal
from tests.importer.conftest import HTTP_PASSWORD, HTTP_USER
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD
from tests.peers.orthanc import OrthancPeer
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")


def _burn(tmp_path: Path, url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, Path]:
    (tmp_path / "pw.txt").write_text(PASSWORD + "\n")
    out = tmp_path / f"medium-{len(list(tmp_path.glob('medium-*')))}"
    run = run_dcmseal(
        "burn", url, "--out", out, "--format", "dir", "--password-file", tmp_path / "pw.txt", "--no-escrow",
        "--iterations", str(FAST_ITERATIONS), *args,
        home=tmp_path / "config", env={"XDG_DATA_HOME": str(tmp_path / "data"), **(env or {})},
    )  # fmt: skip
    return run.code, " ".join(run.stderr.split()), out


@pytest.mark.interop
def test_burn_from_a_pacs_that_wants_a_user_and_password(orthanc: OrthancPeer, tmp_path: Path) -> None:
    orthanc.upload(CT_SMALL)
    url = orthanc.study_url(str(dcmread(CT_SMALL, stop_before_pixels=True).StudyInstanceUID))

    code, stderr, _ = _burn(tmp_path, url)
    assert code == 3, stderr  # the PACS refuses: a peer error naming the URL, not a traceback
    assert "401" in stderr

    code, stderr, out = _burn(
        tmp_path, url, "--user", HTTP_USER, "--user-password-env", "PACS_PW", env={"PACS_PW": HTTP_PASSWORD}
    )
    assert code == 0, stderr
    assert (out / "DICOMDIR").is_file()  # the retrieved study is on the medium
    assert HTTP_PASSWORD not in stderr

    password_file = tmp_path / "pacs-pw.txt"
    password_file.write_text(HTTP_PASSWORD + "\n")
    code, stderr, _ = _burn(tmp_path, url, "--user", HTTP_USER, "--user-password-file", str(password_file))
    assert code == 0, stderr

    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-password\n")
    code, stderr, _ = _burn(tmp_path, url, "--user", HTTP_USER, "--user-password-file", str(wrong))
    assert code == 3
    assert "not-the-password" not in stderr


def test_credentials_in_a_source_url_are_refused(tmp_path: Path) -> None:
    code, stderr, out = _burn(tmp_path, "http://importer:Pacs-secret-1@127.0.0.1:9/dicom-web/studies/1.2.3")
    assert code == 2
    assert "no credentials in a source URL" in stderr
    assert "--user" in stderr
    assert "Pacs-secret-1" not in stderr
    assert not out.exists()


def test_user_and_token_do_not_go_together(tmp_path: Path) -> None:
    code, stderr, _ = _burn(
        tmp_path,
        "http://127.0.0.1:9/dicom-web/studies/1.2.3",
        "--user",
        "a",
        "--token-env",
        "T",
        env={"T": "x"},
    )
    assert code == 2
    assert "give --user or a bearer token" in stderr


def test_a_bearer_token_is_sent_as_rfc_6750_says_and_never_shown() -> None:
    session = requests.Session()
    credentials = HttpCredentials(token="eyJhbGciOi.token-value")
    credentials.apply(session)
    prepared = session.prepare_request(requests.Request("GET", "http://127.0.0.1:9/dicom-web/studies/1.2"))
    assert prepared.headers["Authorization"] == "Bearer eyJhbGciOi.token-value"
    assert "token-value" not in repr(credentials)
    basic = requests.Session()
    HttpCredentials(username="u", password="p-secret").apply(basic)
    prepared = basic.prepare_request(requests.Request("GET", "http://127.0.0.1:9/"))
    assert prepared.headers["Authorization"] == "Basic dTpwLXNlY3JldA=="
    with pytest.raises(ValueError, match="not both"):
        HttpCredentials(username="u", token="t")
