"""`python -m analyzer`: the service on ANALYZER_HTTP_HOST:PORT (same as `analyzer serve`)."""

from analyzer.cli import serve

if __name__ == "__main__":
    serve()
