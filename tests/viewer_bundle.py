"""The offline viewer bundle media carry (``make viewer``): tests needing it skip without it, fail under CI.

Burning puts the viewer on the medium by default, so most media tests need the bundle built into
``src/dcmseal/media/viewer/`` (git-ignored). Rather than mark each of them, a failure that says the bundle
is missing is turned into a skip with the reason, outside CI (:func:`missing_bundle_reason`, used by the
report hook in ``tests/conftest.py``); a test whose failure cannot say so (its ``dcmseal`` output is
discarded) asks for the bundle first with the ``viewer_bundle`` fixture (:func:`require_viewer_bundle`).
"""

from __future__ import annotations

import functools

import pytest

from dcmseal.errors import DcmsealError
from dcmseal.media.webviewer import BUNDLE_DIR, viewer_files
from tests.peers.tools import in_ci

__all__ = ["NOT_BUILT", "missing_bundle_reason", "require_viewer_bundle", "viewer_bundle_built"]

#: What a test needing the bundle is told when it is absent.
NOT_BUILT = f"the offline viewer bundle is not built in {BUNDLE_DIR}: run `make viewer`"
#: The words dcmseal's own error uses for a missing bundle (dcmseal.media.webviewer), in a test's failure.
_ERROR_WORDS = "viewer bundle not built"


@functools.cache
def viewer_bundle_built() -> bool:
    """Whether the bundle is there and complete, as ``burn`` checks it, when the session started.

    Cached on the first call (``pytest_configure``): a test that points dcmseal at a missing bundle on
    purpose (tests/viewer/test_viewer_medium.py) changes nothing here.
    """
    try:
        viewer_files()
    except DcmsealError:
        return False
    return True


def require_viewer_bundle() -> None:
    """Skip the calling test when the bundle is not built, or fail it under CI (which builds it)."""
    if viewer_bundle_built():
        return
    if in_ci():
        pytest.fail(f"{NOT_BUILT} (CI builds it before the tests)")
    pytest.skip(NOT_BUILT)


def missing_bundle_reason(report: pytest.TestReport) -> str | None:
    """:data:`NOT_BUILT` when ``report`` failed because the bundle is missing, else None.

    The failure must say so (in its traceback or captured output) *and* the bundle must be missing now:
    a failure with the bundle present is a real one.
    """
    if not report.failed:
        return None
    said = _ERROR_WORDS in report.longreprtext or any(
        _ERROR_WORDS in text for _title, text in report.sections
    )
    return NOT_BUILT if said and not viewer_bundle_built() else None
