"""A served cluster: the gRPC services over an open Cluster (app.py, services.py)."""
