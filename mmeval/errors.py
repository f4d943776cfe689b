"""Errors that end a command with one clear line (the CLI prints the message, not a traceback)."""


class MMEvalError(Exception):
    """Base class: the message is the whole story for the user."""


class UnknownNameError(MMEvalError):
    """An unknown task, model or protocol; the message lists the known names."""


class DataError(MMEvalError):
    """Benchmark data that is missing or not in the expected layout (names the file, field or option)."""


class CheckpointError(MMEvalError):
    """A checkpoint that is missing, incomplete or does not match the model's layout."""


class RunError(MMEvalError):
    """A run directory that cannot be resumed or written as asked."""


class OptionError(MMEvalError):
    """A command-line option out of range, of the wrong type, or naming something that is not there."""


class ModelArgsError(OptionError):
    """--model-args that do not fit together, name an unknown value or have the wrong type."""


class PluginImportError(MMEvalError):
    """One of our own task, model-adapter or command modules (or a registered entry point) failed to import."""
