"""A Redis journal whose every append is fenced by the driver's lease: the append and the
check that the lease still holds this driver's token are one Lua script, so a driver that
paused past its lease (and whose study another driver took meanwhile) cannot write a
single record more; it gets `LeaseLostError` instead.

The script writes exactly what Optuna 5's `JournalRedisBackend.append_logs` writes (the
``<prefix>:log_number`` counter and ``<prefix>:log:<n>``): pinned by
tests/search/test_driver_lock_servers.py, which reads a fenced study back through Optuna.
"""

from __future__ import annotations

import json
from typing import Any

from optuna.storages.journal import JournalRedisBackend
from paretotune.errors import LeaseLostError
from paretotune.study._lock_servers import Fence

_APPEND_IF_LEASED = """
if redis.call('get', KEYS[1]) ~= ARGV[3] then return 0 end
local i = redis.call('incr', string.format('%s:log_number', ARGV[1]))
redis.call('set', string.format('%s:log:%d', ARGV[1], i), ARGV[2])
return 1
"""


class FencedRedisBackend(JournalRedisBackend):
    """`JournalRedisBackend` whose `append_logs` writes only while ``fence`` holds."""

    def __init__(self, url: str, fence: Fence) -> None:
        super().__init__(url)
        self._fence = fence

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._redis.setnx(f"{self._prefix}:log_number", -1)
        for log in logs:
            appended = self._redis.eval(  # type: ignore[no-untyped-call]
                _APPEND_IF_LEASED,
                1,
                self._fence.key,
                self._prefix,
                json.dumps(log),
                self._fence.token,
            )
            if not appended:
                raise LeaseLostError(
                    f"the driver lease {self._fence.key} ran out (the driver paused for longer "
                    "than the lease, or lost Redis) and another driver may have taken the "
                    "study: this one stopped without writing to it again"
                )
