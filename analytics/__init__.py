"""Liftboard analytics: schemas, simulator, ingest, lake and DB access, Polars pipelines."""
