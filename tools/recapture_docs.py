"""Re-capture the command outputs shown in docs/spec.md (`<!-- expect: ... -->` blocks), docs/cli.md
(`<!-- run -->` blocks) and docs/weights.md (`<!-- run -->` and `<!-- run torch -->` blocks) after
graphnet's output changes on purpose; tests/test_docs.py checks them.
A block whose text has a '...' line keeps that elision, with the lines around it taken anew.

    python tools/recapture_docs.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           PYTHONUNBUFFERED="1", COLUMNS="80")
FENCE = re.compile(r"(<!--\s*(.*?)\s*-->\s*\n)```(\w*)\n(.*?)\n```", re.S)


def _elide(expected: list[str], actual: list[str]) -> list[str]:
    if "..." not in expected:
        return actual
    i = expected.index("...")
    tail = len(expected) - i - 1
    return actual[:i] + ["..."] + (actual[len(actual) - tail:] if tail else [])


def _run(cmd, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=isinstance(cmd, str), cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def recapture_spec(work: Path) -> None:
    doc = ROOT / "docs" / "spec.md"
    text = doc.read_text()
    n = 0
    for m in FENCE.finditer(text):            # write every example spec the doc defines
        opts, lang, body = m.group(2).split(), m.group(3), m.group(4)
        if lang == "yaml" and re.search(r"^graphnet: \d", body, re.M):
            n += 1
            name = opts[opts.index("file:") + 1] if "file:" in opts else f"auto{n:02d}.yaml"
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(body + "\n")

    def replace(m):
        comment, lang, body = m.group(2), m.group(3), m.group(4)
        if not comment.startswith("expect:"):
            return m.group(0)
        actual = _run(["graphnet", "validate", *comment.split()[1:]], work).stdout.rstrip("\n").split("\n")
        lines = body.split("\n")
        commands = [line for line in lines if line.startswith("$ ")]
        expected = [line for line in lines if not line.startswith("$ ")]
        return f"{m.group(1)}```{lang}\n" + "\n".join(commands + _elide(expected, actual)) + "\n```"

    doc.write_text(FENCE.sub(replace, text))


def recapture_cli(work: Path, name: str = "cli.md") -> None:
    doc = ROOT / "docs" / name
    status = 0

    def fill(m):
        nonlocal status
        out = []
        for chunk in re.split(r"^\$ ", m.group(2), flags=re.M)[1:]:
            cmd, _, expected = chunk.partition("\n")
            exp = expected.rstrip("\n").split("\n") if expected.strip() else []
            if cmd.strip() == "echo $?":
                actual = [str(status)]
            else:
                r = _run(cmd, work)
                status = r.returncode
                actual = r.stdout.rstrip("\n").split("\n") if r.stdout.strip() else []
            out.append("\n".join([f"$ {cmd}"] + _elide(exp, actual)))
        return m.group(1) + "\n".join(out) + "\n```"

    doc.write_text(re.sub(r"(<!-- run(?: torch)? -->\s*\n```\w*\n)(.*?)\n```", fill, doc.read_text(), flags=re.S))


def recapture_weights(work: Path) -> None:
    recapture_cli(work, "weights.md")


if __name__ == "__main__":
    for step in (recapture_spec, recapture_cli, recapture_weights):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(ROOT / "specs", Path(tmp) / "specs")
            step(Path(tmp))
