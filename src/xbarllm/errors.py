"""The one exception type for bad user input; the CLI turns it into one line and exit code 2."""

from pydantic import ValidationError


class XbarError(ValueError):
    """Bad input from the user: a file, field, flag or name. The message is one line."""


def from_validation(where: str, err: ValidationError, rename: dict[str, str] | None = None) -> XbarError:
    """Turn a pydantic ValidationError into one line naming the first offending field."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    field = (rename or {}).get(field, field)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return XbarError(f"{where}: {field + ': ' if field else ''}{msg}{extra}")
