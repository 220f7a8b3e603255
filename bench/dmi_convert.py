"""How long edgecore and mappers spend converting devices between the CRD models and DMI messages.

Run: ``python bench/dmi_convert.py [--rounds N]``. Prints per-operation medians and p99 (microseconds) for
a fully populated Device (2 properties, every push method) and its DeviceModel, plus the process RSS,
and writes them to ``bench/results/dmi_convert.json``.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import crds  # noqa: E402
from bench._measure import time_calls, write_results  # noqa: E402
from dmi import convert  # noqa: E402
from dmi.v1beta1 import api_pb2  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000)
    opts = parser.parse_args(argv)
    fixtures = ROOT / "tests" / "fixtures"
    raw_device: dict[str, Any] = yaml.safe_load((fixtures / "device_full.yaml").read_text())
    raw_model: dict[str, Any] = yaml.safe_load((fixtures / "devicemodel_full.yaml").read_text())
    device = crds.Device.model_validate(raw_device)
    model = crds.DeviceModel.model_validate(raw_model)
    effective = convert.effective_device(device, model)
    wire = convert.device_to_dmi(effective).SerializeToString()

    results = {
        "parse_device_json": time_calls(lambda: crds.Device.model_validate(raw_device), opts.rounds),
        "effective_device": time_calls(lambda: convert.effective_device(device, model), opts.rounds),
        "device_to_dmi_and_serialize": time_calls(
            lambda: convert.device_to_dmi(effective).SerializeToString(), opts.rounds
        ),
        "parse_wire_and_device_from_dmi": time_calls(
            lambda: convert.device_from_dmi(api_pb2.Device.FromString(wire)), opts.rounds
        ),
        "device_model_to_dmi": time_calls(lambda: convert.device_model_to_dmi(model), opts.rounds),
        "value_to_any_float": time_calls(lambda: convert.value_to_any(0.1, "x"), opts.rounds),
    }
    report = {
        "benchmark": "dmi_convert",
        "python": sys.version.split()[0],
        "device_wire_bytes": len(wire),
        "results": results,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    for name, r in results.items():
        print(f"{name:34s} median {r['median_us']:9.1f} us   p99 {r['p99_us']:9.1f} us")
    print(f"wire size of the full device: {len(wire)} bytes; max RSS {report['max_rss_mb']} MB")
    write_results(ROOT / "bench" / "results" / "dmi_convert.json", report, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
