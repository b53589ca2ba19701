"""One cluster over several nodes (DESIGN.md §9): membership, election, ownership, placement,
moves and routing, over the configuration in ZooKeeper (coord/) and the wire (net/).

The gRPC services a node adds (Meta, Node) are in ``server/``, which calls into
this package; the ``zk://`` client is in ``client/``, routed by :mod:`.routes`.
"""
