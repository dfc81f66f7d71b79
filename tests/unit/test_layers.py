"""The layers of plugins/module_utils stay true: every import of a module_utils file, at the top of
a file or inside a function, goes down the layers (or across one layer without a cycle), and the
read-only modules do not ship the attach, compile and guard stack.

The layers are drawn in the README's layout section; each module_utils file's opening docstring
names its own, and this table is the one that is checked.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = 'ansible_collections.xdpkit.forwarding.plugins.module_utils'

LAYER_NAMES = {0: 'ground', 1: 'kernel interfaces', 2: 'kernel objects', 3: 'managers', 4: 'modules'}
# Every module_utils file and its layer. A file imports only from lower layers, or from its own
# layer when that makes no cycle.
LAYERS = {
    # pure Python, no kernel: errors and checks, the diff helper, BPF source text, a lab as data
    '_common': 0, '_diff': 0, '_bpf_source': 0, '_topology': 0, '_frr_config': 0, '_topology_picture': 0,
    '_reasons': 0,
    # one kernel interface each: namespaces, netlink, bpf(2), XDP on a link, the kernel's jiffies
    '_netns': 1, '_netlink': 1, '_bpf_sys': 1, '_xdp_link': 1, '_lease_clock': 1,
    # what xdpkit makes and keeps with them: pins, port tables, ownership, compiled programs,
    # map entries, the netfilter and tc a program would skip, the host lock, the port leases and
    # the keeper's record as the read-only modules read them
    '_bpf_pins': 2, '_ports': 2, '_ownership': 2, '_compile': 2, '_map_entries': 2,
    '_netfilter': 2, '_traffic_control': 2, '_host_lock': 2, '_lease': 2, '_local_sources': 2,
    # one manager (or reader) per module noun, and the lab that composes them
    '_netns_manager': 3, '_veth': 3, '_route': 3, '_neighbour': 3, '_sysctl': 3, '_xdp_map': 3,
    '_xdp_program': 3, '_xdp_program_set': 3, '_keeper': 3, '_lab': 3, '_link_info': 3, '_xdp_stats': 3, '_metrics': 3,
    '_exporter': 3,
    # the router at boot (xdpkit-router.service): the declarative file through the set manager
    '_boot': 3,
    # FRR instances in lab namespaces (the frr module)
    '_frr': 3,
    # what every module shares: running a manager under the lock
    '_module': 4,
}
# Modules, action, connection and filter plugins, and the xdp_stats tool sit on top.
TOP = max(LAYER_NAMES)

# What a module that only reads must not make Ansible ship with it (Ansible sends every
# module_utils file a module imports, function-local imports included, and theirs in turn).
READ_ONLY = ('plugins/modules/link_info.py', 'plugins/modules/xdp_stats.py', 'tools/xdp_stats.py')
CHANGE_STACK = {'_xdp_program', '_xdp_program_set', '_compile', '_bpf_source', '_ownership', '_bpf_pins',
                '_ports', '_netfilter', '_traffic_control', '_xdp_map', '_map_entries'}


def plugin_files():
    found = []
    for directory, _dirs, files in os.walk(os.path.join(ROOT, 'plugins')):
        found += [os.path.relpath(os.path.join(directory, f), ROOT) for f in files if f.endswith('.py')]
    return sorted(found) + ['tools/xdp_stats.py']


def module_utils_name(path):
    directory, name = os.path.split(path)
    if directory == os.path.join('plugins', 'module_utils') and name != '__init__.py':
        return name[:-3]
    return None


def module_utils_imports(path):
    """(line, module_utils name) of every import of a module_utils file anywhere in `path`."""
    with open(os.path.join(ROOT, path)) as handle:
        return imports_in(handle.read(), path)


def imports_in(source, path):
    tree = ast.parse(source, path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError('%s:%d: relative import; module_utils files are imported by their full '
                                     'path (%s...)' % (path, node.lineno, PACKAGE))
            if node.module == PACKAGE:
                found += [(node.lineno, alias.name) for alias in node.names]
            elif node.module and node.module.startswith(PACKAGE + '.'):
                found.append((node.lineno, node.module[len(PACKAGE) + 1:].split('.')[0]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name[len(PACKAGE) + 1:].split('.')[0])
                      for alias in node.names if alias.name.startswith(PACKAGE + '.')]
    return sorted(found)


def layer_of(path):
    name = module_utils_name(path)
    return TOP if name is None else LAYERS[name]


def import_graph():
    """{module_utils name: {imported name: first line}} over module_utils files."""
    graph = {}
    for path in plugin_files():
        name = module_utils_name(path)
        if name is not None:
            edges = graph.setdefault(name, {})
            for line, imported in module_utils_imports(path):
                edges.setdefault(imported, line)
    return graph


def find_cycle(graph):
    """One cycle as a list of names (first == last), or None."""
    state = {}

    def visit(name, stack):
        state[name] = 'open'
        stack.append(name)
        for imported in sorted(graph.get(name, ())):
            if state.get(imported) == 'open':
                return stack[stack.index(imported):] + [imported]
            if imported not in state:
                cycle = visit(imported, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[name] = 'done'
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [])
            if cycle:
                return cycle
    return None


def shipped_with(path):
    """Every module_utils file a plugin or tool brings along, transitively."""
    seen, todo = set(), [imported for _line, imported in module_utils_imports(path)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [imported for _line, imported in
                     module_utils_imports(os.path.join('plugins', 'module_utils', name + '.py'))]
    return seen


def test_every_module_utils_file_has_a_layer():
    files = {module_utils_name(p) for p in plugin_files()} - {None}
    assert not sorted(files - set(LAYERS)), 'module_utils files missing from LAYERS: give each a layer'
    assert not sorted(set(LAYERS) - files), 'LAYERS names files that do not exist'


@pytest.mark.parametrize('path', plugin_files())
def test_imports_go_down_the_layers(path):
    layer = layer_of(path)
    upward = ['line %d imports %s (layer %d, %s) from layer %d (%s)' % (
        line, imported, LAYERS[imported], LAYER_NAMES[LAYERS[imported]], layer, LAYER_NAMES[layer])
        for line, imported in module_utils_imports(path) if imported in LAYERS and LAYERS[imported] > layer]
    unknown = ['line %d imports %s, which is not in LAYERS' % (line, imported)
               for line, imported in module_utils_imports(path) if imported not in LAYERS]
    assert not upward + unknown, '%s: %s' % (path, '; '.join(upward + unknown))


def test_module_utils_imports_make_no_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, 'import cycle: %s' % ' -> '.join(
        '%s (line %d)' % (name, graph[name][following]) for name, following in zip(cycle, cycle[1:], strict=False))


@pytest.mark.parametrize('name', sorted(LAYERS))
def test_opening_docstring_names_the_layer(name):
    with open(os.path.join(ROOT, 'plugins', 'module_utils', name + '.py')) as handle:
        docstring = ast.get_docstring(ast.parse(handle.read())) or ''
    wanted = '[Layer %d, %s]' % (LAYERS[name], LAYER_NAMES[LAYERS[name]])
    assert docstring.startswith(wanted), '%s: the opening docstring starts with %r' % (name, wanted)


@pytest.mark.parametrize('path', READ_ONLY)
def test_read_only_modules_do_not_ship_the_change_stack(path):
    shipped = sorted(shipped_with(path) & CHANGE_STACK)
    assert not shipped, '%s brings along %s' % (path, ', '.join(shipped))


def test_the_checker_sees_every_form_of_import_and_a_cycle():
    source = ('from %s import _common, _bpf_sys as sysbpf\n'
              'import %s._netns\n'
              'def f():\n'
              '    from %s._xdp_program import XdpProgramManager\n'
              'class C:\n'
              '    def g(self):\n'
              '        import %s._compile as compile_\n') % ((PACKAGE,) * 4)
    assert imports_in(source, 'example.py') == [
        (1, '_bpf_sys'), (1, '_common'), (2, '_netns'), (4, '_xdp_program'), (7, '_compile')]
    assert find_cycle({'a': {'b': 1}, 'b': {'c': 2}, 'c': {'a': 3}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b': 1}, 'b': {}}) is None
