"""Generation benchmark: time and peak memory of ``sibiao generate`` at several scales.

Usage: ``.venv/bin/python -m bench.generate [--scales 0.05 1 3] [--seed 0] [--out DIR]``.
Each scale runs in a child process of its own, so its peak resident memory is its own. Prints,
per scale: rows, wall and CPU seconds, peak memory, the load average around the run, and the
slowest layers. There is no peer tool; the figures to watch are ratios measured in the same run:
wall time at scale 1 against the 2-minute budget (target <= 1.0), and each scale's peak memory
against the smallest scale's (memory should stay roughly flat in the scale).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BUDGET_S = 120.0
TIMEOUT_S = 4 * 3600


@dataclass
class Figures:
    """What one generation at one scale measured."""

    scale: float
    rows: int
    seconds: float
    cpu_seconds: float
    peak_mb: float
    slowest: list[tuple[str, int, float]]
    load_before: float = 0.0
    load_after: float = 0.0


def _one(scale: float, seed: int, out: Path) -> Figures:
    """Generate once in this process and return its figures."""
    from cases.district_inputs import asset_layer_codes
    from layers.synthetic.generate import generate

    start, cpu = time.perf_counter(), time.process_time()
    report = generate(out, scale=scale, seed=seed, truth_layers=asset_layer_codes())
    slowest = sorted(report.layers, key=lambda r: -r.seconds)[:8]
    return Figures(
        scale=scale,
        rows=sum(layer.rows for layer in report.layers),
        seconds=time.perf_counter() - start,
        cpu_seconds=time.process_time() - cpu,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        slowest=[(r.layer, r.rows, r.seconds) for r in slowest],
    )


def _run_child(scale: float, seed: int, out: Path) -> Figures:
    """Run one scale in a child process; return its figures and the load around it."""
    before = os.getloadavg()[0]
    command = [sys.executable, "-m", "bench.generate", "--child", str(scale), "--seed", str(seed)]
    done = subprocess.run(
        [*command, "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    figures = Figures(**json.loads(done.stdout.strip().splitlines()[-1]))
    figures.load_before, figures.load_after = before, os.getloadavg()[0]
    return figures


def main() -> None:
    """Generate at each scale and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.05, 1.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the output here")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asdict(_one(args.child, args.seed, args.out))))
        return
    results = []
    for scale in args.scales:
        out = (args.out / f"scale-{scale:g}") if args.out else None
        scratch = out or Path(tempfile.mkdtemp(prefix="sibiao-gen-"))
        try:
            f = _run_child(scale, args.seed, scratch)
        finally:
            if out is None:
                shutil.rmtree(scratch, ignore_errors=True)
        results.append(f)
        print(
            f"scale {scale:g}: {f.rows:,} rows in {f.seconds:.1f} s (CPU {f.cpu_seconds:.1f} s), "
            f"peak {f.peak_mb:,.0f} MB; load average {f.load_before:.2f} before, "
            f"{f.load_after:.2f} after"
        )
        for layer, rows, seconds in f.slowest:
            print(f"  {layer:<28} {rows:>10,} rows {seconds:6.1f} s")
    smallest = min(results, key=lambda r: r.scale)
    for f in results:
        line = f"scale {f.scale:g}: peak memory {f.peak_mb / smallest.peak_mb:.2f}x "
        line += f"that of scale {smallest.scale:g}"
        if f.scale == 1.0:
            line += f"; wall time {f.seconds / BUDGET_S:.2f} of the {BUDGET_S:.0f} s budget"
        print(line)


if __name__ == "__main__":
    main()
