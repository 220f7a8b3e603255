import asyncio

from kubeclient import WorkQueue


async def test_dedup_rerun_and_retry() -> None:
    seen: list[str] = []
    release = asyncio.Event()
    failures = {"bad": 2}

    async def reconcile(key: str) -> None:
        seen.append(key)
        if key == "slow":
            await release.wait()
        if failures.get(key):
            failures[key] -= 1
            raise RuntimeError("transient")

    queue = WorkQueue("test", reconcile)
    stop = asyncio.Event()
    runner = asyncio.create_task(queue.run(stop))
    queue.add("a")
    queue.add("a")  # waiting already: processed once
    queue.add("slow")
    await asyncio.sleep(0.05)
    queue.add("slow")  # running: processed again afterwards
    queue.add("slow")
    release.set()
    queue.add("bad")
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.wait_for(runner, 2)
    assert seen.count("a") == 1
    assert seen.count("slow") == 2
    assert seen.count("bad") == 3, "retried until it succeeded"
