"""Autoscaling for the local testbed: Kubernetes' HPA algorithm and QoS-aware policies."""
