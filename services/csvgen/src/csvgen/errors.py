"""User errors: bad parameters or input. The message names what is wrong; the CLI prints it
without a traceback and the service answers 422 with it."""


class CsvgenError(ValueError):
    status_code = 422


class ScenarioTooLarge(CsvgenError):
    """More rows than the service is configured to stream (CSVGEN_MAX_ROWS)."""

    status_code = 413


class ShapeError(CsvgenError):
    """A rate shape cannot be built from the parameters."""


class CapacityError(CsvgenError):
    """The pods are too few for the rate and hold time (or the pod numbers do not fit)."""


class MilanoError(CsvgenError):
    """A CDR file is missing or malformed, or the selection in it is empty."""
