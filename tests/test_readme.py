"""README blocks that quote generated results equal the files they quote."""

from __future__ import annotations

from pathlib import Path

import pytest

from robbench.report.readme_sync import sync_readme

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quotes_current_results():
    assert sync_readme(ROOT / "README.md", check=True) == []


def test_sync_rewrites_a_stale_block_and_check_reports_it(tmp_path):
    (tmp_path / "t.md").write_text("| a |\n")
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- BEGIN t.md -->\nold\n<!-- END t.md -->\ny\n")
    assert sync_readme(readme, check=True) == ["t.md"]
    assert "old" in readme.read_text()
    assert sync_readme(readme) == ["t.md"]
    assert readme.read_text() == "x\n<!-- BEGIN t.md -->\n| a |\n<!-- END t.md -->\ny\n"
    assert sync_readme(readme, check=True) == []


def test_missing_quoted_file_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- BEGIN nope.md -->\n<!-- END nope.md -->\n")
    with pytest.raises(FileNotFoundError, match="nope.md"):
        sync_readme(readme)


def test_quoted_headings_nest_under_the_readme_sections(tmp_path):
    (tmp_path / "r.md").write_text("# Report\n\n```sh\n# a shell comment\n```\n## Part\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- BEGIN r.md -->\n<!-- END r.md -->\n")
    sync_readme(readme)
    assert readme.read_text() == ("<!-- BEGIN r.md -->\n#### Report\n\n```sh\n# a shell comment\n"
                                  "```\n##### Part\n<!-- END r.md -->\n")
