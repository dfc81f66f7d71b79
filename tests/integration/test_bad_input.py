"""The bad-input matrix: every row of tests/bad_input.yml through Ansible for real. Each
must fail with its message. docs/bad-input.md is the same table for readers.

    .venv/bin/python tests/integration/test_bad_input.py --write   # regenerate the docs table
"""

import os
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MATRIX = os.path.join(ROOT, 'tests', 'bad_input.yml')
DOC = os.path.join(ROOT, 'docs', 'bad-input.md')

with open(MATRIX) as _handle:
    ROWS = yaml.safe_load(_handle)


def render_table(rows):
    lines = ['# Bad input', '',
             'Every invalid input each module refuses and the message it fails with (a fragment of it).',
             'Each row is a test: `tests/integration/test_bad_input.py`, generated from `tests/bad_input.yml`.',
             'In the arguments, `{ns}` is an existing namespace with `veth0`, `{host}` the host end of that',
             'pair, `{gone}` a namespace that does not exist, `{maps}` the maps directory of a program.', '',
             '| module | input | message contains |', '|---|---|---|']
    for row in rows:
        cells = (row['module'], row['input'].replace('|', '\\|'), row['message'].replace('|', '\\|'))
        lines.append('| `%s` | %s | `%s` |' % cells)
    return '\n'.join(lines) + '\n'


def fill(value, names):
    if isinstance(value, str):
        for key, replacement in names.items():
            value = value.replace('{%s}' % key, replacement)
        return value
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {fill(k, names): fill(v, names) for k, v in value.items()}
    return value


@pytest.fixture(scope='module')
def context():
    from conftest import Names, _remove_prefixed, run_module
    names = Names()
    _remove_prefixed(names.prefix)
    run_module('netns', {'name': names('ns')})
    run_module('veth', {'name': names('h'), 'peer': {'name': 'veth0', 'namespace': names('ns')}})
    maps = '/sys/fs/bpf/xdpkit/%s-maps' % names.prefix
    result = run_module('xdp_program', {'interface': names('h'), 'program': 'xdp_redirect_map', 'maps_dir': maps})
    assert result.get('changed'), result
    yield {'ns': names('ns'), 'host': names('h'), 'gone': names('gone'), 'maps': maps, 'long': 'n' * 256}
    _remove_prefixed(names.prefix)


@pytest.mark.parametrize('row', ROWS, ids=['%s: %s' % (r['module'], r['input']) for r in ROWS])
def test_bad_input_fails_with_its_message(row, context):
    from conftest import run_module
    result = run_module(row['module'], fill(row['args'], context))
    assert result.get('failed'), result
    assert row['message'] in result['msg'], result['msg']


def test_the_docs_table_matches_the_matrix():
    with open(DOC) as handle:
        assert handle.read() == render_table(ROWS), 'regenerate: .venv/bin/python %s --write' % __file__


def test_every_module_has_rows():
    modules = {f[:-3] for f in os.listdir(os.path.join(ROOT, 'plugins', 'modules')) if f.endswith('.py')}
    assert modules <= {row['module'] for row in ROWS}


if __name__ == '__main__' and sys.argv[1:] == ['--write']:
    with open(DOC, 'w') as out:
        out.write(render_table(ROWS))
