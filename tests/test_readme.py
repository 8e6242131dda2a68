"""The README and docs: blocks quoting generated results equal their files, the generated
references match the parser and docstrings, and the README stays a five-minute read."""

from __future__ import annotations

from pathlib import Path

import pytest

from robbench.cli import build_parser, main
from robbench.cli.reference import write_references
from robbench.report.readme_sync import documentation_pages, sync_readme

ROOT = Path(__file__).resolve().parents[1]


def test_every_page_quotes_current_results():
    pages = documentation_pages(ROOT)
    assert ROOT / "README.md" in pages and len(pages) >= 8
    assert {str(p): sync_readme(p, check=True) for p in pages} == {str(p): [] for p in pages}


def test_the_cli_and_api_references_are_generated_from_the_current_code():
    assert write_references(ROOT / "docs", build_parser(), check=True) == []


def test_the_readme_is_a_five_minute_read():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    first = "\n".join(lines[:100])
    for landmark in ("pip install", "python -m pytest", "robbench run", "robbench.evaluate",
                     "<!-- BEGIN results/mnist/worst_case.md -->"):
        assert landmark in first, landmark


def test_no_page_refers_to_files_users_do_not_have():
    sources = [p for part in ("benchmark", "models", "attacks")
               for p in (ROOT / part).rglob("*.py")]
    pages = [*documentation_pages(ROOT), ROOT / "CHANGELOG.md", ROOT / "pyproject.toml", *sources]
    assert len(sources) > 50
    for page in pages:
        text = page.read_text()
        assert "DESIGN.md" not in text and "shared/seeds" not in text, page


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


def test_a_missing_quoted_file_leaves_every_page_as_it_was(tmp_path, capsys):
    (tmp_path / "t.md").write_text("| new |\n")
    (tmp_path / "results" / "d").mkdir(parents=True)
    first = "<!-- BEGIN t.md -->\nold\n<!-- END t.md -->\n"
    (tmp_path / "README.md").write_text(first)
    gone = "<!-- BEGIN gone.md -->\n<!-- END gone.md -->\n"
    (tmp_path / "results" / "d" / "README.md").write_text(gone)
    assert main(["readme", "--root", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "gone.md" in err and err.count("\n") == 1
    assert (tmp_path / "README.md").read_text() == first


def test_quoted_headings_nest_under_the_readme_sections(tmp_path):
    (tmp_path / "r.md").write_text("# Report\n\n```sh\n# a shell comment\n```\n## Part\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- BEGIN r.md -->\n<!-- END r.md -->\n")
    sync_readme(readme)
    assert readme.read_text() == ("<!-- BEGIN r.md -->\n#### Report\n\n```sh\n# a shell comment\n"
                                  "```\n##### Part\n<!-- END r.md -->\n")
