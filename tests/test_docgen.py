"""Generated docs are current, and the pieces that generate them read what they should."""

from pathlib import Path

from graphnet.docgen import notes_of, op_index_source, ops_markdown, std_markdown, zoo_markdown
from graphnet.ops import REGISTRY

ROOT = Path(__file__).resolve().parent.parent


def test_zoo_doc_is_current():
    assert (ROOT / "docs" / "zoo.md").read_text() == zoo_markdown(ROOT / "specs"), \
        "regenerate: python -m graphnet.docgen zoo specs > docs/zoo.md"


def test_every_spec_cites_the_notes():
    missing = [p.name for p in (ROOT / "specs").glob("*.yaml") if not notes_of(p.read_text())]
    assert not missing


def test_notes_are_read_from_the_notes_sentence():
    text = "# Paper: X (2017). Notes: 000 (Q/K/V, 2017),\n# 001 and 003 (encoder stack). Params: 123 456.\n"
    assert notes_of(text) == ["000", "001", "003"]
    assert notes_of("# no citation here\n") == []


def test_ops_doc_is_current():
    assert (ROOT / "docs" / "ops.md").read_text() == ops_markdown(), \
        "regenerate: python -m graphnet.docgen ops > docs/ops.md"


def test_every_op_says_what_it_computes():
    # the first paragraph of each op's docstring is its line in docs/ops.md
    assert [cls.name for cls in REGISTRY if not cls.__doc__ or cls.__doc__.startswith("Base of every")] == []


def test_std_doc_is_current():
    assert (ROOT / "docs" / "std.md").read_text() == std_markdown(), \
        "regenerate: python -m graphnet.docgen std > docs/std.md"


def test_op_index_is_current():
    assert (ROOT / "graphnet" / "ops" / "index.py").read_text() == op_index_source(), \
        "regenerate: python -m graphnet.docgen index > graphnet/ops/index.py"
