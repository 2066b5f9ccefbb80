"""The toolkit's local Ray cluster listens on loopback only and ignores a stale RAY_ADDRESS (issue 11, C and H)."""

import ipaddress
import os
import time

import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from lopt_trainer.common.ray_local import init_ray  # noqa: E402


def _listening(pids):
    """(ip, port, process name) of every listening TCP socket of the processes ``pids``."""
    out = []
    for conn in psutil.net_connections("inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                name = "?"
            out.append((conn.laddr.ip, conn.laddr.port, name))
    return out


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def test_local_cluster_binds_loopback_only_whatever_ray_address_says(monkeypatch):
    if ray.is_initialized():
        pytest.skip("another test left Ray running in this process")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # stale: nothing listens there
    init_ray(1)
    try:
        @ray.remote(num_cpus=1)
        def pid():
            return os.getpid()

        worker = ray.get(pid.remote())  # a worker process exists, with its own servers
        time.sleep(1.0)  # the agents open their ports asynchronously
        me = psutil.Process()
        pids = {me.pid, worker} | {p.pid for p in me.children(recursive=True)}
        sockets = _listening(pids)
        names = {name for _, _, name in sockets}
        assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names), sockets
        outside = [s for s in sockets if not _is_loopback(s[0])]
        assert outside == [], f"listening outside loopback: {outside}"
        assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") is None  # restored after the start
    finally:
        ray.shutdown()


def test_given_address_connects_without_resource_arguments(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    init_ray(4, "ray://10.0.0.1:10001", {"A": "1"})
    assert calls == [{"address": "ray://10.0.0.1:10001", "runtime_env": {"env_vars": {"A": "1"}},
                      "log_to_driver": False}]
