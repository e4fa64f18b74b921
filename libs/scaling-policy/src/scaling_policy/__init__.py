"""Autoscaling policy, sans-I/O: metric views and times in, a replica count and a reason out."""
