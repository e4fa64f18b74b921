"""The service's own user errors (generation's are scenario_gen.errors.GenerationError): the
message names what is wrong; the CLI prints it without a traceback, the service answers with
`status_code`."""


class CsvgenError(ValueError):
    status_code = 422


class ScenarioTooLarge(CsvgenError):
    """More rows than the service is configured to stream (CSVGEN_MAX_ROWS)."""

    status_code = 413
