"""Row "a mapper's report answered OK, then kill -9 of edgecore 2-4 ms later: lost 5 of 5".

Bound: over ``ROUNDS`` rounds of load with edgecore killed with -9 at a random moment, every report
edgecore answered OK is in its database after the kill (stored value >= the last OK'd one): 0 lost.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time

from dmi.rpc import Channel, RpcError
from robustness._robust import METERS, RobustStack, report, wait_devices

ROUNDS = int(os.environ.get("KUBESHORE_KILL_ROUNDS", "20"))
_values = itertools.count(1)  # every report carries a value larger than all before it
_answered = 0


async def _load_until_killed(stack: RobustStack, kill_after: float) -> dict[str, int]:
    """Report to every meter as fast as answers come; kill -9 edgecore after ``kill_after`` s.
    Returns the last value answered OK per device."""
    acked: dict[str, int] = {}
    ch = Channel(stack.dmi_socket())

    async def sender(name: str) -> None:
        while True:
            v = next(_values)
            s = str(v)
            try:
                await report(ch, name, {"p0": s, "p1": s, "p2": s}, timeout=5)
            except RpcError:
                return  # edgecore is gone
            acked[name] = v
            global _answered
            _answered += 1

    tasks = [asyncio.create_task(sender(n)) for n in METERS]
    await asyncio.sleep(kill_after)
    proc = stack.procs["edgecore"]
    os.killpg(proc.pid, signal.SIGKILL)
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    finally:
        await ch.close()
    return acked


def test_ok_reports_survive_kill9(stack: RobustStack) -> None:
    seed = int(os.environ.get("KUBESHORE_KILL_SEED", str(time.time_ns())))
    rng = random.Random(seed)
    acked_total = lost = 0
    lost_examples: list[str] = []
    for _ in range(ROUNDS):
        asyncio.run(wait_devices(stack.dmi_socket(), METERS))
        acked = asyncio.run(_load_until_killed(stack, rng.uniform(0.05, 0.6)))
        stack.kill9("edgecore")  # killed above; reaps it
        stored = stack.stored_reported()
        for name, value in acked.items():
            acked_total += 1
            for prop in ("p0", "p1", "p2"):
                have = stored.get((f"default/{name}", prop))
                if have is None or not have.isdigit() or int(have) < value:
                    lost += 1
                    lost_examples.append(f"{name}.{prop}: OK'd {value}, stored {have}")
        stack.start_edgecore()
    assert acked_total >= ROUNDS, f"too little load to judge ({acked_total} devices answered OK)"
    assert lost == 0, f"seed {seed}: {lost} OK'd values lost, e.g. {lost_examples[:5]}"
    asyncio.run(wait_devices(stack.dmi_socket(), METERS))
    print(f"kill -9 rounds: {ROUNDS}, seed {seed}, reports answered OK: {_answered}, lost: {lost}")
