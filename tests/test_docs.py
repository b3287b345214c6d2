"""The Sphinx reference in docs/ builds with warnings as errors, and README.rst
and docs/ refer only to things inside the repository."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytest.importorskip("sphinx")


def test_docs_build_without_warnings(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"),
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "html" / "modules.html").exists()


def test_docs_readme_and_code_cite_nothing_outside_the_repository():
    texts = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst")),
             *sorted((ROOT / "escalator_handlers").rglob("*.py")), *sorted((ROOT / "nagios-conf").rglob("*.yaml"))]
    for path in texts:
        text = path.read_text()
        for outside in ("DESIGN.md", "DESIGN's", "the seed", "seed's", "issue #"):
            assert outside not in text, f"{path.relative_to(ROOT)} mentions {outside!r}"


def test_readme_is_valid_restructuredtext():
    from docutils.core import publish_doctree

    # halt_level 2: a warning (a broken table, a bad heading) raises
    publish_doctree((ROOT / "README.rst").read_text(), source_path="README.rst",
                    settings_overrides={"halt_level": 2, "report_level": 2})
