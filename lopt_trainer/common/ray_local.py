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

Workers only save time (results are the same in process), so a local cluster that cannot start because Ray's
session directory (``$RAY_TMPDIR``, else ``$TMPDIR``, else ``/tmp``, plus ``/ray``) is not writable is optional
machinery: :func:`local_ray_usable` says so with one warning naming ``RAY_TMPDIR``, and the caller runs in process.
"""

from __future__ import annotations

import os
import warnings

from taskgen.jax_cache import directory_problem

_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


RAY_TMPDIR_ENV = "RAY_TMPDIR"
"""The setting that places Ray's session directory."""
_warned: set[str] = set()


def ray_session_root() -> str:
    """The folder in which a new local Ray cluster makes its session directory (Ray's own rule)."""
    try:
        from ray._common.utils import get_default_ray_temp_dir  # optional heavy dependency: only with workers
    except ImportError:  # pragma: no cover - private module moved: Ray's documented rule
        base = os.environ.get(RAY_TMPDIR_ENV) or os.environ.get("TMPDIR") or "/tmp"
        return os.path.join(base, "ray")
    return get_default_ray_temp_dir()


def local_ray_usable(address: str | None = None) -> bool:
    """Whether Ray workers can run: True with ``address`` (a given cluster) or when Ray is already started; else
    whether a local cluster's session directory is writable. When it is not, warns once per directory (naming
    ``RAY_TMPDIR``) and returns False: the caller runs in process."""
    if address:
        return True
    import ray  # optional heavy dependency: imported only when workers are asked for

    if ray.is_initialized():
        return True
    root = ray_session_root()
    reason = directory_problem(root) or socket_path_problem(root)
    if reason is None:
        return True
    if root not in _warned:
        _warned.add(root)
        warnings.warn(f"Ray session directory {root}: {reason}; running the workers' work in this process (set "
                      f"{RAY_TMPDIR_ENV} to a short, writable directory such as /tmp to use Ray workers)",
                      RuntimeWarning, stacklevel=2)
    return False


SOCKET_PATH_MAX = 107
"""The longest path of a Unix-domain socket (``sun_path`` holds 108 bytes with its terminating zero on Linux)."""
SESSION_SUFFIX = len("/session_2026-12-07_20-35-12_123456_1234567/sockets/plasma_store")
"""How much Ray adds below its session root for its longest socket path."""


def socket_path_problem(root: str) -> str | None:
    """Why Ray's sockets under ``root`` would not fit a Unix-domain socket path (a long ``TMPDIR``, as on cluster
    job folders), or None when they fit."""
    longest = len(os.fsencode(root)) + SESSION_SUFFIX
    if longest <= SOCKET_PATH_MAX:
        return None
    return (f"too long for Ray's sockets ({longest} bytes below it, at most {SOCKET_PATH_MAX}; it comes from "
            f"{RAY_TMPDIR_ENV} or TMPDIR)")


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
