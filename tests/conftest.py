"""Shared fixtures: every test runs isolated, offline, and can start fake OpenAI servers."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakeserver import FakeOpenAI

_CLEARED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own empty directory, with no OpenAI or selfinstruct settings."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name in _CLEARED or name.startswith("SELFINSTRUCT_"):
            monkeypatch.delenv(name)
    return tmp_path


def _is_local(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # an AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else None
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a host name other than localhost: refuse before any DNS lookup
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _refuse(address: Any) -> OSError:
    return OSError(f"network access blocked in tests: {address!r}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only loopback and AF_UNIX connections: a test that reaches the internet is a bug. Other
    host names do not resolve (no DNS query leaves the machine), as `.invalid` never does."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection

    def connect(self: socket.socket, address: Any) -> None:
        if self.family != socket.AF_UNIX and not _is_local(address):
            raise _refuse(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family != socket.AF_UNIX and not _is_local(address):
            raise _refuse(address)
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not _is_local(address):
            raise _refuse(address)
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_local((host, port)):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAI]:
    """A started FakeOpenAI with the default toy model and api key "sk-test"."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def make_server() -> Iterator[Callable[..., FakeOpenAI]]:
    """Factory: make_server(**FakeOpenAI kwargs) -> a started server, stopped after the test."""
    servers: list[FakeOpenAI] = []

    def make(**kwargs: Any) -> FakeOpenAI:
        servers.append(FakeOpenAI(**kwargs).start())
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def openai_env(fake_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """Point OPENAI_BASE_URL and OPENAI_API_KEY at `fake_server`, as a user's shell would."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return fake_server
