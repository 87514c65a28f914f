"""How long validating a spec takes: `graphnet.load` plus the summary table in this process (the
std library already parsed, as in a long-lived tool), and `graphnet validate SPEC` as a cold
command in a fresh process (interpreter start, imports, std library parse included)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import graphnet as gn

from .suite import SPECS


def cli_command() -> list[str]:
    """The installed `graphnet` script next to this interpreter, else `python -m graphnet`."""
    script = Path(sys.executable).parent / "graphnet"
    if script.is_file():
        return [str(script)]
    found = shutil.which("graphnet")
    return [found] if found else [sys.executable, "-m", "graphnet"]


def time_validate(model: str, repeat: int = 5) -> dict:
    spec = SPECS / f"{model}.yaml"
    in_process = []
    for _ in range(repeat):
        start = time.perf_counter()
        gn.load(spec).summary()
        in_process.append(time.perf_counter() - start)
    cold = []
    for _ in range(max(1, min(repeat, 3))):
        start = time.perf_counter()
        proc = subprocess.run(cli_command() + ["validate", str(spec)], cwd=SPECS.parent,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cold.append(time.perf_counter() - start)
        if proc.returncode != 0:
            return {"spec": model, "error": proc.stderr.strip().splitlines()[-1:]}
    return {"spec": model, "in_process_s": statistics.median(in_process), "in_process_first_s": in_process[0],
            "cli_s": statistics.median(cold), "cli_min_s": min(cold), "cli": " ".join(cli_command()[-1:] + ["validate"]),
            "repeat": repeat, "cli_repeat": len(cold)}
