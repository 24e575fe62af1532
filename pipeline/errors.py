"""The one error type the CLI shows as a short message: something the user can fix (spec, paths, cluster)."""

from __future__ import annotations


class UserError(ValueError):
    """A problem with what the user asked for; the message says what to change. Bugs are other exceptions."""
