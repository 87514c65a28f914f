"""The docs cannot drift: every spec example in docs/spec.md validates (or fails, where the doc says
so) and every shown output is what graphnet prints; every command in docs/cli.md and docs/weights.md
prints what the doc shows (weights.md's `<!-- run torch -->` blocks where PyTorch is installed). A line '...' in an expected output stands for any number of lines. After an intended
output change, `python tools/recapture_docs.py` re-captures them."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           PYTHONUNBUFFERED="1", COLUMNS="80")
FENCE = re.compile(r"(?:<!--\s*(.*?)\s*-->\s*\n)?```(\w*)\n(.*?)\n```", re.S)


def _blocks(doc: str) -> list[tuple[str, str, str]]:
    return [(m.group(1) or "", m.group(2), m.group(3)) for m in FENCE.finditer((ROOT / "docs" / doc).read_text())]


NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?|-?\d+e[-+]?\d+")


def _same_line(expected: str, actual: str) -> bool:
    """Equal, or equal but for floats within rounding: a BLAS kernel of another CPU changes the last
    bits of a run's statistics (and a mean of about zero entirely)."""
    if expected == actual:
        return True
    if NUMBER.sub("#", expected) != NUMBER.sub("#", actual):
        return False
    return all(abs(float(e) - float(a)) <= 1e-3 * abs(float(e)) + 1e-6
               for e, a in zip(NUMBER.findall(expected), NUMBER.findall(actual)))


def _matches(expected: str, actual: str) -> bool:
    exp, act = expected.split("\n"), actual.split("\n")

    def go(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i] == "...":
            return any(go(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and _same_line(exp[i], act[j]) and go(i + 1, j + 1)

    return go(0, 0)


def _workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    return tmp_path


def _run(cmd, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=isinstance(cmd, str), cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)


def test_spec_examples(tmp_path):
    work = _workdir(tmp_path)
    blocks = _blocks("spec.md")
    specs = [(c.split(), body) for c, lang, body in blocks if lang == "yaml" and re.search(r"^graphnet: \d", body, re.M)]
    assert len(specs) >= 20
    for n, (opts, body) in enumerate(specs):
        name = opts[opts.index("file:") + 1] if "file:" in opts else f"auto{n:02d}.yaml"
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(body + "\n")
    failures = []
    for n, (opts, _) in enumerate(specs):
        name = opts[opts.index("file:") + 1] if "file:" in opts else f"auto{n:02d}.yaml"
        if "lib" not in opts:
            r = _run(["graphnet", "validate", name], work)
            if ("fails" in opts) != (r.returncode != 0):
                failures.append(f"{name}: exit {r.returncode}\n{r.stdout}")
    for comment, _, body in blocks:
        if comment.startswith("expect:"):
            r = _run(["graphnet", "validate", *comment.split()[1:]], work)
            expected = "\n".join(line for line in body.split("\n") if not line.startswith("$ "))
            if not _matches(expected, r.stdout.rstrip("\n")):
                failures.append(f"{comment}\n--- doc\n{expected}\n--- graphnet\n{r.stdout}")
    assert not failures, "\n\n".join(failures)


def _transcripts(doc: str, work: Path, kinds: tuple[str, ...]) -> tuple[int, list[str]]:
    """Run the commands of the doc's blocks marked `<!-- KIND -->`, in order; the count of commands
    and the mismatches."""
    failures, status, count = [], 0, 0
    for comment, _, body in _blocks(doc):
        if comment not in kinds:
            continue
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            cmd, _, expected = chunk.partition("\n")
            count += 1
            if cmd.strip() == "echo $?":
                actual = str(status)
            else:
                r = _run(cmd, work)
                status, actual = r.returncode, r.stdout.rstrip("\n")
            if not _matches(expected.rstrip("\n"), actual):
                failures.append(f"$ {cmd}\n--- doc\n{expected}\n--- graphnet\n{actual}")
    return count, failures


def test_cli_examples(tmp_path):
    count, failures = _transcripts("cli.md", _workdir(tmp_path), ("run",))
    assert count >= 20
    assert not failures, "\n\n".join(failures)


def test_weights_examples(tmp_path):
    work = _workdir(tmp_path)
    count, failures = _transcripts("weights.md", work, ("run",))
    assert count >= 15
    assert not failures, "\n\n".join(failures)
    try:
        import torch  # noqa: F401
    except ImportError:
        pytest.skip("the `run torch` blocks of weights.md need PyTorch (the others passed)")
    count, failures = _transcripts("weights.md", work, ("run torch",))
    assert count >= 6
    assert not failures, "\n\n".join(failures)
