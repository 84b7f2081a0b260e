"""PyFlink runner over the pure operators (its own virtualenv: scripts/flink/setup.sh)."""
