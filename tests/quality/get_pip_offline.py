"""Offline stand-in for pip's get-pip.py, used by ansible-test's sanity venvs.

ansible-test bootstraps pip in each sanity venv by downloading get-pip.py, which this
machine cannot reach. get-pip.py installs pip and then runs `pip install ARGS`; this does
the same with the interpreter's own ensurepip and PyPI through the configured index.
"""
import subprocess
import sys

subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'],
                      stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args))
