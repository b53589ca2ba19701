"""A served cluster: the gRPC services over an open Cluster (app.py, client_service.py,
follower_service.py), and a multi-node cluster's Meta and Node services over multinode/
(node_services.py)."""
