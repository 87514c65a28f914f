"""Write scikit-learn's 8x8 handwritten digits (shipped inside the package: no download) as
train/val/test .npz files for `graphnet train`: `image` float32 [N, 1, 8, 8] scaled to [0, 1] and
`target` int64 class labels, split 70/10/20 by a fixed permutation.

    python tools/digits_data.py data/      # data/digits_train.npz, digits_val.npz, digits_test.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SPLITS = (("train", 0.7), ("val", 0.1), ("test", 0.2))


def digits_splits(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    from sklearn.datasets import load_digits
    digits = load_digits()
    image = (digits.images / 16.0).astype(np.float32)[:, None]
    target = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(target))
    out, start = {}, 0
    for i, (name, share) in enumerate(SPLITS):
        stop = len(order) if i == len(SPLITS) - 1 else start + round(share * len(order))
        index = order[start:stop]
        out[name] = {"image": image[index], "target": target[index]}
        start = stop
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 1
    from graphnet.weights import save_npz
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    for name, arrays in digits_splits().items():
        path = folder / f"digits_{name}.npz"
        save_npz(path, arrays)
        print(f"wrote {path} ({len(arrays['target'])} examples)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
