"""What a tool approval shows before the human decides (commands/preview.py): a diff against the file as it is now."""

from __future__ import annotations

import json

import pytest

from claude_bridge.commands.preview import BLOCK_LINES, tool_preview

pytestmark = pytest.mark.fast


def test_an_edit_is_a_unified_diff_against_the_file_as_it_is_now(tmp_path):
    file = tmp_path / "app.py"
    file.write_text("import os\n\ndef main():\n    print('hi')\n    return 0\n")

    shown = tool_preview("Edit", {"file_path": str(file), "old_string": "print('hi')", "new_string": "print('bye')"})

    assert shown.heading == f"✏️ edit {file} (+1 −1)" and shown.language == "diff"
    assert "--- a/app.py\n+++ b/app.py\n@@ -1,5 +1,5 @@\n import os\n" in shown.block
    assert "-    print('hi')\n+    print('bye')\n     return 0" in shown.block
    assert not shown.cut


def test_a_multiedit_applies_its_edits_in_order(tmp_path):
    file = tmp_path / "a.txt"
    file.write_text("one\ntwo\n")
    edits = [{"old_string": "one", "new_string": "uno"}, {"old_string": "uno\ntwo", "new_string": "uno\ndos"}]
    shown = tool_preview("MultiEdit", {"file_path": str(file), "edits": edits})
    assert "-one\n-two\n+uno\n+dos" in shown.block


def test_an_edit_that_no_longer_fits_the_file_shows_its_own_lines_and_says_so(tmp_path):
    file = tmp_path / "a.txt"
    file.write_text("changed meanwhile\n")
    shown = tool_preview("Edit", {"file_path": str(file), "old_string": "old", "new_string": "new"})
    assert shown.block == "-old\n+new" and "not in the file" in shown.notes[0]


def test_a_write_over_an_existing_file_is_a_diff(tmp_path):
    file = tmp_path / "deploy.sh"
    file.write_text("echo old\n")
    shown = tool_preview("Write", {"file_path": str(file), "content": "echo new\n"})
    assert shown.heading.startswith(f"✏️ overwrite {file}") and "-echo old\n+echo new" in shown.block


def test_a_new_file_shows_its_size_and_first_lines_and_keeps_the_whole_as_a_diff(tmp_path):
    content = "".join(f"line {n}\n" for n in range(100))
    shown = tool_preview("Write", {"file_path": str(tmp_path / "new.txt"), "content": content})
    assert shown.heading == f"📝 new file {tmp_path / 'new.txt'} (790 bytes, 100 lines)"
    assert shown.block.startswith("line 0\nline 1\n") and shown.block.endswith("… 85 more lines")
    assert shown.full_name == "new.txt.diff" and "+line 99" in shown.full


def test_a_long_diff_is_cut_and_the_whole_kept_for_the_attachment(tmp_path):
    file = tmp_path / "big.txt"
    file.write_text("".join(f"old {n}\n" for n in range(200)))
    shown = tool_preview("Write", {"file_path": str(file), "content": "".join(f"new {n}\n" for n in range(200))})
    assert shown.cut and shown.full_name == "big.txt.diff"
    assert len(shown.block.splitlines()) == BLOCK_LINES + 1 and shown.block.endswith("more lines")
    assert "+new 199" in shown.full and "+new 199" not in shown.block


def test_a_very_long_line_is_cut_in_the_message(tmp_path):
    shown = tool_preview("Bash", {"command": "echo " + "x" * 5000})
    assert shown.cut and len(shown.block) < 300 and shown.full.endswith("x" * 100)


def test_bash_shows_the_command_and_claudes_description():
    shown = tool_preview("Bash", {"command": "npm test", "description": "run the tests"}, reason="needs approval")
    assert (shown.block, shown.language) == ("npm test", "bash")
    assert shown.notes == ("Why: run the tests", "Why: needs approval")


def test_webfetch_shows_the_url_and_other_tools_their_input():
    fetch = tool_preview("WebFetch", {"url": "https://example.com/a", "prompt": "summarise"})
    assert fetch.heading == "🌐 fetch https://example.com/a" and fetch.notes == ("To find: summarise",)
    other = tool_preview("mcp__files__upload", {"path": "/tmp/x"})
    assert other.language == "json" and '"path": "/tmp/x"' in other.block


def test_a_notebook_cell_edit_is_a_diff_of_that_cell(tmp_path):
    notebook = tmp_path / "n.ipynb"
    notebook.write_text(json.dumps({"cells": [{"id": "c1", "cell_type": "code", "source": ["x = 1\n", "print(x)"]}]}))
    edit = {"notebook_path": str(notebook), "cell_id": "c1", "new_source": "x = 2\nprint(x)"}
    shown = tool_preview("NotebookEdit", edit)
    assert "-x = 1\n+x = 2\n print(x)" in shown.block


def test_a_file_that_cannot_be_read_still_shows_the_change(tmp_path):
    (tmp_path / "bin").write_bytes(b"\0\1\2")
    shown = tool_preview("Write", {"file_path": str(tmp_path / "bin"), "content": "text"})
    assert shown.block == "text" and "binary" in shown.notes[0]
