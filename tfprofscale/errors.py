"""The one exception type that means "the user's input is wrong".

The CLI prints an ``InputError`` as a single line and exits with status 2;
anything else is a bug or an environment failure (status 1).
"""


class InputError(ValueError):
    """Bad input: a missing file, a malformed value, a model that cannot be built.

    The message names what is wrong and where (file, parameter, line, key).
    """
