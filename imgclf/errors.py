"""The one error type for problems a user can fix: its message names the problem and the fix."""


class PipelineError(Exception):
    """A problem with the user's input or environment; the message names it and the fix."""
