"""A training log given to `graphnet plot` is untrusted text: a line JSON cannot hold as numbers
(an integer of 5,000 digits) or nests past parsing is one located error, like any other bad line."""

from __future__ import annotations

import pytest

from graphnet.cli import main


@pytest.mark.parametrize("line, message", [
    ('{"kind": "step", "step": 1, "loss": ' + "9" * 5000 + "}", "Exceeds the limit"),
    ("[" * 100_000 + "]" * 100_000, "maximum recursion depth"),
    ('{"kind": "step", "step": 1}', 'a step line needs a number "loss"'),
])
def test_a_bad_log_line_is_located(line, message, tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    log.write_text('{"kind": "step", "epoch": 1, "step": 1, "loss": 2.5, "lr": 0.1}\n' + line + "\n")
    out = tmp_path / "curves.png"
    assert main(["plot", str(log), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{log}:2:"), err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()
