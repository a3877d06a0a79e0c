"""Liftboard strategies: catalog, uplift learners, explanations, recommendations."""
