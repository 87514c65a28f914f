"""Writing one body (the top level, or a recovered block) as node lines: local names, paths only
where the name does not say it, implicit chaining where a node takes the previous one's output,
runs of one block's chained calls as one node with `repeat` or `for_each`."""

from __future__ import annotations

import re

import numpy as np

from ..dims import Dim
from .emit import dim_text, scalar
from .layers import STD_DEFAULTS, Instance, Item, Run


def _value(v):
    """An arg or attr value as the spec writes it: free dims as expression strings."""
    if isinstance(v, Dim):
        return v.value if v.is_const() else dim_text(v)
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    return v


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return np.float32(a) == np.float32(b)      # ONNX holds float attributes as float32
    return type(a) is type(b) and repr(a) == repr(b)


class _Body:
    def __init__(self, tree, prefix: str, names: dict[str, str], members: list, block=None):
        self.tree = tree
        self.prefix = prefix
        self.names = dict(names)          # flat ref -> local reference
        self.block = block
        self.members = members
        self.full = members               # a block's body is written from its fullest instance
        self.taken: set[str] = set(names.values())

    # -- references --------------------------------------------------------------------------
    def local(self, ref):
        if ref is None:
            return None
        return self.names.get(ref, ref)

    def _name(self, rel: str) -> str:
        seg = rel.rpartition(".")[2] if rel else "node"
        base = seg if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", seg) else re.sub(r"[^A-Za-z0-9_]", "_", rel)
        if not re.match(r"[A-Za-z_]", base):
            base = f"n{base}"
        name, k = base, 2
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def _rel(self, path: str) -> str:
        if self.prefix and path == self.prefix:
            return ""             # a run of the block's own numbered members: `path: "{index}"`
        return path[len(self.prefix) + 1:] if self.prefix and path.startswith(self.prefix + ".") else path

    # -- runs --------------------------------------------------------------------------------
    def _grouped(self) -> list:
        out, i = [], 0
        ms = self.members
        while i < len(ms):
            m = ms[i]
            run = [m]
            if isinstance(m, Instance) and m.block is not None:
                parent, _, k = m.path.rpartition(".")
                while k.isdigit() and i + len(run) < len(ms):
                    nxt = ms[i + len(run)]
                    if not (isinstance(nxt, Instance) and nxt.block is m.block
                            and nxt.path == f"{parent}.{int(k) + len(run)}"
                            and nxt.inputs[0] == run[-1].output and nxt.inputs[1:] == m.inputs[1:]):
                        break
                    run.append(nxt)
            if len(run) > 1:
                out.append(Run(m.path.rpartition(".")[0], run))
            else:
                out.append(m)
            i += len(run)
        return out

    # -- node lines --------------------------------------------------------------------------
    def nodes(self) -> list[dict]:
        lines = []
        previous = None
        for j, m in self._indexed():
            if isinstance(m, Run):
                line = self._run(m)
            elif isinstance(m, Instance):
                line = self._call(m, m.block.name, self._inst_args(m, j))
            elif m.kind == "call":
                line = self._call(m, m.what, self._std_args(m, j))
            else:
                line = self._op(m, j)
            refs = [self.local(r) for r in (m.inputs if not isinstance(m, Item) else m.inputs)]
            while refs and refs[-1] is None:
                refs.pop()
            if not (len(refs) == 1 and previous is not None and refs[0] == previous and j not in self._optional()):
                line["inputs"] = refs[0] if len(refs) == 1 else refs
            flag = self._optional().get(j)
            if flag:
                line["if"] = flag
            lines.append(_ordered(line))
            out = m.outputs[0] if len(m.outputs) == 1 else None
            previous = self.local(out) if out is not None else None
        return lines

    def _indexed(self):
        grouped = self._grouped()
        index = {id(m): j for j, m in enumerate(self.full)}
        return [(index.get(id(m), -1), m) for m in grouped]

    def _optional(self) -> dict:
        return self.block.optional if self.block is not None else {}

    def _bind(self, m, name: str) -> None:
        outs = m.outputs
        if len(outs) == 1:
            self.names[outs[0]] = name
        else:
            for r in outs:
                self.names[r] = f"{name}.{r.rpartition('.')[2]}"

    def _named(self, m, line: dict, path: str) -> dict:
        rel = self._rel(path)
        name = self._name(rel)
        line = {"name": name, **line}
        if rel != name:
            line["path"] = rel
        self._bind(m, name)
        return line

    def _slot(self, j: int, key: str):
        if self.block is None:
            return None
        return self.block.slots.get((j, key))

    def _op(self, m: Item, j: int) -> dict:
        from ..ops import OPS
        fields = OPS[m.what].model_fields
        attrs = {}
        for k, v in m.args.items():
            slot = self._slot(j, k)
            if slot:
                attrs[k] = slot
            elif fields[k].is_required() or not _same(v, fields[k].default):
                attrs[k] = _value(v)
        line = {"op": m.what}
        if attrs:
            line["attrs"] = attrs
        rel = self._rel(m.path)
        name = self._name(rel.replace(".", "_") if "." in rel else rel)
        out = {"name": name, **line}
        self._bind(m, name)
        return out

    def _std_args(self, m: Item, j: int) -> dict:
        defaults = STD_DEFAULTS.get(m.what, {})
        args = {}
        for k, v in m.args.items():
            slot = self._slot(j, k)
            if slot:
                args[k] = slot
            elif k not in defaults or not _same(v, defaults[k]):
                args[k] = _value(v)
        return args

    def _inst_args(self, m, j: int) -> dict:
        args = {}
        for k in m.block.args:
            slot = self._slot(j, k)
            if slot:
                args[k] = slot
            elif k in m.values:
                args[k] = _value(m.values[k])
        return args

    def _run_values(self, inst, j: int) -> dict:
        """A copy's args in a run: inside a block, an arg that is one of the block's args (a
        width that differs between the block's instances) is written as that arg's name."""
        values = dict(inst.values)
        for k in inst.block.args:
            slot = self._slot(j, k)
            if slot:
                values[k] = slot
        return values

    def _call(self, m, block: str, args: dict) -> dict:
        line = {"block": block}
        if args:
            line["args"] = args
        return self._named(m, line, m.path)

    def _run(self, run) -> dict:
        block = run.instances[0].block
        index = {id(m): j for j, m in enumerate(self.full)}
        values = [self._run_values(inst, index.get(id(inst), -1)) for inst in run.instances]
        n = len(values)
        line = {"block": block.name}
        if all(v == values[0] for v in values):
            line["repeat"] = n
            if values[0]:
                line["args"] = {k: _value(v) for k, v in values[0].items()}
        elif all(v == values[1] for v in values[1:]):
            line["repeat"] = n
            args = {}
            for k in sorted(set(values[0]) | set(values[1]), key=list(block.args).index):
                a = values[0].get(k, block.args[k].get("default"))
                b = values[1].get(k, block.args[k].get("default"))
                if _same(a, b):
                    args[k] = _value(a)
                elif isinstance(a, bool) and isinstance(b, bool):
                    args[k] = "index == 0" if a else "index != 0"
                else:
                    args[k] = f"{_expr(a)} if index == 0 else {_expr(b)}"
            line["args"] = args
        else:
            line["for_each"] = [{k: _value(v) for k, v in vals.items()} for vals in values]
        first = run.instances[0].path.rpartition(".")[2]
        rel = self._rel(run.path)
        named = self._named(run, line, run.path if rel else block.name)
        index = "{index}" if first == "0" else f"{{index + {first}}}"
        if not rel:
            named["path"] = index
        elif first != "0" or "path" in named:      # a copy's path replaces NAME.k: it says the index
            named["path"] = f"{rel}.{index}"
        return named


def _expr(v) -> str:
    v = _value(v)
    if isinstance(v, str):
        return v if re.match(r"^[A-Za-z0-9_ .*+/()-]+$", v) else repr(v)
    return scalar(v)


def _ordered(line: dict) -> dict:
    order = ["name", "op", "block", "repeat", "for_each", "path", "args", "attrs", "inputs", "if"]
    return {k: line[k] for k in order if k in line}
