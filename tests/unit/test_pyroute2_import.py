"""The modules import the parts of pyroute2 they use without its package __init__ (an entry-point
scan and every pyroute2 API, a third of a module start); the package must still behave as usual
for anything that asks it for a top-level name. Each case runs in a fresh interpreter, where
nothing has imported pyroute2 yet, as in a module start."""
import subprocess
import sys
import textwrap

from conftest import COLLECTIONS


NETLINK = 'from ansible_collections.xdpkit.forwarding.plugins.module_utils import _netlink\n'


def run_fresh(code, first=''):
    program = 'import sys\nsys.path.insert(0, %r)\n' % COLLECTIONS + first + NETLINK + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, '-c', program], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_the_netlink_helpers_do_not_run_the_package_init():
    assert run_fresh('''
        import pyroute2
        with _netlink.iproute() as ipr:
            links = _netlink.dump(ipr.get_links)
        from pyroute2 import netns  # a submodule: still no package init
        from pyroute2.nftables.main import NFTables
        print(_netlink.HAS_PYROUTE2, 'modules' in vars(pyroute2), len(links) > 0)
    ''') == ['True', 'False', 'True']


def test_a_top_level_name_runs_the_package_init_once_and_gives_the_same_classes():
    assert run_fresh('''
        from pyroute2 import IPRoute, NetlinkError, NetNS
        import pyroute2
        print(IPRoute is _netlink.IPRoute, NetlinkError is _netlink.NetlinkError, '__getattr__' in vars(pyroute2),
              'modules' in vars(pyroute2))
    ''') == ['True', 'True', 'False', 'True']


def test_an_unknown_top_level_name_is_an_import_error_as_before():
    assert run_fresh('''
        try:
            from pyroute2 import NoSuchThing
        except ImportError:
            print('ImportError')
    ''') == ['ImportError']


def test_pyroute2_imported_first_is_left_as_it_is():
    assert run_fresh('''
        print('modules' in vars(pyroute2), _netlink.IPRoute is pyroute2.IPRoute)
    ''', first='import pyroute2\n') == ['True', 'True']
