"""Experiments: declarative files, the runner that plays them on the local testbed, reports."""
