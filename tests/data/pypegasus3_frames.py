"""Regenerates pypegasus3_frames.json: request frames exactly as pypegasus3 0.0.1.1 sends them
(its operators' send_data and its ThriftHeader, as BaseSession.send_req assembles them).
Run with the client venv's interpreter (tests/pegasus_client_venv.py)."""

import json
import sys
import warnings

warnings.simplefilter("ignore")

from pypegasus.base.ttypes import blob, gpid  # noqa: E402
from pypegasus.operate import packet  # noqa: E402
from pypegasus.pgclient import Pegasus  # noqa: E402
from pypegasus.replication.ttypes import query_cfg_request  # noqa: E402
from pypegasus.rrdb.ttypes import (  # noqa: E402
    key_value,
    multi_get_request,
    multi_put_request,
    multi_remove_request,
    update_request,
)
from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.transport import TTransport  # noqa: E402


def frame(op, seqid):
    buf = TTransport.TMemoryBuffer()
    op.send_data(TBinaryProtocol.TBinaryProtocol(buf), seqid)
    body = buf.getvalue()
    return bytes(op.prepare_thrift_header(len(body))) + body


key = Pegasus.generate_key("hk", "sk")
g = gpid(5, 3)
cases = {
    "query_cfg": packet.QueryCfgOperator(gpid(0, 0), query_cfg_request("temp", [])),
    "put": packet.RrdbPutOperator(g, update_request(key, blob("value"), 12345)),
    "get": packet.RrdbGetOperator(g, key),
    "ttl": packet.RrdbTtlOperator(g, key),
    "remove": packet.RrdbRemoveOperator(g, key),
    "multi_put": packet.RrdbMultiPutOperator(
        g,
        multi_put_request(blob("hk"), [key_value(blob("a"), blob("1")), key_value(blob("b"), blob("2"))], 7),
    ),
    "multi_remove": packet.RrdbMultiRemoveOperator(
        g, multi_remove_request(blob("hk"), [blob("a"), blob("b")])
    ),
    "multi_get": packet.RrdbMultiGetOperator(
        g, multi_get_request(blob("hk"), [blob("a")], 100, 1000000, False)
    ),
    "multi_get_all": packet.RrdbMultiGetOperator(g, multi_get_request(blob("hk"), [], 100, 1000000, True)),
    "sortkey_count": packet.RrdbSortkeyCountOperator(g, blob("hk")),
    "clear_scanner": packet.RrdbClearScannerOperator(g, 42),
}
out = {name: frame(op, seqid).hex() for seqid, (name, op) in enumerate(cases.items(), start=1)}
json.dump(out, sys.stdout, indent=1, sort_keys=True)
print()
