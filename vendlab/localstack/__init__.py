"""The compose stacks' services as local processes (no Docker): see stack.py and docs/local-stack.md."""
