"""How a user names a dataset version or a model: one rule for both.

A reference is a full id, a unique prefix of at least :data:`MIN_PREFIX` characters, or ``latest``: the
one published most recently under the root (a version: what ``versions/LATEST`` records, which every
publish writes; a model of a kind: the newest ``created``). Models may be named ``KIND/...`` too.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import UserError

MIN_PREFIX = 6
LATEST_REF = "latest"


def match_id(ref: str, ids: Sequence[str], *, what: str, where: str, forms: str) -> str:
    """The one id of ``ids`` that ``ref`` names (itself, or a unique prefix of ``MIN_PREFIX``+ characters).

    ``what`` is the thing's name in the error ("version", "model"), ``where`` the root, ``forms`` the
    reference forms the command takes.
    """
    matches = [i for i in ids if i == ref]
    if not matches and len(ref) >= MIN_PREFIX:
        matches = [i for i in ids if i.startswith(ref)]
    if len(matches) != 1:
        found = f"no {what} matches" if not matches else f"{len(matches)} {what}s match"
        raise UserError(f"{found} {ref!r} under {where} ({forms}; a prefix needs at least {MIN_PREFIX} "
                        f"characters); {what}s: {', '.join(matches or ids) or 'none'}")
    return matches[0]
