"""The wire: the .proto contract, its generated code, how errors travel (wire.py, serving.py),
and the follower side of a duplication to a served cluster. The served cluster itself is in
``server/``, the application's client in ``client/``."""
