"""The bad-input corpus (tests/corpus): every file is a mistake graphnet must answer with one located
error, `FILE:LINE:COL: error: MESSAGE`, exit status 1 and no traceback, from every command that
reads it.

Layout, one folder per kind of input:

- yaml/ and spec/: spec files, run through `validate`, `run` and `export -o OUT.onnx`. A case says
  what it expects in its own first line, `# expect: [FILE:]LINE:COL: MESSAGE` (LINE:COL counted in
  the file as committed; FILE, relative to the case's folder, when the error is in another file
  such as a library), optionally followed by `# note: [FILE:]LINE:COL: MESSAGE` lines for notes that
  must follow the error. In an EXPECTED.txt, an indented `without torch: MESSAGE` is what a case
  that needs PyTorch must say instead where PyTorch is not installed.
- weights/: weight files given to `run net.yaml --weights F` and `export net.yaml --weights F`, in
  every format graphnet reads (.npz, .safetensors, PyTorch checkpoints, shard indexes), and
  dev_zero.npz, a symlink to /dev/zero; a FIFO is made by a test (git cannot hold one).
- inputs/: input files given to `run net.yaml --inputs F`.
- Files that cannot carry a comment (binary files, the empty file) are listed with their expectation
  in their folder's EXPECTED.txt, which also lists the helper files that are not cases.
- make_corpus.py writes every binary file, byte for byte; a test checks the committed ones match.
- yaml/oversize.yaml.in is the template of a spec over the 1 MiB size limit: the test writes a
  padded copy in a temporary folder, so no file over the limit is committed.

Each case runs in-process through graphnet.cli.main from an empty working folder, which must still
be empty afterwards: no PWNED file from a YAML tag or a pickle that was executed, and no model or
temporary file from a failed export. MESSAGE is a substring of the error line; the location is exact.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from graphnet.cli import main
from graphnet.source import MAX_FILE_BYTES

CORPUS = Path(__file__).resolve().parent / "corpus"
HAVE_TORCH = importlib.util.find_spec("torch") is not None
_spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
make_corpus = importlib.util.module_from_spec(_spec)      # the generator of the binary files
_spec.loader.exec_module(make_corpus)

META = {"EXPECTED.txt", "make_corpus.py", "README.md"}   # files about the corpus, not in it
SPEC_COMMANDS = ("validate", "run", "export")
_WHERE = re.compile(r"^(?:(?P<file>.+):)?(?P<line>\d+):(?P<col>\d+)$")
_DIRECTIVE = re.compile(r"^# (expect|note): (.*)$")


@dataclass
class Case:
    rel: str                    # path relative to the corpus
    where: tuple                # (file or None for the case itself, line, col)
    message: str
    notes: list = field(default_factory=list)      # [(where, message)]
    commands: tuple = SPEC_COMMANDS
    xfail: str | None = None

    @property
    def path(self) -> Path:
        return CORPUS / self.rel

    @property
    def category(self) -> str:
        return self.rel.split("/")[0]


def _where(text: str) -> tuple:
    m = _WHERE.match(text)
    assert m, f"not a location: {text!r}"
    return m["file"], int(m["line"]), int(m["col"])


def _split_located(text: str) -> tuple[tuple, str]:
    """'[FILE:]LINE:COL: MESSAGE' -> (where, message)."""
    m = re.match(r"^(\S*?\d+:\d+): (.*)$", text)
    assert m, f"not 'LINE:COL: MESSAGE': {text!r}"
    return _where(m[1]), m[2]


def _case_from_comments(path: Path) -> Case | None:
    """A YAML case from its leading comment lines (read as bytes: some are not UTF-8 on purpose)."""
    found: dict[str, list[str]] = {"expect": [], "note": []}
    for raw in path.read_bytes().split(b"\n"):
        m = _DIRECTIVE.match(raw.decode("latin-1"))
        if not m:
            break
        found[m[1]].append(m[2])
    if not found["expect"]:
        return None
    where, message = _split_located(found["expect"][0])
    return Case(path.relative_to(CORPUS).as_posix(), where, message, [_split_located(n) for n in found["note"]])


def _manifest(folder: Path) -> tuple[list[Case], set[str]]:
    """The cases and helper files an EXPECTED.txt lists."""
    cases, helpers = [], set()
    file = folder / "EXPECTED.txt"
    if not file.exists():
        return cases, helpers
    category = folder.relative_to(CORPUS).as_posix()
    commands = {"weights": ("run", "export"), "inputs": ("run",)}.get(category, SPEC_COMMANDS)
    for line in file.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith(" "):
            key, _, value = line.strip().partition(": ")
            if key == "xfail":
                cases[-1].xfail = value
            elif key == "note":
                cases[-1].notes.append(_split_located(value.replace("@DIR@", str(folder))))
            elif key == "without torch":
                if not HAVE_TORCH:
                    cases[-1].message = value
            else:
                raise AssertionError(f"{file}: unknown continuation {line!r}")
            continue
        name, where, message = line.split(None, 2)
        rel = f"{category}/{name}"
        if where == "helper":
            helpers.add(rel)
        else:
            message = message.replace("@DIR@", str(folder))
            cases.append(Case(rel, _where(where), message, commands=commands))
    return cases, helpers


def _corpus_files() -> list[str]:
    return sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.name not in META and "__pycache__" not in p.parts)


def _collect() -> tuple[list[Case], set[str]]:
    cases, helpers = [], set()
    for folder in sorted({CORPUS} | {p for p in CORPUS.rglob("*") if p.is_dir() and "__pycache__" not in p.parts}):
        listed, helped = _manifest(folder)
        cases += listed
        helpers |= helped
    listed = {c.rel for c in cases} | helpers
    for rel in _corpus_files():
        if rel not in listed and (rel.endswith(".yaml") or rel.endswith(".yaml.in")):
            case = _case_from_comments(CORPUS / rel)
            if case is not None:
                cases.append(case)
    return sorted(cases, key=lambda c: c.rel), helpers


CASES, HELPERS = _collect()


def _params():
    return [pytest.param(c, id=c.rel, marks=[pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else [])
            for c in CASES]


# -- running a case --------------------------------------------------------------------------------

def _target(case: Case, tmp_path: Path) -> Path:
    """The file a case gives graphnet: itself, or for the template, a padded copy over the limit."""
    if not case.rel.endswith(".yaml.in"):
        return case.path
    text = case.path.read_text()
    padding = "# " + "x" * 1021 + "\n"          # 1 KiB lines of comment
    big = tmp_path / "input" / case.path.name.removesuffix(".in")
    big.parent.mkdir()
    big.write_text(text + padding * (MAX_FILE_BYTES // len(padding) + 1))
    assert big.stat().st_size > MAX_FILE_BYTES
    return big


def _argv(case: Case, command: str, target: Path, out: Path) -> list[str]:
    if case.category == "weights":
        spec = str(CORPUS / "weights" / "net.yaml")
        return ([command, spec, "--weights", str(target)] +
                (["-o", str(out / "net.onnx")] if command == "export" else []))
    if case.category == "inputs":
        return [command, str(CORPUS / "inputs" / "net.yaml"), "--inputs", str(target)]
    return [command, str(target)] + (["-o", str(out / "x.onnx")] if command == "export" else [])


def _expected_file(case: Case, file: str | None, target: Path) -> str:
    if file is None:
        return str(target)
    if file.startswith("<"):
        return file                      # <std>/layers.yaml and the like
    return str(case.path.parent / file)


def _check_output(case: Case, target: Path, code: int, err: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert lines, "nothing on standard error"
    file, line, col = case.where
    prefix = f"{_expected_file(case, file, target)}:{line}:{col}: error: "
    assert lines[0].startswith(prefix), f"expected {prefix}...\n got {lines[0]}"
    assert case.message in lines[0], f"expected {case.message!r} in\n {lines[0]}"
    assert sum(": error: " in l for l in lines) == 1, err
    assert all(": note: " in l for l in lines[1:]), err
    for (nfile, nline, ncol), message in case.notes:
        want = f"{_expected_file(case, nfile, target)}:{nline}:{ncol}: note: "
        assert any(l.startswith(want) and message in l for l in lines[1:]), f"no note {want}{message}\n{err}"


@pytest.mark.parametrize("case", _params())
def test_bad_input_is_one_located_error(case, tmp_path, monkeypatch, capsys):
    target = _target(case, tmp_path)
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    monkeypatch.chdir(work)   # a YAML tag or pickle that ran would leave PWNED here
    for command in case.commands:
        capsys.readouterr()
        code = main(_argv(case, command, target, out))
        _, err = capsys.readouterr()
        _check_output(case, target, code, err)
        assert list(work.iterdir()) == [], f"{command} left {list(work.iterdir())} in the working folder"
        assert list(out.iterdir()) == [], f"{command} left {list(out.iterdir())} next to its output"


# -- the corpus itself -----------------------------------------------------------------------------

def test_every_corpus_file_is_a_case_or_a_listed_helper():
    covered = {c.rel for c in CASES} | HELPERS
    orphans = [rel for rel in _corpus_files() if rel not in covered]
    assert orphans == [], "corpus files with no expectation (add `# expect:` or an EXPECTED.txt line)"
    missing = sorted(rel for rel in covered if not (CORPUS / rel).is_file() and not (CORPUS / rel).is_symlink())
    assert missing == [], "listed but not there"
    assert len(CASES) >= 60
    assert {c.category for c in CASES} == {"yaml", "spec", "weights", "inputs"}


def test_committed_binary_files_are_what_make_corpus_writes():
    made = make_corpus.files()
    differ = [rel for rel, data in made.items() if (CORPUS / rel).read_bytes() != data]
    assert differ == [], "run `python tests/corpus/make_corpus.py` and commit what it writes"


def test_the_symlink_case_is_a_symlink_leaving_the_spec_folder():
    # git keeps symlinks; a checkout that turned it into a plain file would not test the escape
    link = CORPUS / "spec" / "lib" / "escape.yaml"
    assert link.is_symlink()
    assert (CORPUS / "spec") not in link.resolve().parents and link.resolve().is_file()


@pytest.mark.parametrize("folder,flag,good", [("weights", "--weights", "good.npz"), ("inputs", "--inputs", "good.npz"),
                                              ("weights", "--weights", "good.safetensors"),
                                              pytest.param("weights", "--weights", "good.pt", marks=pytest.mark.skipif(
                                                  not HAVE_TORCH, reason="reading a .pt needs PyTorch"))])
def test_the_good_files_the_cases_break_are_good(folder, flag, good, tmp_path, monkeypatch, capsys):
    # every weight or input case is a good file with one thing wrong, so it fails for that one thing
    monkeypatch.chdir(tmp_path)
    spec = str(CORPUS / folder / "net.yaml")
    assert main(["run", spec, flag, str(CORPUS / folder / good)]) == 0, capsys.readouterr().err
    if folder == "weights":
        assert main(["export", spec, "--weights", str(CORPUS / folder / good), "-o", "m.onnx"]) == 0
        assert (tmp_path / "m.onnx").is_file()


def test_the_good_files_hold_the_same_weights():
    from graphnet.weights import load_weights
    files = ["good.npz", "good.safetensors", "prefixed.safetensors"] + (["good.pt"] if HAVE_TORCH else [])
    loaded = [load_weights(CORPUS / "weights" / f, "model." if f.startswith("prefixed") else None).read() for f in files]
    for other in loaded[1:]:
        assert other.keys() == loaded[0].keys()
        assert all(np.array_equal(other[k], loaded[0][k]) for k in other)


@pytest.mark.parametrize("flag", ["--weights", "--inputs"])
def test_a_fifo_is_refused_not_read_forever(flag, tmp_path, monkeypatch, capsys):
    # nothing writes to the FIFO: a reader that opened it would block, and the test would hang
    fifo = tmp_path / "w.npz"
    os.mkfifo(fifo)
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    monkeypatch.chdir(work)
    folder = "weights" if flag == "--weights" else "inputs"
    case = Case(f"{folder}/w.npz", (None, 1, 1), "not a regular file (a FIFO)")
    for command in ("run", "export") if flag == "--weights" else ("run",):
        argv = [command, str(CORPUS / folder / "net.yaml"), flag, str(fifo)] + (["-o", str(out / "m.onnx")] if command == "export" else [])
        capsys.readouterr()
        code = main(argv)
        _check_output(case, fifo, code, capsys.readouterr().err)
        assert list(work.iterdir()) == [] and list(out.iterdir()) == []


@pytest.mark.parametrize("name", ["nan.npz", "inf.npz"])
def test_allow_nonfinite_accepts_nan_and_inf_weights(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec, weights = str(CORPUS / "weights" / "net.yaml"), str(CORPUS / "weights" / name)
    capsys.readouterr()
    assert main(["run", spec, "--weights", weights, "--allow-nonfinite"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("y: float32[1, 3]")
    assert main(["export", spec, "--weights", weights, "--allow-nonfinite", "-o", "m.onnx"]) == 0
    assert (tmp_path / "m.onnx").is_file()


# -- in a real process -----------------------------------------------------------------------------

NASTIEST = ["yaml/python_tag_apply.yaml", "yaml/alias_bomb.yaml", "yaml/oversize.yaml.in",
            "spec/use_symlink_outside.yaml", "spec/repeats_multiply_past_node_limit.yaml",
            "weights/pickled_object.npz", "weights/lying_shape.npz", "weights/evil_pickle.pt", "weights/zip_bomb.npz",
            "weights/dev_zero.npz", "weights/huge_header.safetensors"]


@pytest.mark.parametrize("rel", NASTIEST)
def test_nastiest_cases_in_a_real_process(rel, tmp_path):
    # A separate `python -m graphnet` process, as a user would run it. The timeout only guards
    # against a hang; it is not a speed target.
    case = next(c for c in CASES if c.rel == rel)
    target = _target(case, tmp_path)
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    command = "export" if case.category == "weights" else "validate"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                     os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "graphnet", *_argv(case, command, target, out)],
                          cwd=work, capture_output=True, text=True, timeout=300, env=env)
    assert done.stdout == ""
    _check_output(case, target, done.returncode, done.stderr)
    assert list(work.iterdir()) == [] and list(out.iterdir()) == []
