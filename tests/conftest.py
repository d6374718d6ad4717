"""Loads the integration-test harness (tests/support) for every pytest file under tests/.

pytest puts this directory on sys.path (rootdir-less "prepend" import mode),
so tests import `support.images`, `support.registry`, ... directly.
"""

from support.fixtures import *  # noqa: F401,F403  (fixtures and the sessionfinish guard)
