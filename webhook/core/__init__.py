"""The pure core: plain data in, plain data out; no I/O (held by the import contract).

Importing the package imports every module that declares validation rules (`rules.declare`),
so the rule registry is complete before any code can read it, whichever module is imported
first.
"""

from webhook.core import (  # noqa: F401 (imported for their rule declarations)
    customizer,
    labels,
    podspec,
    policy,
    secrets,
    selector,
    tokens,
    workload,
)
