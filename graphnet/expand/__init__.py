"""Expansion: a loaded spec becomes the flat, typed Graph IR.

Blocks are instantiated, repeats unrolled, expressions evaluated, and each primitive node's shape
rule applied as the node is made. Typing happens here, not in a later pass, because a block's input
pattern binds symbols (a conv learns C_in from its input) that its param shapes need.

Mistakes are collected, not raised one at a time: a node that fails poisons its outputs, nodes fed
by poisoned tensors are skipped silently, and every independent error is reported in one run.

The package, from the bottom up: `state` (the expansion's state, the body being expanded, the
values between nodes), `scope` (evaluating values; the scopes of the spec, a library, a copy),
`names` (every name the Graph IR gets), `refs` (references to tensors, what was used), then
`params`, `op_nodes`, `blocks` and `scan` (one kind of thing each), and `core`, the recursion over
nodes, copies, block calls and bodies, the only module that calls back into itself.
"""

from .core import MAX_BLOCK_DEPTH, MAX_COPIES_IN_ALL, MAX_NODES, expand
from .scope import MAX_COPIES

__all__ = ["MAX_BLOCK_DEPTH", "MAX_COPIES", "MAX_COPIES_IN_ALL", "MAX_NODES", "expand"]
