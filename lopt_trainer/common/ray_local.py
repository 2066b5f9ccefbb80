"""Starting Ray for the toolkit: a private local cluster bound to loopback, or a connection to a given cluster.

Every place that starts Ray (meta-training workers, evaluation workers) goes through :func:`init_ray`, so both
follow one rule:

* no ``address``: start a *new* local cluster (``address="local"``), whatever ``RAY_ADDRESS`` says (a stale
  one would otherwise be joined), with the dashboard off and every service — GCS, raylet, object manager,
  workers, the dashboard and runtime-env agents — on 127.0.0.1. Ray turns a node address of 127.0.0.1 into the
  machine's external address unless its "cluster mode" is off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the
  setting Ray uses on macOS/Windows); it is switched off while the cluster starts, and the processes started
  then keep it.
* ``address`` (e.g. ``ray://host:10001`` or ``auto``): connect to that cluster, without resource arguments
  (Ray refuses ``num_cpus``/``num_gpus`` when connecting).
"""

from __future__ import annotations

import os

_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def init_ray(num_cpus: int, address: str | None = None, env_vars: dict | None = None) -> None:
    """``ray.init`` as described in the module docstring; ``env_vars`` go to the workers' runtime env."""
    import ray  # optional heavy dependency: imported only when a cluster is started

    runtime_env = {"env_vars": dict(env_vars or {})}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        return
    try:
        from ray._private import ray_constants
    except ImportError:  # pragma: no cover - private module moved; the environment variable still applies
        ray_constants = None
    old_env = os.environ.get(_LOCAL_ONLY_ENV)
    old_const = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[_LOCAL_ONLY_ENV] = "0"
    if old_const is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", num_cpus=max(1, int(num_cpus)), include_dashboard=False,
                 _node_ip_address="127.0.0.1", runtime_env=runtime_env, log_to_driver=False)
    finally:
        if old_env is None:
            os.environ.pop(_LOCAL_ONLY_ENV, None)
        else:
            os.environ[_LOCAL_ONLY_ENV] = old_env
        if old_const is not None:
            ray_constants.ENABLE_RAY_CLUSTER = old_const
