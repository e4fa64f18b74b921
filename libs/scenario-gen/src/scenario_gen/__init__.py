"""scenario_gen: scenario CSV generation (rate shapes, arrival processes, phone assignment)."""
