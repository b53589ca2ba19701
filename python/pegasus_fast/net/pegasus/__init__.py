"""Pegasus's own client protocol (docs/pegasus-protocol.md): frames, a Thrift binary codec of
the messages we serve (pegasus.thrift), and the batch handler a front end calls."""

from __future__ import annotations

from .frame import DEFAULT_MAX_FRAME, decode_meta, header_length, parse_header
from .handler import BatchHandler
from .replies import Response, encode_response, rpc_address
from .requests import Request, decode_request

__all__ = [
    "DEFAULT_MAX_FRAME",
    "BatchHandler",
    "Request",
    "Response",
    "decode_meta",
    "decode_request",
    "encode_response",
    "header_length",
    "parse_header",
    "rpc_address",
]
