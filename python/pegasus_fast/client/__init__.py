"""The application's client of a served cluster: ``pf.connect(url)`` → RemoteCluster (remote.py)."""
