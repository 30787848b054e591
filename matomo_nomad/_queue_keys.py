"""QueuedTracking's keys in its Redis, shared by what reads them live (`status --redis`)
and what has them exported (the monitoring job, the alerting rules).

QueuedTracking 5.1.1: queue 0 is the list `trackingQueueV1`, queue N >= 1
`trackingQueueV1_N` (Queue/Manager.php, getQueue); the processor working queue N holds
the key `QueuedTrackingLock<N>` (Queue/Lock.php, with a TTL it keeps extending).
"""

from __future__ import annotations

QUEUE_KEY = "trackingQueueV1"
LOCK_PREFIX = "QueuedTrackingLock"
QUEUE_KEYS_RE = f"{QUEUE_KEY}(_[0-9]+)?"
"""Every queue's list, as a PromQL regular expression (anchored by PromQL)."""


def queue_key(queue: int) -> str:
    """The Redis list of queue `queue`."""
    return QUEUE_KEY if queue == 0 else f"{QUEUE_KEY}_{queue}"


def lock_key(queue: int) -> str:
    """The lock a processor holds while it works queue `queue`."""
    return f"{LOCK_PREFIX}{queue}"
