"""Ctrl-C stops `kubeshore up` every time: SIGINT to the whole foreground process group (what a
terminal sends) at a random moment after it is ready, in 10 rounds on one data directory (every
round after the first resumes it). Each round must end with every process of the run gone."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from up.command import run_until
from up.processes import group_members, is_alive, read_state

ROUNDS = 10


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            pytest.fail(f"kubeshore up exited ({proc.returncode}) before {text!r}:\n{log.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"{text!r} not printed within {within:.0f} s:\n{log.read_text()[-3000:]}")


async def test_a_swallowed_cancellation_does_not_keep_it_running() -> None:
    """Python 3.11's wait_for returns its inner result instead of raising when the cancellation
    arrives as the inner task finishes (the live view's kubectl dying of the same Ctrl-C): the
    platform's task must be cancelled again rather than run on."""
    swallowed = 0

    async def view() -> int:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as wait_for did: the refresh loop goes on

    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, stop.set)
    said: list[str] = []
    async with asyncio.timeout(10):
        assert await run_until(stop, view(), lambda: said.append("stopping")) == 0
    assert swallowed == 1 and said == ["stopping"]

    async def fails() -> int:
        return 3

    assert await run_until(asyncio.Event(), fails(), lambda: said.append("x")) == 3


@pytest.mark.slow
def test_ctrl_c_stops_everything_every_time(tmp_path: Path) -> None:
    data = tmp_path / "ks"
    # No examples: the same processes but the Modbus simulator's, and a faster start each round.
    examples = tmp_path / "no-examples"
    examples.mkdir()
    rng = random.Random(os.getpid())
    for n in range(ROUNDS):
        log = tmp_path / f"up-{n}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kubeshore.cli", "up", "--data-dir", str(data), "--random-ports",
                 "--examples", str(examples), "--timeout", "120"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, "COLUMNS": "120"},
            )  # fmt: skip
        try:
            _wait_for_line(log, "Ctrl-C stops everything", proc, 150)
            state = read_state(data)
            services = [(int(r["pid"]), r.get("ticks")) for r in state["processes"].values()]
            # A random moment, preferring one when a child of `kubeshore up` runs too (the old live
            # view's kubectl): the child dies of the same SIGINT, which is where Ctrl-C got lost.
            deadline = time.monotonic() + rng.uniform(0.5, 3.0)
            while time.monotonic() < deadline and len(group_members(proc.pid)) < 2:
                time.sleep(0.005)
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"round {n}: still running 60 s after Ctrl-C:\n{log.read_text()[-3000:]}")
            assert proc.returncode == 0, log.read_text()[-3000:]
            assert "stopped;" in log.read_text()
            assert group_members(proc.pid) == [], f"round {n}: processes left in the group"
            for pid, ticks in services:
                assert not is_alive(pid, ticks), f"round {n}: service pid {pid} survived Ctrl-C"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                subprocess.run([sys.executable, "-m", "kubeshore.cli", "down", "--data-dir", str(data)])
