"""Alerts: rules on the lake's recent hours against seasonal baselines, their state and their delivery."""
