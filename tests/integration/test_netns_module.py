import os

from conftest import run_module


def test_netns_create_rerun_check_and_remove(cleanup):
    name = cleanup('ns')
    checked = run_module('netns', {'name': name}, check=True)
    assert checked['changed'] and not os.path.exists('/run/netns/' + name)

    created = run_module('netns', {'name': name}, diff=True)
    assert created['changed'] and created['diff']['after']['name'] == name
    assert os.path.exists('/run/netns/' + name)

    again = run_module('netns', {'name': name})
    assert not again['changed']

    check_absent = run_module('netns', {'name': name, 'state': 'absent'}, check=True)
    assert check_absent['changed'] and os.path.exists('/run/netns/' + name)

    removed = run_module('netns', {'name': name, 'state': 'absent'})
    assert removed['changed'] and not os.path.exists('/run/netns/' + name)
    assert not run_module('netns', {'name': name, 'state': 'absent'})['changed']


def test_netns_names_match_exactly_not_as_substrings(cleanup):
    longer = cleanup('mario2')
    run_module('netns', {'name': longer})
    shorter = run_module('netns', {'name': cleanup('mario')}, check=True)
    assert shorter['changed'], 'an existing mario2 must not be taken for mario'


def test_netns_bad_names_fail_with_the_reason(cleanup):
    before = sorted(os.listdir('/run/netns')) if os.path.isdir('/run/netns') else []
    for name, fragment in (('', 'empty'), ('a/b', "contains '/'"), ('x' * 300, 'limit is 255'), ('..', 'not allowed')):
        result = run_module('netns', {'name': name})
        assert result.get('failed'), result
        assert fragment in result['msg']
    after = sorted(os.listdir('/run/netns')) if os.path.isdir('/run/netns') else []
    assert after == before


def test_netns_names_in_one_call_and_the_made_ones_go_again_on_a_bad_name(cleanup):
    names = [cleanup('a'), cleanup('b')]
    checked = run_module('netns', {'names': names}, check=True)
    assert checked['changed'] and not any(os.path.exists('/run/netns/' + n) for n in names)
    made = run_module('netns', {'names': names})
    assert made['changed'] and [ns['name'] for ns in made['namespaces']] == names
    assert all(os.path.exists('/run/netns/' + n) for n in names)
    assert not run_module('netns', {'names': names})['changed']

    bad = run_module('netns', {'names': [cleanup('c'), 'no/slash']})
    assert bad.get('failed') and 'no/slash' in bad['msg'], bad
    assert not os.path.exists('/run/netns/' + cleanup('c')), 'nothing half-made'

    gone = run_module('netns', {'names': names, 'state': 'absent'})
    assert gone['changed'] and not any(os.path.exists('/run/netns/' + n) for n in names)
