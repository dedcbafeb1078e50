"""One rate pacer per CXone connection: what every sweep and join on the connection paces with.

The connection's extra ``rate_budget`` says where its budget is kept (:mod:`~cxone_provider.sweeps.budget`):
``process`` (default) in this process; ``celery-broker`` on the Redis that Airflow's ``[celery]
broker_url`` names; a ``redis://`` URL on that Redis. The ``redis`` client is imported only then
(``pip install "airflow-provider-cxone[redis]"``; Airflow's Celery provider already brings it).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cxone_provider.exceptions import CxoneConfigError
from cxone_provider.sweeps.budget import RedisBudget, budget_key
from cxone_provider.sweeps.rate import RatePacer

if TYPE_CHECKING:
    from cxone_provider.hooks.cxone import CxoneHook
    from cxone_provider.sweeps.pacing import AdaptiveLimiter

_pacers: dict[tuple[str, str], RatePacer] = {}
_lock = threading.Lock()


def pacer_for(conn_id: str, rate_budget: str = "process") -> RatePacer:
    """The connection's one pacer in this process, on the budget its ``rate_budget`` names."""
    with _lock:
        pacer = _pacers.get((conn_id, rate_budget))
        if pacer is None:
            pacer = _pacers[(conn_id, rate_budget)] = RatePacer(
                None if rate_budget == "process" else RedisBudget(_redis(rate_budget), budget_key(conn_id))
            )
        return pacer


def share_budget(limiter: AdaptiveLimiter, hook: CxoneHook) -> None:
    """Pace ``limiter`` (whose callbacks ``hook`` was made with) by the connection's one pacer.

    Before any request. A connection that cannot be read keeps the limiter's own pacer: the hook's
    first call reports the problem, as it would have.
    """
    try:
        settings = hook.settings
    except Exception:  # reported by the hook's first call
        return
    limiter.pacer = pacer_for(settings.conn_id, settings.rate_budget)


def forget_pacers() -> None:
    """Forget every connection's pacer in this process (a test's tenant was reset; its budget is new)."""
    with _lock:
        _pacers.clear()


def _redis(rate_budget: str) -> object:
    try:
        import redis
    except ImportError as missing:
        raise CxoneConfigError(
            f"extra 'rate_budget' {rate_budget.split('://')[0]!r} needs the redis client: "
            'pip install "airflow-provider-cxone[redis]"'
        ) from missing
    url = rate_budget
    if rate_budget == "celery-broker":
        from airflow.configuration import conf

        url = conf.get("celery", "broker_url", fallback="") or ""
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise CxoneConfigError(
                "extra 'rate_budget' 'celery-broker' needs a Redis broker; [celery] broker_url is "
                f"{url.split('://')[0] + '://…' if url else 'not set'}"
            )
    return redis.Redis.from_url(url, socket_timeout=5)
