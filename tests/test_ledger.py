"""The assumptions ledger and the two modules that hold numbers: paper.py says what the paper
states, ledger.py what we chose, each choice with a row of ASSUMPTIONS.md."""
from __future__ import annotations

import re

from dri_hep2 import ledger, paper
from dri_hep2.folders import REPO_ROOT

ROW = re.compile(r"\b([NDTBUC]\d{1,2})\b")


def ledger_rows() -> dict[str, list[str]]:
    """Row id -> cells of ASSUMPTIONS.md's table."""
    rows = {}
    for line in (REPO_ROOT / "ASSUMPTIONS.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and ROW.fullmatch(cells[0]):
            rows[cells[0]] = cells
    return rows


def test_every_row_has_the_papers_words_a_choice_a_reason_and_a_knob():
    rows = ledger_rows()
    assert len(rows) >= 30
    for row_id, cells in rows.items():
        assert len(cells) == 6 and all(cells), row_id


def test_every_choice_in_ledger_py_names_a_row_that_exists():
    source = (REPO_ROOT / "dri_hep2" / "ledger.py").read_text()
    rows = ledger_rows()
    named = set(ROW.findall(source))
    assert named and named <= set(rows), named - set(rows)
    # Every value names its row on its own line or in the comment block over its group (a
    # group ends at a blank line).
    block: list[str] = []
    for line in source.splitlines():
        # PAGE is where the rows live (ledger.PAGE), not a choice of its own.
        if re.match(r"^[A-Z_0-9]+ = ", line) and not line.startswith("PAGE = "):
            assert ROW.search(" ".join(block + [line])), f"no ledger row for: {line}"
        elif line.startswith("#"):
            block.append(line)
        elif not line.strip():
            block = []


def test_no_value_is_both_the_papers_and_ours():
    ours = {n for n in vars(ledger) if n.isupper()}
    stated = {n for n in vars(paper) if n.isupper()}
    assert not ours & stated, ours & stated
    assert "ledger" not in (REPO_ROOT / "dri_hep2" / "paper.py").read_text().split('"""')[2]
