"""The names and numbers of Pegasus's client protocol (docs/pegasus-protocol.md §4, §5).

Operations are small ints (``OP_*``) so that a request or a response is a plain
tuple a Rust front end can build and read without Python classes.
"""

from __future__ import annotations

# -- operations (the compact form of a request's RPC) ------------------------------

OP_UNKNOWN = 0  # an RPC name we do not know: answered ERR_HANDLER_NOT_FOUND
OP_QUERY_CFG = 1
OP_PUT = 2
OP_MULTI_PUT = 3
OP_REMOVE = 4
OP_MULTI_REMOVE = 5
OP_GET = 6
OP_MULTI_GET = 7
OP_SORTKEY_COUNT = 8
OP_TTL = 9
OP_INCR = 10
OP_CHECK_AND_SET = 11
OP_CHECK_AND_MUTATE = 12
OP_BATCH_GET = 13
OP_GET_SCANNER = 14
OP_SCAN = 15
OP_CLEAR_SCANNER = 16  # oneway: no answer at all
OP_BAD_REQUEST = 17  # a known RPC whose arguments did not decode: answered ERR_INVALID_DATA
#: ours, not Pegasus's: a primary's replication request to a secondary node of a multi-node
#: cluster (multinode/links.py), an opaque blob each way, shaped as a get's (the key is the
#: request, the value the reply)
OP_REPLICATE = 18
#: ours too: a duplication's Apply (a serialized ApplyRequest, its token inside) to a follower
#: cluster that names this port in its IdentityReply (net/follower.py); shaped as OP_REPLICATE
OP_DUP_APPLY = 19

#: RPC name (the Thrift message name) -> operation
RPC_OPS: dict[str, int] = {
    "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX": OP_QUERY_CFG,
    "RPC_RRDB_RRDB_PUT": OP_PUT,
    "RPC_RRDB_RRDB_MULTI_PUT": OP_MULTI_PUT,
    "RPC_RRDB_RRDB_REMOVE": OP_REMOVE,
    "RPC_RRDB_RRDB_MULTI_REMOVE": OP_MULTI_REMOVE,
    "RPC_RRDB_RRDB_GET": OP_GET,
    "RPC_RRDB_RRDB_MULTI_GET": OP_MULTI_GET,
    "RPC_RRDB_RRDB_SORTKEY_COUNT": OP_SORTKEY_COUNT,
    "RPC_RRDB_RRDB_TTL": OP_TTL,
    "RPC_RRDB_RRDB_INCR": OP_INCR,
    "RPC_RRDB_RRDB_CHECK_AND_SET": OP_CHECK_AND_SET,
    "RPC_RRDB_RRDB_CHECK_AND_MUTATE": OP_CHECK_AND_MUTATE,
    "RPC_RRDB_RRDB_BATCH_GET": OP_BATCH_GET,
    "RPC_RRDB_RRDB_GET_SCANNER": OP_GET_SCANNER,
    "RPC_RRDB_RRDB_SCAN": OP_SCAN,
    "RPC_RRDB_RRDB_CLEAR_SCANNER": OP_CLEAR_SCANNER,
    "RPC_PF_NODE_REPLICATE": OP_REPLICATE,
    "RPC_PF_DUP_APPLY": OP_DUP_APPLY,
}
WRITE_OPS = frozenset({OP_PUT, OP_MULTI_PUT, OP_REMOVE, OP_MULTI_REMOVE})
READ_OPS = frozenset({OP_GET, OP_MULTI_GET, OP_SORTKEY_COUNT, OP_TTL, OP_BATCH_GET})
#: read-modify-writes: each one mutation of its result, atomic in its partition
ATOMIC_OPS = frozenset({OP_INCR, OP_CHECK_AND_SET, OP_CHECK_AND_MUTATE})
#: a scanner's RPCs: they address a partition, not a key
SCANNER_OPS = frozenset({OP_GET_SCANNER, OP_SCAN, OP_CLEAR_SCANNER})
#: the reply's message name is the request's with this suffix (rDSN's paired task code)
ACK = "_ACK"
#: rDSN keeps a task code name in 48 bytes, the last one a NUL
MAX_RPC_NAME = 47

# -- rDSN error codes: they travel as their names (a Thrift string) ------------------

ERR_OK = "ERR_OK"
ERR_UNKNOWN = "ERR_UNKNOWN"
ERR_OBJECT_NOT_FOUND = "ERR_OBJECT_NOT_FOUND"
ERR_HANDLER_NOT_FOUND = "ERR_HANDLER_NOT_FOUND"
ERR_INVALID_STATE = "ERR_INVALID_STATE"
ERR_INVALID_DATA = "ERR_INVALID_DATA"
ERR_INVALID_PARAMETERS = "ERR_INVALID_PARAMETERS"
ERR_PARENT_PARTITION_MISUSED = "ERR_PARENT_PARTITION_MISUSED"
ERR_ACL_DENY = "ERR_ACL_DENY"

# -- RocksDB status codes, in the ``error`` field of the rrdb response structs -------

K_OK = 0
K_NOT_FOUND = 1
K_CORRUPTION = 2
K_NOT_SUPPORTED = 3
K_INVALID_ARGUMENT = 4
K_IO_ERROR = 5
K_INCOMPLETE = 7
K_TRY_AGAIN = 13  # check_and_set / check_and_mutate: the check did not pass

# -- scan_response.context_id (besides the ids of live contexts, >= 0) ----------------

CONTEXT_ID_COMPLETED = -1  # the range is read to its end: no context is kept
CONTEXT_ID_NOT_EXIST = -2

# -- multi_get's sort key filters (rrdb.thrift filter_type) ---------------------------

FT_NO_FILTER = 0
