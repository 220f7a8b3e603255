"""Routes messages from the cloud to edge modules by route group (KubeEdge's beehive groups).

A module registers a handler for a group (metamanager: ``resource``; devicetwin: ``twin``) and may
listen for cloud connect/disconnect. Modules send to the cloud through :meth:`ModuleRouter.to_cloud`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kubeshore.logs import Throttled
from kubeshore.message import OP_RESPONSE, Message

log = logging.getLogger(__name__)
_throttled = Throttled(log)

Handler = Callable[[Message], Awaitable[None]]
CloudSender = Callable[[Message, bool], Awaitable[bool]]
StateListener = Callable[[bool], Awaitable[None]]


class ModuleRouter:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._state_listeners: list[StateListener] = []
        self._sender: CloudSender | None = None
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        self.unrouted = 0

    def register(self, group: str, handler: Handler) -> None:
        self._handlers[group] = handler

    def on_cloud_state(self, listener: StateListener) -> None:
        self._state_listeners.append(listener)

    def set_cloud_sender(self, sender: CloudSender) -> None:
        self._sender = sender

    async def dispatch(self, msg: Message) -> bool:
        if msg.route.operation == OP_RESPONSE and msg.header.parent_msg_id in self._waiting:
            fut = self._waiting.pop(msg.header.parent_msg_id)
            if not fut.done():
                fut.set_result(msg)
            return True
        handler = self._handlers.get(msg.route.group)
        if handler is None:
            self.unrouted += 1
            _throttled.warning(
                f"unrouted/{msg.route.group[:64]}",
                "no module for group %.64r (resource %.200s); dropped",
                msg.route.group,
                msg.route.resource,
            )
            return False
        await handler(msg)
        return True

    async def to_cloud(self, msg: Message, *, queue_offline: bool = True) -> bool:
        """Send to cloudcore; offline, queue it durably and in order unless ``queue_offline`` is False."""
        if self._sender is None:
            return False
        return await self._sender(msg, queue_offline)

    async def request(self, msg: Message, within: float) -> Message | None:
        """Send ``msg`` now (never queued) and wait for the cloud's ``response`` to it (KubeEdge's
        SendSync); None when offline or when no answer came within ``within`` seconds."""
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[msg.header.msg_id] = fut
        try:
            if not await self.to_cloud(msg, queue_offline=False):
                return None
            return await asyncio.wait_for(fut, within)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(msg.header.msg_id, None)

    async def cloud_state(self, connected: bool) -> None:
        for listener in self._state_listeners:
            try:
                await listener(connected)
            except Exception:
                log.exception("cloud state listener failed")
