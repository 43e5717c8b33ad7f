"""Errors a user can cause. The CLI prints them as one line and exits with ``exit_code``."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, path, flag, file). Exit code 2, nothing overwritten."""

    exit_code = 2


class Rejected(Exception):
    """A verification failure: the input was well-formed but the claim is false (exit code 1).

    ``code`` is a short stable reason code (e.g. ``BAD_PROOF``), ``detail`` a human sentence.
    """

    exit_code = 1

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class MalformedInput(UserError):
    """Bytes that do not parse as the documented format (wrong version, truncated, out of bounds)."""


class NodeFault(UserError):
    """The node served bytes or records that contradict what it signed or admitted: a role stops
    trusting it for this step (and says so) rather than acting on them."""
