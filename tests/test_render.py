"""graphnet render: every spec drawn as Mermaid that Mermaid's own parser accepts and as DOT that
Graphviz accepts, byte-for-byte deterministic, and the residual blocks drawn with the structure of the
flowcharts in notes 002 (compared as graphs: nodes, edges, which edges are the dotted shortcut)."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from graphnet.cli import main
from graphnet.dims import Dim
from graphnet.errors import Location
from graphnet.graph import Frame, Graph, Node, Param
from graphnet.network import load
from graphnet.ops import OPS, TensorType
from graphnet.render import build, render

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
JS = ROOT / "tests" / "js"
# expanded down to every primitive: one of each kind of net (the others are the same blocks again)
EXPANDED = ("resnet18", "mobilenet_v2", "googlenet", "transformer_encoder", "gcnn_p4", "lstm", "birnn",
            "seq2seq_attention", "gcn", "vgg11")


@pytest.fixture(scope="module")
def graphs() -> dict[str, Graph]:
    return {p.stem: load(p).graph for p in SPECS}


def _text(graph, depth=0, fmt="mermaid", dims=None) -> str:
    return render(graph, fmt, depth, dims).decode()


# -- reading our Mermaid back ------------------------------------------------------------------------

_NODE = re.compile(r'(\w+)(\(\["|\[\["|\(\("|\[")(.*)("\]\)|"\]\]|"\)\)|"\])')
_EDGE = re.compile(r'(\w+) (-->|-\.->)\|"(.*)"\| (\w+)')
_SUBGRAPH = re.compile(r'subgraph (\w+)\["(.*)"\]')
_SHAPES = {'(["': "stadium", '[["': "subroutine", '(("': "circle", '["': "square"}


def _decode(text: str) -> str:
    """A label as Mermaid shows it: entity codes (#quot;, #35;) decoded."""
    return html.unescape(re.sub(r"#(\w+);", r"&\1;", text).replace("&35;", "&#35;").replace("&96;", "&#96;")
                         .replace("&10;", "&#10;").replace("&13;", "&#13;"))


def _stored(text: str) -> str:
    """A label as Mermaid's parser stores it (entity codes as placeholders), as its renderer shows it."""
    return html.unescape(text.replace("ﬂ°°", "&#").replace("ﬂ°", "&").replace("¶ß", ";"))


def parse_mermaid(text: str) -> dict:
    """The flowchart graphnet writes, read back: nodes (id -> shape, label), edges (src, dst, dotted,
    label) and subgraphs (id -> title, parent, the node ids directly inside)."""
    lines = text.splitlines()
    assert re.fullmatch(r"flowchart (LR|TB)", next(line for line in lines if not line.startswith("%%")))
    nodes, edges, subgraphs, stack = {}, [], {}, []
    for line in lines:
        line = line.strip()
        if line.startswith("%%") or line.startswith("flowchart "):
            continue
        if m := _SUBGRAPH.fullmatch(line):
            subgraphs[m[1]] = {"title": _decode(m[2]), "parent": stack[-1] if stack else None, "nodes": []}
            stack.append(m[1])
        elif line == "end":
            stack.pop()
        elif m := _EDGE.fullmatch(line):
            edges.append((m[1], m[4], m[2] == "-.->", _decode(m[3])))
        elif m := _NODE.fullmatch(line):
            nodes[m[1]] = (_SHAPES[m[2]], _decode(m[3]))
            if stack:
                subgraphs[stack[-1]]["nodes"].append(m[1])
        else:
            raise AssertionError(f"unexpected line: {line!r}")
    assert not stack
    return {"nodes": nodes, "edges": edges, "subgraphs": subgraphs}


# -- Mermaid's own parser, under Node --------------------------------------------------------------

def _mermaid_parser():
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Mermaid's parser runs under Node.js: 'node' and 'npm' must be on PATH")
    if not all((JS / "node_modules" / name / "package.json").exists() for name in ("mermaid", "jsdom")):
        r = subprocess.run([npm, "ci", "--prefix", str(JS), "--prefer-offline", "--no-audit", "--no-fund"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        assert r.returncode == 0, f"npm ci --prefix tests/js failed:\n{r.stdout[-3000:]}"

    def parse(diagrams: list[dict]) -> list[dict]:
        r = subprocess.run([node, str(JS / "parse_mermaid.mjs")], input=json.dumps(diagrams), capture_output=True,
                           text=True, encoding="utf-8", timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout)

    return parse


def _weird_graph() -> Graph:
    """A graph whose names hold every character that means something to Mermaid, HTML or DOT."""
    loc = Location("weird.yaml")
    t = TensorType("float32", (Dim("B"), Dim(4)))
    x, call, block = 'x "1"<br>#2', 'end.o|x;[a]{b}`c`', 'my "block" <&> --> #1'
    relu = Node(f"{call}.relu", OPS["relu"](), (x,), (f"{call}.relu",),
                (Frame(loc, f"{call}.relu", block), Frame(loc, call, "")))
    add = Node('sum\\n"', OPS["add"](), (x, f"{call}.relu"), ('sum\\n"',), (Frame(loc, 'sum\\n"', ""),))
    bias = Param("b", t, None, True, loc)
    shift = Node("end", OPS["add"](), ('sum\\n"', "b"), ("end",), (Frame(loc, "end", ""),))
    return Graph('we"ird', {x: t}, {"y\"'": "end"}, {"b": bias}, [relu, add, shift],
                 {x: t, "b": t, f"{call}.relu": t, 'sum\\n"': t, "end": t})


def test_every_spec_parses_with_mermaid(graphs):
    parse = _mermaid_parser()
    diagrams = []

    def add(name, text, **options):
        # past Mermaid's default limits (500 edges, 50,000 characters) the diagram says so in a comment;
        # the edge limit is checked when parsing, so it is raised for those
        over = len(parse_mermaid(text)["edges"]) > 500
        head, body = text.split("flowchart", 1)
        assert ("above Mermaid's default limits" in head) == (over or len("flowchart" + body) > 50_000), name
        diagrams.append({"name": name, "text": text, **options, **({"maxEdges": 100_000} if over else {})})

    for name, g in graphs.items():
        add(f"{name} (default)", _text(g), structure=True)
        add(f"{name} --depth 1", _text(g, 1), structure=True)
        if name in EXPANDED:
            add(f"{name} --expand", _text(g, None))
    weird = _weird_graph()
    add("weird names", _text(weird, None), structure=True)
    add("weird names (collapsed)", _text(weird), structure=True)
    diagrams += [# the check is not vacuous: Mermaid refuses a broken flowchart and one over its edge limit
                 {"name": "broken", "text": "flowchart LR\n    a --> --> b\n"},
                 {"name": "too many edges", "text": "flowchart LR\n" + "".join(f"    a{i} --> b{i}\n" for i in range(501))}]
    results = parse(diagrams)
    assert [r["name"] for r in results] == [d["name"] for d in diagrams]
    *results, broken, too_many = results
    assert not broken["ok"] and "Parse error" in broken["error"]
    assert not too_many["ok"] and "Edge limit exceeded" in too_many["error"]
    failed = [f"{r['name']}: {r['error']}" for r in results if not r["ok"]]
    assert not failed, "\n".join(failed)
    # what Mermaid read is what parse_mermaid reads (so the structure tests below see what Mermaid sees)
    for diagram, result in zip(diagrams, results):
        if not diagram.get("structure"):
            continue
        ours = parse_mermaid(diagram["text"])
        theirs_nodes = {k: _stored(v["text"]) for k, v in result["vertices"].items()}
        assert theirs_nodes == {k: label for k, (_, label) in ours["nodes"].items()}, diagram["name"]
        assert {k: v["type"] for k, v in result["vertices"].items()} == \
            {k: s
             for k, (s, _) in ours["nodes"].items()}, diagram["name"]
        assert [(e["start"], e["end"], e["stroke"] == "dotted", _stored(e["text"])) for e in result["edges"]] == \
            ours["edges"], diagram["name"]
        assert {s["id"]: _stored(s["title"]) for s in result["subgraphs"]} == \
            {k: v["title"] for k, v in ours["subgraphs"].items()}, diagram["name"]
        inside = {n for v in ours["subgraphs"].values() for n in v["nodes"]}
        assert {n for s in result["subgraphs"] for n in s["nodes"] if n in ours["nodes"]} == inside, diagram["name"]
    # the weird names came through intact
    weird_nodes = parse_mermaid(diagrams[-4]["text"])
    assert {label for _, label in weird_nodes["nodes"].values()} >= {'x "1"<br>#2', "y\"'", "relu", "add b"}
    assert {v["title"] for v in weird_nodes["subgraphs"].values()} == {'end.o|x;[a]{b}`c`: my "block" <&> --> #1'}


# -- Graphviz ----------------------------------------------------------------------------------------

def _dot_or_skip() -> str:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz's 'dot' is not on PATH (apt-get install graphviz); the DOT and SVG checks need it")
    return dot


def test_dot_is_accepted_by_graphviz(graphs):
    dot = _dot_or_skip()
    texts = [(f"{name} (default)", _text(g, fmt="dot")) for name, g in graphs.items()]
    texts += [(f"{name} --depth 1", _text(graphs[name], 1, "dot")) for name in EXPANDED]
    texts += [("resnet18 --expand", _text(graphs["resnet18"], None, "dot")),
              ("weird names", _text(_weird_graph(), None, "dot"))]
    # one dot process lays out every graph: a file of several graphs gives one SVG after another
    r = subprocess.run([dot, "-Tsvg"], input="".join(t for _, t in texts), capture_output=True, text=True,
                       encoding="utf-8", timeout=300)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    assert r.stdout.count("</svg>") == len(texts)
    assert "layer2.0: std.basic_block" in r.stdout and "B×128×28×28" in r.stdout


def test_svg_through_graphviz(tmp_path, capsys):
    _dot_or_skip()
    out = tmp_path / "mlp.svg"
    assert main(["render", str(ROOT / "specs" / "mlp.yaml"), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out} (svg)\n"
    svg = out.read_text()
    assert "<svg" in svg and "</svg>" in svg and "B×1024" in svg
    assert list(tmp_path.iterdir()) == [out]          # written atomically: no temporary file left


def test_svg_without_graphviz_is_a_located_error(tmp_path, capsys, monkeypatch):
    import graphnet.render
    monkeypatch.setattr(graphnet.render.shutil, "which", lambda name: None)
    out = tmp_path / "mlp.svg"
    assert main(["render", str(ROOT / "specs" / "mlp.yaml"), "--format", "svg", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("<command line>:1:1: error: --format svg needs Graphviz's 'dot'"), err
    assert not out.exists() and list(tmp_path.iterdir()) == []


# -- the command -----------------------------------------------------------------------------------

def test_render_prints_mermaid_by_default(capsys):
    assert main(["render", str(ROOT / "specs" / "mlp.yaml"), "--dim", "B=32"]) == 0
    out = capsys.readouterr().out
    assert out == _text(load(ROOT / "specs" / "mlp.yaml", {"B": 32}).graph, dims={"B": 32})
    assert "flowchart LR" in out and '|"32×784"|' in out and "std.linear 1024" in out


def test_render_writes_atomically_and_picks_the_format(tmp_path, capsys, graphs):
    mlp = str(ROOT / "specs" / "mlp.yaml")
    for name, fmt in (("a.mmd", "mermaid"), ("a.dot", "dot"), ("a.gv", "dot")):
        assert main(["render", mlp, "-o", str(tmp_path / name)]) == 0
        assert capsys.readouterr().out == f"wrote {tmp_path / name} ({fmt})\n"
        assert (tmp_path / name).read_text() == _text(graphs["mlp"], fmt=fmt)
    # an extension that names no format needs --format; one that names another is refused
    assert main(["render", mlp, "-o", str(tmp_path / "b.txt")]) == 1
    assert "'.txt' names none; give --format" in capsys.readouterr().err
    assert main(["render", mlp, "--format", "mermaid", "-o", str(tmp_path / "a.txt")]) == 0
    assert (tmp_path / "a.txt").read_text() == _text(graphs["mlp"], fmt="mermaid")
    assert main(["render", mlp, "--format", "dot", "-o", str(tmp_path / "b.mmd")]) == 1
    assert capsys.readouterr().err == f"<command line>:1:1: error: -o {tmp_path / 'b.mmd'} names mermaid, but --format is dot\n"
    assert main(["render", mlp, "--format", "dot", "-o", str(tmp_path / "b.data")]) == 0
    assert (tmp_path / "b.data").read_text().startswith('digraph "mlp" {')
    assert main(["render", mlp, "-o", str(tmp_path / "missing" / "a.mmd")]) == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'missing' / 'a.mmd'}:1:1: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dot", "a.gv", "a.mmd", "a.txt", "b.data"]


def test_render_command_line_errors(capsys):
    mlp = str(ROOT / "specs" / "mlp.yaml")
    assert main(["render", mlp, "--depth", "-1"]) == 1
    assert capsys.readouterr().err == "<command line>:1:1: error: --depth must be 0 or more, got -1\n"
    with pytest.raises(SystemExit) as e:
        main(["render", mlp, "--depth", "1", "--expand"])
    assert e.value.code == 1 and "not allowed with argument" in capsys.readouterr().err
    assert main(["render", mlp, "--dim", "hiden=3"]) == 1
    assert "error: --dim hiden: the spec has no dim 'hiden'" in capsys.readouterr().err


# -- determinism ---------------------------------------------------------------------------------------

def test_rendering_is_deterministic(graphs, tmp_path):
    for name in ("resnet18", "googlenet", "transformer_encoder", "lstm"):
        for depth in (0, 1, None):
            for fmt in ("mermaid", "dot"):
                first = render(graphs[name], fmt, depth)
                assert render(load(ROOT / "specs" / f"{name}.yaml").graph, fmt, depth) == first
    # across processes with different hash seeds (no set or dict order leaks into the output)
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"g{seed}.mmd"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-m", "graphnet", "render", str(ROOT / "specs" / "googlenet.yaml"),
                        "--expand", "-o", str(out)], check=True, env=env, capture_output=True)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == render(graphs["googlenet"], "mermaid", None)
    if shutil.which("dot"):
        assert render(graphs["resnet18"], "svg", 1) == render(graphs["resnet18"], "svg", 1)


def test_depth_opens_block_calls(graphs):
    g = graphs["resnet18"]
    collapsed = parse_mermaid(_text(g))
    assert collapsed["subgraphs"] == {}
    labels = [label for _, label in collapsed["nodes"].values()]
    assert labels[:6] == ["image", "conv1<br>std.conv2d 7x7,64,stride 2", "bn1<br>std.batch_norm", "relu",
                          "max_pool 3x3,stride 2", "layer1.0<br>std.basic_block 64"]
    assert "layer2.0<br>std.basic_block 128,stride 2" in labels and labels[-2:] == ["fc<br>std.linear 1000", "logits"]
    one = parse_mermaid(_text(g, 1))
    assert one["subgraphs"]["s_layer2_0"]["title"] == "layer2.0: std.basic_block"
    assert all(v["parent"] is None for v in one["subgraphs"].values())
    full = parse_mermaid(_text(g, None))
    assert full["subgraphs"]["s_layer2_0_downsample_0"]["parent"] == "s_layer2_0_downsample"
    # params are folded into labels, never drawn: the fc weight's transpose is not a node
    assert "n_fc_weight_t" not in full["nodes"] and full["nodes"]["n_fc_matmul"][1] == "matmul W 512×1000"
    assert full["nodes"]["n_fc_add"][1] == "add bias"
    assert len(full["nodes"]) == len(g.nodes) - 1 + 2     # every primitive but the transpose, plus the io
    # free dims stay symbolic, bound ones are numbers
    assert ("in_image", "n_conv1", False, "B×3×224×224") in collapsed["edges"]
    assert ("in_image", "n_conv1", False, "8×3×224×224") in parse_mermaid(_text(g, dims={"B": 8}))["edges"]


# -- the residual blocks of notes 002 ------------------------------------------------------------------
#
# Each flowchart of notes 002, transcribed as a graph: node kinds (a conv as `conv KxK,OUT[,stride S]`,
# as the notes write `3x3,128,stride:2`), edges, the shortcut edges, and the channels coming in and
# going out. The notes leave out batch norm (they say a BN follows every conv), so the rendered block
# is compared with its batch norms contracted. The notes draw the shortcut of a downsampling block
# and of the inverted residual dotted, and the identity of a stride-1 ResNet block solid; graphnet
# dots every shortcut, so the shortcut edges are compared as a set of their own.

NOTES = {
    "basic block, stride 2": {       # in,64 -> 3x3,128,stride 2 -> relu -> 3x3,128 -> add -> relu -> out,128
        "nodes": {"c1": "conv 3x3,128,stride 2", "r1": "relu", "c2": "conv 3x3,128", "add": "add", "r2": "relu",
                  "proj": "conv 1x1,128,stride 2"},
        "path": ["IN", "c1", "r1", "c2", "add", "r2", "OUT"],
        "shortcut": [("IN", "proj"), ("proj", "add")],
        "channels": ("64", "128"),
    },
    "basic block, stride 1": {       # in,256 -> 3x3,256 -> relu -> 3x3,256 -> add -> relu -> out,256
        "nodes": {"c1": "conv 3x3,256", "r1": "relu", "c2": "conv 3x3,256", "add": "add", "r2": "relu"},
        "path": ["IN", "c1", "r1", "c2", "add", "r2", "OUT"],
        "shortcut": [("IN", "add")],
        "channels": ("256", "256"),
    },
    "bottleneck, stride 1": {        # in,256 -> 1x1,64 -> relu -> 3x3,64 -> relu -> 1x1,256 -> add -> relu -> out,256
        "nodes": {"c1": "conv 1x1,64", "r1": "relu", "c2": "conv 3x3,64", "r2": "relu", "c3": "conv 1x1,256",
                  "add": "add", "r3": "relu"},
        "path": ["IN", "c1", "r1", "c2", "r2", "c3", "add", "r3", "OUT"],
        "shortcut": [("IN", "add")],
        "channels": ("256", "256"),
    },
    "inverted residual": {           # in,24 -> 1x1,24*6 -> relu6 -> dw 3x3 -> relu6 -> 1x1,24 -> add -> out,24
        "nodes": {"c1": "conv 1x1,144", "r1": "relu6", "c2": "conv 3x3,144,depthwise", "r2": "relu6",
                  "c3": "conv 1x1,24", "add": "add"},
        "path": ["IN", "c1", "r1", "c2", "r2", "c3", "add", "OUT"],
        "shortcut": [("IN", "add")],
        "channels": ("24", "24"),
    },
    "inverted residual, stride 2": {  # the notes: no shortcut when the stride is 2 or the channels change
        "nodes": {"c1": "conv 1x1,96", "r1": "relu6", "c2": "conv 3x3,96,stride 2,depthwise", "r2": "relu6",
                  "c3": "conv 1x1,24"},
        "path": ["IN", "c1", "r1", "c2", "r2", "c3", "OUT"],
        "shortcut": [],
        "channels": ("16", "24"),
    },
}

# (spec, the block call, the depths that draw it at the notes' level of detail)
BLOCKS = {
    "basic block, stride 2": ("resnet18", "layer2.0", (1, None)),
    "basic block, stride 1": ("resnet18", "layer3.1", (1, None)),
    "bottleneck, stride 1": ("resnet50", "layer1.1", (1, None)),
    "inverted residual": ("mobilenet_v2", "features.3", (3, None)),
    "inverted residual, stride 2": ("mobilenet_v2", "features.2", (3, None)),
}


def _kind(label: str) -> str:
    """What a node is, the notes' way: `conv 3x3,128,stride 2` for a conv or a block around one conv."""
    text = label.split("<br>")[-1]
    head, _, args = text.partition(" ")
    if re.match(r"\d+x\d+,", args):
        return f"conv {args}"
    if head in ("batch_norm", "std.batch_norm"):
        return "batch_norm"
    if text == "clip 0..6":
        return "relu6"
    return text


def _block_graph(parsed: dict, path: str) -> nx.DiGraph:
    """The drawn block call at `path` as a graph of node kinds: what feeds it is one node IN, what
    it feeds is OUT; edges carry their shape label and whether they are dotted. Batch norms are
    contracted."""
    sub = next(k for k, v in parsed["subgraphs"].items() if v["title"].split(": ")[0] == path)
    inside, todo = set(), [sub]
    while todo:
        s = todo.pop()
        inside.update(parsed["subgraphs"][s]["nodes"])
        todo += [k for k, v in parsed["subgraphs"].items() if v["parent"] == s]
    g = nx.DiGraph()
    for n in inside:
        g.add_node(n, kind=_kind(parsed["nodes"][n][1]))
    g.add_node("IN", kind="IN")
    g.add_node("OUT", kind="OUT")
    for src, dst, dotted, label in parsed["edges"]:
        if src in inside or dst in inside:
            # an edge out of the block is drawn for its consumer: dotted when it is the next block's shortcut
            g.add_edge(src if src in inside else "IN", dst if dst in inside else "OUT",
                       dotted=dotted and dst in inside, label=label)
    for n in [n for n, kind in g.nodes(data="kind") if kind == "batch_norm"]:
        (p, _, e_in), = g.in_edges(n, data=True)
        for _, s, e_out in list(g.out_edges(n, data=True)):
            g.add_edge(p, s, dotted=e_in["dotted"] or e_out["dotted"], label=e_out["label"])
        g.remove_node(n)
    return g


@pytest.mark.parametrize("case", list(NOTES))
def test_residual_blocks_match_the_notes(graphs, case):
    notes = NOTES[case]
    expected = nx.DiGraph()
    expected.add_node("IN", kind="IN")
    expected.add_node("OUT", kind="OUT")
    for n, kind in notes["nodes"].items():
        expected.add_node(n, kind=kind)
    expected.add_edges_from(zip(notes["path"], notes["path"][1:]), dotted=False)
    expected.add_edges_from(notes["shortcut"], dotted=True)
    spec, path, depths = BLOCKS[case]
    for depth in depths:
        drawn = _block_graph(parse_mermaid(_text(graphs[spec], depth)), path)
        where = f"{case}: {spec} {path} at depth {depth}"
        assert nx.is_isomorphic(drawn, expected, node_match=lambda a, b: a["kind"] == b["kind"]), \
            f"{where}\ndrawn: {sorted((drawn.nodes[a]['kind'], drawn.nodes[b]['kind']) for a, b in drawn.edges)}"
        dotted = {(drawn.nodes[a]["kind"], drawn.nodes[b]["kind"]) for a, b, d in drawn.edges(data="dotted") if d}
        assert dotted == {(expected.nodes[a]["kind"], expected.nodes[b]["kind"]) for a, b in notes["shortcut"]}, where
        # the channels in and out, as the notes label `in,64` and `out,128`, from the shapes on the edges
        ins = {d["label"].split("×")[1] for _, _, d in drawn.out_edges("IN", data=True)}
        outs = {d["label"].split("×")[1] for _, _, d in drawn.in_edges("OUT", data=True)}
        assert (ins, outs) == ({notes["channels"][0]}, {notes["channels"][1]}), where


def test_build_marks_only_residual_shortcuts(graphs):
    # an inception module's four branches join in a concat: no branch is a shortcut
    d = build(graphs["googlenet"], depth=1)
    assert not any(e.shortcut for e in d.edges if "inception" in e.dst)
    # a transformer layer's two residual adds each get one dotted identity edge
    d = build(graphs["transformer_encoder"], depth=2)
    dotted = [(e.src, e.dst) for e in d.edges if e.shortcut]
    assert len(dotted) == 2 * 6 and all(dst.endswith(("add1", "add2")) for _, dst in dotted)


def test_a_graphviz_layout_that_runs_too_long_is_stopped(tmp_path, capsys, monkeypatch):
    # issue 13: dot took 430 s on a 22,650-edge graph; a `dot` that never finishes stands in for it
    import graphnet.render
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(graphnet.render, "DOT_TIMEOUT_S", 0.5)
    out = tmp_path / "mlp.svg"
    assert main(["render", str(ROOT / "specs" / "mlp.yaml"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("<command line>:1:1: error: Graphviz's dot took over 0.5 s to lay out the graph"), err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG\r\n\x1a\n"), ("pdf", b"%PDF-")])
def test_png_and_pdf_through_graphviz(tmp_path, capsys, fmt, magic):
    _dot_or_skip()
    out = tmp_path / f"mlp.{fmt}"
    assert main(["render", str(ROOT / "specs" / "mlp.yaml"), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out} ({fmt})\n"
    assert out.read_bytes().startswith(magic)


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_laid_out_formats_ask_dot_for_that_format(tmp_path, capsys, monkeypatch, fmt):
    # a stand-in for dot that says what it was asked: the -T flag and the DOT text it was given
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$1"\ncat\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / f"mlp.{fmt}"
    assert main(["render", str(ROOT / "specs" / "mlp.yaml"), "-o", str(out)]) == 0
    flag, _, dot = out.read_text().partition("\n")
    assert flag == f"-T{fmt}" and dot == _text(load(ROOT / "specs" / "mlp.yaml").graph, fmt="dot")


def test_png_without_graphviz_is_a_located_error(tmp_path, capsys, monkeypatch):
    import graphnet.render
    monkeypatch.setattr(graphnet.render.shutil, "which", lambda name: None)
    assert main(["render", str(ROOT / "specs" / "mlp.yaml"), "-o", str(tmp_path / "x.png")]) == 1
    assert capsys.readouterr().err.startswith("<command line>:1:1: error: --format png needs Graphviz's 'dot'")
    assert list(tmp_path.iterdir()) == []
