"""One module per command: its orchestration and its renderers (the CLI only wires options)."""
