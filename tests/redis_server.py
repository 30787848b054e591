"""A real redis-server (Debian's) for the queue tests: started on 127.0.0.1 on a free port,
stopped afterwards. Missing redis-server is a failure, never a skip: CI installs it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server): the queue tests need a real Redis")
    return path


def _wait(port: int, process: subprocess.Popen, password: str | None = None) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=1)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            pytest.fail(f"redis-server exited with {process.returncode}")
        try:
            client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not answer PING within 15 s")
            time.sleep(0.05)
        finally:
            client.close()


class RedisServer:
    def __init__(self, directory: Path, password: str | None = None, sentinel_for: tuple[str, int, str] | None = None):
        self.port = free_port()
        self.password = password
        directory.mkdir(parents=True, exist_ok=True)
        if sentinel_for is None:
            args = [_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", str(directory), "--daemonize", "no", "--protected-mode", "no"]
            if password is not None:
                args += ["--requirepass", password]
        else:
            host, port, master = sentinel_for
            conf = directory / "sentinel.conf"
            conf.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndaemonize no\nprotected-mode no\ndir {directory}\n"
                f"sentinel monitor {master} {host} {port} 1\n"
            )
            args = [_binary(), str(conf), "--sentinel"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(self.port, self.process, None if sentinel_for else password)

    def client(self, db: int = 0):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
