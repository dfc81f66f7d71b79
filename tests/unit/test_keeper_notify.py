"""The keeper tells a service manager (Type=notify) when it is ready and what it keeps, with
sd_notify(3)'s datagrams: to the socket path in NOTIFY_SOCKET, or an abstract one ('@...')."""

import os
import socket

import pytest

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _keeper


@pytest.fixture(params=['path', 'abstract'])
def manager(request, tmp_path, monkeypatch):
    """A socket standing in for systemd's notify socket, and NOTIFY_SOCKET naming it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == 'path':
        address = str(tmp_path / 'notify')
        sock.bind(address)
    else:
        address = '@xdpkit-unit-notify-%d' % os.getpid()
        sock.bind('\0' + address[1:])
    sock.settimeout(2)
    monkeypatch.setenv('NOTIFY_SOCKET', address)
    yield sock
    sock.close()


def test_ready_comes_with_the_first_status_and_a_status_only_when_it_changed(manager):
    notifier = _keeper.Notifier.from_env()
    keeper = _keeper.Keeper()
    keeper.kept = {'ports': 1, 'routers': 1, 'namespaces': 1}
    notifier.status(keeper.status_line())
    assert manager.recv(4096).decode().split('\n') == [
        'STATUS=keeping 1 port of 1 router in 1 namespace; last change: none since it started', 'READY=1']
    notifier.status(keeper.status_line())  # the same: nothing sent
    keeper.kept = {'ports': 4, 'routers': 2, 'namespaces': 3}
    keeper.changed("port 'r0' in namespace 'lab': rp_filter 0 -> 1")
    notifier.status(keeper.status_line())
    status = manager.recv(4096).decode()
    assert status.startswith('STATUS=keeping 4 ports of 2 routers in 3 namespaces; last change: ')
    assert status.endswith(" port 'r0' in namespace 'lab': rp_filter 0 -> 1") and '\n' not in status, status
    notifier.stopping()
    assert manager.recv(4096) == b'STOPPING=1'


def test_no_notify_socket_no_notifier(monkeypatch):
    monkeypatch.delenv('NOTIFY_SOCKET', raising=False)
    assert _keeper.Notifier.from_env() is None


def test_a_gone_manager_is_logged_not_fatal(tmp_path):
    said = []
    _keeper.Notifier(str(tmp_path / 'nobody'), log=said.append).status('keeping 0 ports')
    assert len(said) == 1 and 'READY=1' in said[0], said
