"""Folding a flat import into the spec a person would have written.

1. Known layers become std calls (layers.py): a conv with its `P.weight`/`P.bias` is `std.conv2d`
   called at path P, batch norm `std.batch_norm`, transpose-matmul-add `std.linear`, layer norm
   `std.layer_norm`.
2. Every item gets a qualified path (a call its params' prefix, an op its exporter's module scope)
   and the paths make a module tree. A module with one output is an instance: its members, wired
   to each other, to its inputs and to the params its ops read (declared in its block at their
   path below it, where no other module reads them), give its signature. torch's SiLU
   (x * sigmoid(x)) is one silu item.
3. Instances with one signature, at any depth, are one block; a block called once is written in
   place. An argument whose value differs between instances
   (a width, a stride, a free dim) becomes a block arg with the most common value as its default;
   a member that only some instances have (a projection shortcut, whose skipping forwards the
   block's input) is kept under `if:`.
4. Calls of one block at paths `M.0, M.1, ...` chained one into the next become one node with
   `repeat` (args that differ only in the first copy written `"A if index == 0 else B"`) or
   `for_each`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from .body import _Body
from .convert import Imported
from .emit import flow, header, inputs_lines, params_section
from .layers import Block, Instance, Item, leaf_items


def _refs_in(member) -> list[str]:
    if isinstance(member, Item):
        return [r for r in member.inputs if r is not None]
    return list(member.inputs)


def _uses_in(member) -> list[str]:
    """Every read of an outside value by the member, counted as often as it is read (an
    instance's inputs list each value once: squeeze-excitation reads its input twice)."""
    if isinstance(member, Item):
        return [r for r in member.inputs if r is not None]
    produced = {r for m in member.members for r in m.outputs}
    return [r for m in member.members for r in _uses_in(m) if r not in produced]


def structured_spec(imp: Imported) -> str | None:
    items = leaf_items(imp)
    if not items:
        return None
    tree = _Tree(imp, items)
    top = tree.build("")
    blocks = tree.define_blocks()
    # a block made once (a model's `features` or `encoder` Sequential) is only indirection: its
    # members are written in place, and its params at the top
    spliced: set[str] = set()
    gone: list = []
    top = _spliced(top, spliced, gone)
    blocks = [b for b in blocks if not any(b is g for g in gone)]
    lines = header(imp) + ["use: [std]"] + inputs_lines(imp)
    params = {k: v for k, v in params_section(imp).items() if k in tree.loose_params or k in spliced}
    if params:
        lines.append("params:")
        lines += [f"  {k}: {flow(v)}" for k, v in params.items()]
    if blocks:
        lines.append("blocks:")
        for b in blocks:
            lines += tree.block_lines(b)
    body = _Body(tree, "", {}, top)
    lines.append("nodes:")
    lines += ["  - " + flow(n) for n in body.nodes()]
    lines.append("outputs: " + flow({k: body.local(r) for k, r in imp.outputs.items()}))
    return "\n".join(lines) + "\n"


def _spliced(members: list, params: set[str], gone: list) -> list:
    out = []
    for m in members:
        if isinstance(m, Instance) and len(m.block.instances) == 1:
            params.update(m.params)
            gone.append(m.block)
            out += _spliced(m.members, params, gone)
        else:
            out.append(m)
    return sorted(out, key=lambda m: m.first)


class _Tree:
    def __init__(self, imp: Imported, items: list[Item]):
        self.imp = imp
        self.items = items
        self.users: dict[str, int] = Counter(r for it in items for r in it.inputs if r is not None)
        self.users.update(imp.outputs.values())
        self.loose_params = {r for it in items if it.kind == "op" for r in it.inputs if r in imp.params}
        self.param_users = Counter(r for it in items if it.kind == "op" for r in it.inputs if r in imp.params)
        self.instances: list[Instance] = []
        by_parent: dict[str, list] = defaultdict(list)
        for it in items:
            by_parent[_parent(it.path)].append(it)
        self.children = by_parent
        self.modules = sorted({p for it in items for p in _prefixes(it.path)}, key=lambda p: -p.count("."))

    def build(self, module: str) -> list:
        """The members of `module`, innermost modules folded into instances first."""
        members = list(self.children.get(module, []))
        for sub in sorted({m for m in self.modules if _parent(m) == module and m}):
            members += self._module(sub)
        return sorted(members, key=lambda m: m.first)

    def _module(self, module: str) -> list:
        members = self.build(module)
        if len(members) < 2:
            return members
        produced = {r for m in members for r in m.outputs}
        inputs: list[str] = []
        for m in members:
            for r in _refs_in(m):
                if r not in produced and r not in inputs:
                    inputs.append(r)
        inner = Counter(r for m in members for r in _uses_in(m) if r in produced)
        outs = [r for r in produced if self.users.get(r, 0) > inner.get(r, 0)]
        owned = self._owned_params(module, members)
        if owned is None:
            return members
        inputs = [r for r in inputs if r not in owned]
        if len(outs) != 1 or not inputs or any(r in self.imp.params for r in inputs):
            return members
        if all(isinstance(m, Instance) and m.path.rpartition(".")[2].isdigit() for m in members):
            return members        # a Sequential of blocks: a run in its parent, not a block of its own
        inst = Instance(module, members, inputs, outs[0], params=owned)
        self.loose_params -= set(owned)
        self.instances.append(inst)
        return [inst]

    def _owned_params(self, module: str, members: list) -> dict | None:
        """The params the module's ops read (a transformer layer's MatMul weights, torch's
        pre-transposed ones), declared in its block at their path below it; None where one lies
        outside the module or is read outside it too (tied), which keeps the module unfolded."""
        owned: dict = {}
        for m in members:
            if not (isinstance(m, Item) and m.kind == "op"):
                continue
            for r in m.inputs:
                if r not in self.imp.params or r in owned:
                    continue
                p = self.imp.params[r]
                if not p.path.startswith(module + "."):
                    return None
                owned[r] = (p.path[len(module) + 1:], tuple(p.array.shape), p.array.dtype.name, p.trainable)
        reads = Counter(r for m in members if isinstance(m, Item) and m.kind == "op" for r in m.inputs if r in owned)
        if any(reads[r] != self.param_users[r] for r in owned):
            return None
        return owned

    # -- blocks ------------------------------------------------------------------------------
    def define_blocks(self) -> list[Block]:
        blocks: dict[tuple, Block] = {}
        names: set[str] = set()
        # innermost first, so that a member's block is named when its parent's signature is made;
        # one signature at two depths (mobilenet_v2's conv + relu6 as its stem and inside each
        # inverted residual) is one block
        for depth in sorted({i.path.count(".") for i in self.instances}, reverse=True):
            groups: dict[tuple, list[Instance]] = defaultdict(list)
            for inst in self.instances:
                if inst.path.count(".") == depth:
                    groups[_skeleton(inst)].append(inst)
            for key, insts in groups.items():
                if key in blocks:
                    blocks[key].instances.extend(insts)
                else:
                    blocks[key] = Block(_block_name(insts, names), key, insts)
                for inst in insts:
                    inst.block = blocks[key]
        # args once every instance is known, innermost blocks first (a parent's args read its
        # members' values)
        for block in blocks.values():
            _block_args(block)
        return list(blocks.values())

    def block_lines(self, block: Block) -> list[str]:
        inst = max(block.instances, key=lambda i: len(i.members))
        lines = [f"  {block.name}:"]
        if block.args:
            lines.append("    args: " + flow(block.args))
        names = {}
        ins = {}
        for k, r in enumerate(inst.inputs):
            name = "x" if k == 0 else f"x{k + 1}"
            ins[name] = _pattern(self.imp, self, r, "" if k == 0 else str(k + 1))
            names[r] = name
        lines.append("    inputs: " + flow(ins))
        if inst.params:
            lines.append("    params:")
            for r, (rel, shape, dtype, trainable) in inst.params.items():
                key = _param_key(rel, set(names.values()))
                names[r] = key
                entry = {"shape": list(shape), "init": "zeros"}
                if dtype != "float32":
                    entry["dtype"] = dtype
                if not trainable:
                    entry["trainable"] = False
                if rel != key:
                    entry["path"] = rel
                lines.append(f"      {key}: {flow(entry)}")
        body = _Body(self, inst.path, names, inst.members, block)
        lines.append("    nodes:")
        lines += ["      - " + flow(n) for n in body.nodes()]
        lines.append("    outputs: " + flow({"y": body.local(inst.output)}))
        return lines

    def type_of(self, ref: str):
        if ref in self.imp.inputs:
            return self.imp.inputs[ref]
        for it in self.items:
            if ref in it.outputs:
                return it.types[it.outputs.index(ref)]
        return None


def _param_key(rel: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", rel)
    if not re.match(r"[A-Za-z_]", base):
        base = f"p_{base}"
    key, k = base, 2
    while key in taken:
        key, k = f"{base}_{k}", k + 1
    return key


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _describe(member, index: dict[str, tuple], inputs: list[str], params: dict) -> tuple:
    if isinstance(member, Item):
        what = (member.kind, member.what, tuple(sorted(member.args)))
    else:
        what = ("block", member.block.name)
    wiring = []
    for r in (member.inputs if isinstance(member, Item) else member.inputs):
        if r is None:
            wiring.append(None)
        elif r in index:
            wiring.append(index[r])
        elif r in inputs:
            wiring.append(("in", inputs.index(r)))
        elif r in params:
            wiring.append(("param",) + params[r])
        else:
            wiring.append(("ext", r))
    return what + (tuple(wiring),)


def _optional(inst: Instance) -> dict[int, int]:
    """Members that take only a block input also used elsewhere and feed one join: skipping one
    forwards that input (a projection shortcut). Member index -> the block input it takes."""
    out = {}
    for j, m in enumerate(inst.members):
        refs = _refs_in(m)
        if (isinstance(m, Item) and m.kind != "call") or len(refs) != 1 or refs[0] not in inst.inputs:
            continue
        others = [o for o in inst.members if o is not m and refs[0] in _refs_in(o)]
        consumers = [o for o in inst.members if m.outputs[0] in _refs_in(o)]
        if others and len(consumers) == 1 and isinstance(consumers[0], Item) and consumers[0].what in ("add", "mul"):
            out[j] = inst.inputs.index(refs[0])
    return out


def _skeleton(inst: Instance) -> tuple:
    skip = _optional(inst)
    forward = {inst.members[j].outputs[0]: inst.inputs[k] for j, k in skip.items()}
    index: dict[str, tuple] = {}
    descs = []
    for j, m in enumerate(inst.members):
        if j in skip:
            continue
        renamed = m.inputs if not forward else [forward.get(r, r) for r in m.inputs]
        descs.append(_describe(_with_inputs(m, renamed), index, inst.inputs, inst.params))
        for o, r in enumerate(m.outputs):
            index[r] = (len(descs) - 1, o)
    return (len(inst.inputs),) + tuple(descs)


def _with_inputs(m, inputs):
    if isinstance(m, Item):
        return Item(m.kind, m.what, m.args, list(inputs), m.outputs, m.types, m.path, m.first, m.params, m.onnx)
    clone = Instance(m.path, m.members, list(inputs), m.output, m.block, m.values, m.params)
    return clone


def _block_name(insts: list[Instance], taken: set[str]) -> str:
    inst = insts[0]
    skip = _optional(inst)
    convs = sum(1 for j, m in enumerate(inst.members)
                if isinstance(m, Item) and m.what == "std.conv2d" and j not in skip)
    joins = any(isinstance(m, Item) and m.what == "add" for m in inst.members)
    kept = [m for j, m in enumerate(inst.members) if j not in skip]
    act = _activation(kept[-1]) if len(kept) == 2 and isinstance(kept[0], Item) else None
    if joins and convs == 2:
        base = "basic_block"
    elif joins and convs == 3:
        base = "bottleneck"
    elif act and kept[0].what in ("std.conv2d", "conv"):
        base = f"conv_{act}"
    elif (isinstance(kept[0], Item) and kept[0].what == "global_avg_pool" and isinstance(kept[-1], Item)
          and kept[-1].what == "mul" and inst.inputs[0] in _refs_in(kept[-1])):
        base = "squeeze_excitation"       # x * gate(pool(x))
    elif (len(inst.members) == 2 and isinstance(inst.members[0], Instance) and isinstance(inst.members[1], Item)
          and inst.members[1].what == "add" and inst.inputs[0] in _refs_in(inst.members[1])):
        base = f"residual_{inst.members[0].block.name}"       # x + f(x)
    else:
        segs = [s for s in inst.path.split(".") if not s.isdigit()]
        base = re.sub(r"\d+$", "", segs[-1] if segs else "block").strip("_") or "block"
        base = re.sub(r"[^A-Za-z0-9_]", "_", base)
        if not re.match(r"[A-Za-z_]", base):
            base = f"block_{base}"
    name, k = base, 2
    while name in taken or name.startswith("std"):
        name, k = f"{base}{k}", k + 1
    taken.add(name)
    return name


_ACTIVATIONS = {"relu", "sigmoid", "tanh", "silu", "gelu", "hard_swish", "hard_sigmoid", "leaky_relu", "elu"}


def _activation(m) -> str | None:
    """The activation an op item is, by the name PyTorch gives it (clip to [0, 6] is relu6)."""
    if not isinstance(m, Item) or m.kind != "op":
        return None
    if m.what == "clip" and m.args.get("min") == 0.0 and m.args.get("max") == 6.0:
        return "relu6"
    return m.what if m.what in _ACTIVATIONS else None


def _block_args(block: Block) -> None:
    """Args of the members whose values differ between instances (or hold free dims) become block
    args, one per distinct column of values; the most common value is the default."""
    from .layers import symbolic
    full = max(block.instances, key=lambda i: len(i.members))
    skip_full = _optional(full)
    columns: list[tuple[tuple, list]] = []
    for j, m in enumerate(full.members):
        for key in _args_of(m):
            values = []
            for inst in block.instances:
                twin = _twin(inst, full, j)
                values.append(None if twin is None else _args_of(twin).get(key))
            present = [v for v in values if v is not None]
            if len(set(map(repr, present))) > 1 or any(symbolic(v) for v in present):
                columns.append(((j, key), values))
    names: dict[str, list] = {}
    for (j, key), values in columns:
        for name, other in names.items():
            if all(a is None or b is None or repr(a) == repr(b) for a, b in zip(values, other)):
                block.slots[(j, key)] = name
                names[name] = [a if a is not None else b for a, b in zip(values, other)]
                break
        else:
            name = key if key not in names else f"{_short(full.members[j])}_{key}"
            base, k = name, 2
            while name in names:          # two members of one short name ('block.2', 'block.3.0')
                name, k = f"{base}{k}", k + 1
            names[name] = values
            block.slots[(j, key)] = name
    for j in skip_full:
        if any(_twin(inst, full, j) is None for inst in block.instances):
            flag = f"with_{_short(full.members[j])}"
            block.optional[j] = flag
            names[flag] = [_twin(inst, full, j) is not None for inst in block.instances]
    for name, values in names.items():
        present = [v for v in values if v is not None]
        common = Counter(map(repr, present)).most_common(1)[0][0] if present else None
        default = next(v for v in present if repr(v) == common) if present else None
        block.args[name] = {"default": default} if not symbolic(default) else {}
        for inst, v in zip(block.instances, values):
            if v is not None and (symbolic(v) or repr(v) != common):
                inst.values[name] = v


def _args_of(member) -> dict:
    if isinstance(member, Item):
        return member.args
    return {k: member.values.get(k, spec.get("default")) for k, spec in member.block.args.items()}


def _twin(inst: Instance, full: Instance, j: int):
    """The member of `inst` in the place of `full`'s member j (None where inst lacks it)."""
    if inst is full:
        return full.members[j]
    skip_full, skip = _optional(full), _optional(inst)
    kept_full = [k for k in range(len(full.members)) if k not in skip_full]
    kept = [k for k in range(len(inst.members)) if k not in skip]
    if j in skip_full:
        return inst.members[next(iter(skip))] if skip else None
    return inst.members[kept[kept_full.index(j)]]


def _short(member) -> str:
    segs = member.path.split(".")
    seg = next((s for s in reversed(segs) if not s.isdigit()), segs[-1])
    return re.sub(r"[^A-Za-z0-9_]", "_", seg) if re.match(r"[A-Za-z_]", seg) else f"m{seg}"


def _pattern(imp, tree, ref, suffix: str = "") -> list:
    """A block input's shape pattern; the second input's dims are N2, T2, D2 and so on, so that
    inputs of different sizes (a layer's hidden state and its mask) bind dims of their own."""
    t = tree.type_of(ref)
    names = {4: ["N", "C", "H", "W"], 3: ["N", "T", "D"], 2: ["N", "D"], 1: ["D"], 5: ["N", "C", "D", "H", "W"]}
    rank = t.rank if t is not None else 4
    shape = [f"{d}{suffix}" for d in names.get(rank, [f"d{i}" for i in range(rank)])]
    return shape if t is None or t.dtype == "float32" else {"shape": shape, "dtype": t.dtype}

