"""Liftboard: the application shell (config, CLI, build orchestration)."""
