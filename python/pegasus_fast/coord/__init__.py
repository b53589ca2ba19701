"""The configuration of a multi-node cluster in ZooKeeper (DESIGN.md §9), for nodes and clients."""
