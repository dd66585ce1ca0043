"""Demo tooling: the `base-a` command that creates, seeds and changes a demo Base A (not used by the DAGs)."""
