"""User-facing CLI errors: a message, an optional hint, and an exit code."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"tracemark: error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
