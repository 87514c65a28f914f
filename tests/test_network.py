"""The Python API checks what it is handed where it comes in: a wrong type is a TypeError (a bad
value a ValueError) that says what was expected, not an error from deep inside (issue 13)."""

from pathlib import Path

import numpy as np
import pytest

import graphnet as gn

MLP = Path(__file__).resolve().parent.parent / "specs" / "mlp.yaml"


@pytest.fixture(scope="module")
def net():
    return gn.load(MLP)


@pytest.mark.parametrize("call,error,message", [
    (lambda net, x: net.run({1: x}), TypeError, "inputs: names must be str, got 1 (int)"),    # failed in difflib
    (lambda net, x: net.run(x), TypeError, "inputs must be a mapping from name to array, got ndarray"),
    (lambda net, x: net.session(max_memory="8G"), TypeError, "max_memory must be a number of bytes"),
    (lambda net, x: net.session(max_memory=-1), ValueError, "max_memory must be 0 or more bytes"),
    (lambda net, x: net.check_memory({"B": 1}, 2.5e9), TypeError, "max_memory must be a number of bytes"),
    (lambda net, x: net.session(max_macs="10T"), TypeError, "max_macs must be a number of multiply-accumulates"),
    (lambda net, x: net.check_compute({"B": 1}, -1), ValueError, "max_macs must be 0 or more multiply-accumulates"),
    (lambda net, x: net.session(max_macs=1000).run({"x": x}), gn.SpecError, "over the compute limit of 1000"),
    (lambda net, x: gn.load(MLP, ["B"]), TypeError, "dims must be a mapping from dim name to whole number"),
    (lambda net, x: gn.load(MLP, {"B": "8"}), TypeError, "dim 'B' must be a whole number, got '8'"),
    (lambda net, x: gn.load(MLP, {"B": True}), TypeError, "dim 'B' must be a whole number"),
    (lambda net, x: gn.load(MLP, {"B": 0}), ValueError, "dim 'B' must be positive, got 0"),
    (lambda net, x: gn.load(MLP, {3: 1}), TypeError, "a dim name must be a str"),
    (lambda net, x: gn.load(42), TypeError, "load() takes the spec's path, got int"),
    (lambda net, x: net.random_inputs(seed=-1), ValueError, "seed must be 0 or more"),       # failed in numpy
    (lambda net, x: net.init_weights(seed="0"), TypeError, "seed must be a whole number"),
    (lambda net, x: net.run({"x": x}, weights=[x]), TypeError, "weights must be a mapping from name to array"),
    (lambda net, x: net.summary(["B"]), TypeError, "dims must be a mapping"),
])
def test_misuse_is_a_clear_error_at_the_boundary(net, call, error, message):
    x = np.zeros((1, 784), np.float32)
    with pytest.raises(error) as info:
        call(net, x)
    assert message in str(info.value)
    # raised in network.py itself, not from inside numpy, difflib or expand
    tb = info.value.__traceback__
    while tb.tb_next:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_filename.endswith("network.py")


def test_what_was_accepted_still_is(net):
    x = net.random_inputs({"B": np.int64(2)}, seed=np.int64(3))
    assert net.session(max_memory=np.int64(1 << 30)).run(x)["logits"].shape == (2, 10)
    assert net.summary({"B": 2}).startswith("mlp")


# -- notebook display (issue 14, point 8) -----------------------------------------------------------

def test_repr_is_one_short_line():
    net = gn.load(Path(__file__).resolve().parent.parent / "specs" / "resnet18.yaml")
    # torchvision's resnet18 has 11,689,512 parameters and 9,600 buffer values (the BN statistics)
    assert repr(net) == ("<Network resnet18 (image: float32[B, 3, 224, 224]) -> (logits: float32[B, 1000]), "
                         "11,699,112 params>")


def test_render_from_python_is_what_the_command_draws(capsys):
    from graphnet.cli import main
    spec = Path(__file__).resolve().parent.parent / "specs" / "resnet18.yaml"
    net = gn.load(spec)
    for argv, kwargs in (([], {}), (["--format", "dot", "--depth", "1"], {"format": "dot", "depth": 1}),
                         (["--expand", "--dim", "B=2"], {"expand": True, "dims": {"B": 2}})):
        assert main(["render", str(spec), *argv]) == 0
        assert net.render(**kwargs) == capsys.readouterr().out
    with pytest.raises(ValueError, match="format must be one of"):
        net.render("jpeg")
    with pytest.raises(ValueError, match="depth must be"):
        net.render(depth=-1)


def test_html_display_has_the_summary_and_the_diagram(monkeypatch, tmp_path):
    import html
    import os
    from html.parser import HTMLParser
    import graphnet.render

    net = gn.load(Path(__file__).resolve().parent.parent / "specs" / "mlp.yaml")

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.text = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))

        def handle_data(self, data):
            self.text.append(data)

    # without Graphviz: the summary and the Mermaid text, each in a <pre>, escaped
    monkeypatch.setattr("shutil.which", lambda name: None)
    page = Collect()
    page.feed(net._repr_html_())
    assert ("pre", {"class": "mermaid"}) in page.tags
    assert net.summary(depth=1) in page.text and net.render() in page.text
    # with a dot (a stand-in that answers with an SVG document): the SVG inline, its prolog dropped
    monkeypatch.undo()
    fake = tmp_path / "dot"
    fake.write_text('#!/bin/sh\ncat > /dev/null\nprintf \'<?xml version="1.0"?>\\n<!DOCTYPE svg>\\n<svg id="g"></svg>\\n\'\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    shown = net._repr_html_()
    assert '<svg id="g"></svg>' in shown and "<?xml" not in shown and "mermaid" not in shown
    assert html.escape(net.summary(depth=1)) in shown
    assert graphnet.render.shutil.which("dot") == str(fake)
