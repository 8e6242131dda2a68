"""Files written whole or not at all, with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat

import pytest

from robbench.atomic_write import atomic_write_text


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_an_atomic_write_gets_the_mode_of_a_plain_one(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a" / "report.html", "<p>x</p>")
        (tmp_path / "plain.html").write_text("<p>x</p>")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a" / "report.html").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.html").stat().st_mode) == 0o644
    assert (tmp_path / "a" / "report.html").read_text() == "<p>x</p>"
    assert not list((tmp_path / "a").glob(".*.tmp"))
