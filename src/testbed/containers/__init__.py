"""Container images, compose and the single-node cluster, driven from Python."""
