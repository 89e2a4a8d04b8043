"""The cache keys' one home: a change to any source file of the package is a change of code."""

from __future__ import annotations

import shutil
from pathlib import Path

from tausynth.digest import PACKAGE, source_digest


def test_any_source_file_changes_the_digest_and_other_files_do_not(tmp_path: Path) -> None:
    package = tmp_path / "tausynth"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_digest(package)
    assert before == source_digest(package)
    (package / "notes.txt").write_text("not code")
    assert source_digest.__wrapped__(package) == before
    atlas = package / "data" / "atlas.py"  # the ROI sets every evaluation reads
    atlas.write_text(atlas.read_text() + "\n# edited\n")
    assert source_digest.__wrapped__(package) != before
    profile = next((package / "profiles").glob("*.yaml"))
    atlas.write_text(atlas.read_text().removesuffix("\n# edited\n"))
    assert source_digest.__wrapped__(package) == before
    profile.write_text(profile.read_text() + "\n")
    assert source_digest.__wrapped__(package) != before
