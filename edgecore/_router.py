"""Routes messages from the cloud to edge modules by route group (KubeEdge's beehive groups).

A module registers a handler for a group (metamanager: ``resource``; devicetwin: ``twin``) and may
listen for cloud connect/disconnect. Modules send to the cloud through :meth:`ModuleRouter.to_cloud`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from kubeshore.logs import Throttled
from kubeshore.message import Message

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
        self.unrouted = 0

    def register(self, group: str, handler: Handler) -> None:
        self._handlers[group] = handler

    def on_cloud_state(self, listener: StateListener) -> None:
        self._state_listeners.append(listener)

    def set_cloud_sender(self, sender: CloudSender) -> None:
        self._sender = sender

    async def dispatch(self, msg: Message) -> bool:
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

    async def cloud_state(self, connected: bool) -> None:
        for listener in self._state_listeners:
            try:
                await listener(connected)
            except Exception:
                log.exception("cloud state listener failed")
