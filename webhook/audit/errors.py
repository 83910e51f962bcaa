"""Shell: the audit's one failure.

``AuditError``: the audit could not run (an unreadable token, a key source that cannot be
reached, a document that is not JSON...). One line for stderr and exit code 2; as every
`UserError`, its control characters are escaped, since it may quote a URL or a reason a network
peer chose. An untrusted value put in a report goes through `webhook.core.errors.printable`.
"""

from __future__ import annotations

from webhook.core.errors import UserError


class AuditError(UserError):
    """The audit could not run; the message names what and where."""
