"""Liftboard reports: weekly review and merchant reports."""
