"""Composition glue: resolvers, run records, logging and Hydra callbacks."""
