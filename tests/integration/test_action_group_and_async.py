"""module_defaults through the collection's action group, and xdp_program (an action plugin)
under async: the forms Ansible users reach for, on a real namespace."""

import json

from conftest import run_playbook

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import read_sysctl, write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attached_program


def test_group_defaults_set_the_namespace_and_xdp_program_runs_async(cleanup, tmp_path):
    ns = cleanup('ns')
    create_netns(ns)
    VethManager({'name': 'a0', 'namespace': ns, 'state': 'present',
                 'peer': {'name': 'b0', 'namespace': ns}}).run()
    # The namespace starts where the host is (it inherits the host's IPv4 forwarding; written
    # anyway) and the play sets the other value: a write that reached the host would show.
    host_forwarding = read_sysctl(None, 'net.ipv4.conf.all.forwarding')
    wanted = {'0': '1', '1': '0'}[host_forwarding]
    write_sysctl(ns, 'net.ipv4.conf.all.forwarding', host_forwarding)
    playbook = tmp_path / 'play.yml'
    playbook.write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False,
        'module_defaults': {'group/xdpkit.forwarding.xdpkit': {'namespace': ns}},
        'tasks': [
            {'name': 'no namespace given: the group default applies',
             'xdpkit.forwarding.sysctl': {'name': 'net.ipv4.conf.all.forwarding', 'value': wanted}},
            {'name': 'in the background', 'xdpkit.forwarding.xdp_program': {'interface': 'a0', 'program': 'xdp_pass'},
             'async': 120, 'poll': 0, 'register': 'job'},
            {'name': 'wait for it', 'ansible.builtin.async_status': {'jid': '{{ job.ansible_job_id }}'},
             'register': 'done', 'until': 'done.finished', 'retries': 60, 'delay': 1},
            {'name': 'the job attached it', 'ansible.builtin.assert': {
                'that': ['done.changed', "done.program.name == 'xdp_pass'", "done.program.namespace == '%s'" % ns]}},
            {'name': 'and it is idempotent under async too',
             'xdpkit.forwarding.xdp_program': {'interface': 'a0', 'program': 'xdp_pass'},
             'async': 120, 'poll': 1, 'register': 'again'},
            {'ansible.builtin.assert': {'that': ['not again.changed']}},
            {'name': 'remove', 'xdpkit.forwarding.xdp_program': {'interface': 'a0', 'state': 'absent'}},
        ]}]))
    rc, out, err = run_playbook(str(playbook))
    assert rc == 0, out[-4000:] + err[-2000:]
    assert read_sysctl(ns, 'net.ipv4.conf.all.forwarding') == wanted
    assert read_sysctl(None, 'net.ipv4.conf.all.forwarding') == host_forwarding, 'the host was not touched'
    with iproute(ns) as ipr:
        assert attached_program(ipr, get_link(ipr, 'a0')['ifindex']) is None, 'removed at the end'
