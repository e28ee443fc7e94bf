"""Report pieces: Markdown tables, per-bin cells and the machine line."""

from __future__ import annotations

import pytest
import torch

from posereg.evaluation.report import binned_cells, machine_line, markdown_table


def test_markdown_table_lines_and_bad_rows() -> None:
    assert markdown_table(["a", "b"], [["1", "2"], ["x", ""]]) == ["| a | b |", "|---|---|", "| 1 | 2 |", "| x |  |"]
    with pytest.raises(ValueError, match="expected 2 cells per row"):
        markdown_table(["a", "b"], [["1"]])


def test_binned_cells_summarise_each_bin() -> None:
    cells = binned_cells([1.0, 3.0, 10.0, 20.0], [0, 0, 2, 2], 3)
    assert cells == ["2.0 +- 1.0 (2.0)", "-", "15.0 +- 5.0 (15.0)"]


def test_machine_line_names_torch_threads_and_duration() -> None:
    line = machine_line(2, 61.4)
    assert line.startswith("Machine: ") and torch.__version__ in line and "2 threads" in line and line.endswith("61 s in all.")


def test_write_report_keeps_the_hand_written_reading(tmp_path, capsys) -> None:
    from posereg.evaluation.report import write_report

    path = tmp_path / "docs" / "bench.md"
    assert write_report(path, "# Bench\n\n| a |\n") is False  # a new file, parents made
    assert path.read_text() == "# Bench\n\n| a |\n"
    path.write_text(path.read_text() + "\n## Reading (by hand)\n\n- a is fast.\n")
    assert write_report(path, "# Bench\n\n| b |") is True  # the tables change, the reading stays
    assert "kept the hand-written reading" in capsys.readouterr().err
    assert path.read_text() == "# Bench\n\n| b |\n\n## Reading (by hand)\n\n- a is fast.\n"
    with pytest.raises(ValueError, match="without a '## Reading' section"):
        write_report(path, "# Bench\n## Reading\n")
