"""Generation benchmark: a Huadu-sized synthetic district against the 2-minute budget.

Usage: ``.venv/bin/python -m bench.generate [--scale 1] [--seed 0] [--out DIR]``.
Prints wall time, rows, peak memory and the slowest layers. There is no peer tool for
this; the figure to watch is the ratio to the budget (target <= 1.0 at scale 1).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from cases.district_inputs import asset_layer_codes
from layers.synthetic.generate import generate

BUDGET_S = 120.0


def main() -> None:
    """Generate once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="sibiao-gen-"))
    start = time.perf_counter()
    report = generate(out, scale=args.scale, seed=args.seed, truth_layers=asset_layer_codes())
    seconds = time.perf_counter() - start
    rows = sum(layer.rows for layer in report.layers)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"scale {args.scale}: {rows:,} rows in {seconds:.1f} s, peak {peak_mb:,.0f} MB")
    print(
        f"ratio to the {BUDGET_S:.0f} s budget: {seconds / BUDGET_S:.2f} (target <= 1.0 at scale 1)"
    )
    for layer in sorted(report.layers, key=lambda r: -r.seconds)[:8]:
        print(f"  {layer.layer:<28} {layer.rows:>10,} rows {layer.seconds:6.1f} s")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
