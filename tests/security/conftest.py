"""The in-process cloud (cloudcore over the in-memory API) of the channel tests."""

from channel.conftest import cloud

__all__ = ["cloud"]
