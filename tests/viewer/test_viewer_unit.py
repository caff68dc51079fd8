"""The viewer's TypeScript unit tests (`npm test` in viewer/: type check, CMS/PWRI vectors, codecs), run by pytest."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.peers.tools import require_tool


def test_npm_test_passes(viewer_tree: Path) -> None:
    npm = shutil.which("npm") or require_tool("npm", "npm")
    # No network at test time: node_modules comes from `make viewer` (npm ci).
    done = subprocess.run(
        [npm, "test", "--silent"], cwd=viewer_tree, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    passed = re.search(r"^# pass (\d+)$", output, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", output, re.MULTILINE)
    assert passed, output[-3000:]
    assert failed, output[-3000:]
    assert int(failed.group(1)) == 0
    # The vectors of ../shared/vectors (OpenSSL) and dcmseal's writer, the codecs, the window: all of them ran.
    assert int(passed.group(1)) >= 35
