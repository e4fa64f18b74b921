"""Bad parameters or input: the message names what is wrong (the csvgen CLI prints it without a
traceback, its service answers 422 with it)."""


class GenerationError(ValueError):
    """A scenario cannot be generated from the parameters or input given."""


class ShapeError(GenerationError):
    """A rate shape cannot be built from the parameters."""


class CapacityError(GenerationError):
    """The pods are too few for the rate and hold time (or the pod numbers do not fit)."""


class MilanoError(GenerationError):
    """A CDR file is missing or malformed, or the selection in it is empty."""
