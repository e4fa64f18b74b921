"""The simulator: an experiment played against a model of the proxies instead of processes
(docs/simulator.md). The autoscaler and its policies are the real ones, fed with simulated
samples; the model's parameters come from a calibration file."""
