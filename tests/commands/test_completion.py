"""`graphnet completion bash`: the script, run by bash itself, completes commands, options and
option choices as the parser defines them."""

import shutil
import subprocess
from pathlib import Path

import pytest

from graphnet.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent.parent


def _complete(script: Path, *words: str) -> list[str]:
    probe = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\nCOMP_CWORD={len(words) - 1}\n"
             "_graphnet\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_choices(tmp_path, capsys):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "graphnet.bash"
    script.write_text(capsys.readouterr().out)
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert set(_complete(script, "graphnet", "")) == {*commands, "--version", "-h", "--help"}
    assert _complete(script, "graphnet", "ren") == ["render"]
    run_options = {o for a in commands["run"]._actions for o in a.option_strings}
    assert set(_complete(script, "graphnet", "run", "specs/mlp.yaml", "--")) == {o for o in run_options
                                                                                 if o.startswith("--")}
    assert _complete(script, "graphnet", "run", "specs/mlp.yaml", "--backend", "") == ["numpy", "onnxruntime"]
    assert _complete(script, "graphnet", "render", "x", "--format", "p") == ["png", "pdf"]
    assert _complete(script, "graphnet", "validate", "specs/ml") == ["specs/mlp.yaml"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_script_is_valid_bash(capsys):
    assert main(["completion", "bash"]) == 0
    done = subprocess.run(["bash", "-n"], input=capsys.readouterr().out, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
