"""Errors of the controller's operations, each with the HTTP status it maps to."""


class ControllerError(Exception):
    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(ControllerError):
    status_code = 422


class UnknownProxy(ControllerError):
    status_code = 404


class ProxyNotReady(ControllerError):
    status_code = 503


class LoadBalancerUnavailable(ControllerError):
    status_code = 502


class OperationTimeout(ControllerError):
    status_code = 504


class DatabaseUnavailable(ControllerError):
    status_code = 503
