"""Render every ``bench/results/*.json`` into ``docs/performance.md``: `python -m bench.report`.

A result file is any JSON object. These keys, when present, are given a place of their own:
``title`` and ``description`` (text), ``command`` (how to reproduce it), ``machine`` (where it ran),
``targets`` (metric name -> the target, shown next to the measured value) and ``kubeedge`` (the same
metric for KubeEdge, when known). Everything else is shown as measured: nested objects flatten to
dotted names, and a list of objects (one per run, say) becomes a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUTPUT = ROOT / "docs" / "performance.md"
SPECIAL = {"title", "description", "command", "machine", "targets", "kubeedge", "peer"}

HEADER = """# Performance

Measured by the benchmarks under [`bench/`](../bench/) on the development machine (2 shared cores).
Each benchmark prints its results and writes `bench/results/<name>.json`; this page is generated from
those files by `python -m bench.report`, so it shows the numbers of the last committed run. Medians and
p99 are over the whole run; RSS is the resident memory of the process named.

"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (dict, list)):
        return f"`{json.dumps(value, sort_keys=True)}`"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _table(rows: list[dict[str, Any]]) -> list[str]:
    flat = [_flatten(r) for r in rows]
    cols: list[str] = []
    for r in flat:
        cols += [k for k in r if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in flat]
    return lines


def render_result(name: str, data: dict[str, Any]) -> str:
    lines = [f"## {data.get('title', name)}", ""]
    if data.get("description"):
        lines += [str(data["description"]), ""]
    if data.get("command"):
        lines += [f"Run: `{data['command']}`", ""]
    else:
        lines += [f"Run: `python -m bench.{name}`", ""]
    targets = data.get("targets") or {}
    kubeedge = data.get("kubeedge") or {}
    scalars = {k: v for k, v in _flatten({k: v for k, v in data.items() if k not in SPECIAL}).items()}
    tables = {
        k: v for k, v in scalars.items() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)
    }
    plain = {k: v for k, v in scalars.items() if k not in tables}
    if plain:
        # ``peer`` names the real peer measured in the same run (KubeEdge unless it says otherwise).
        extra = [c for c, d in (("target", targets), (str(data.get("peer") or "KubeEdge"), kubeedge)) if d]
        lines.append("| metric | value |" + "".join(f" {c} |" for c in extra))
        lines.append("|---|---|" + "---|" * len(extra))
        for key, value in plain.items():
            cells = [key, _fmt(value)]
            if targets:
                cells.append(_fmt(targets.get(key, "")))
            if kubeedge:
                cells.append(_fmt(kubeedge.get(key, "")))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for key, rows in tables.items():
        lines += [f"**{key}**", "", *_table(rows), ""]
    if data.get("machine"):
        lines += [f"Machine: {_fmt(data['machine'])}", ""]
    return "\n".join(lines)


def render(results_dir: Path = RESULTS) -> str:
    parts = [HEADER]
    files = sorted(results_dir.glob("*.json"))
    if not files:
        parts.append("No benchmark has been run yet.\n")
    for path in files:
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise SystemExit(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SystemExit(f"{path}: expected a JSON object, found {type(data).__name__}")
        parts.append(render_result(path.stem, data))
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--output", type=Path, default=OUTPUT, help="'-' prints to stdout")
    args = p.parse_args(argv)
    text = render(args.results)
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
