"""Tests of datastore."""
