"""Drives the real pypegasus3 client (run by the interpreter of tests/pegasus_client_venv.py,
never imported by the suite): ``driver.py HOST:PORT TABLE SCENARIO`` prints one JSON line of
``[step, code, value]`` results. Bytes travel as latin-1 text."""

import json
import sys
import warnings

warnings.simplefilter("ignore")

from pypegasus.pgclient import Pegasus  # noqa: E402
from pypegasus.utils.tools import MultiGetOptions, ScanOptions  # noqa: E402
from twisted.internet import defer, reactor, task, threads  # noqa: E402


def plain(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return sorted([plain(k), plain(v)] for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (int, str, bool)):
        return value
    return repr(value)


@defer.inlineCallbacks
def everything(c, out):
    def rec(step, result):
        code, value = result if isinstance(result, tuple) else (result, None)
        out.append([step, getattr(code, "value", code), plain(value)])

    rec("set", (yield c.set("h1", "s1", "v1")))
    rec("get", (yield c.get("h1", "s1")))
    rec("get_missing", (yield c.get("h1", "nope")))
    rec("set_binary", (yield c.set("h1", "bin", b"\x00\xff\x01")))
    rec("get_binary", (yield c.get("h1", "bin")))
    rec("set_empty_sort_key", (yield c.set("h1", "", "under empty")))
    rec("get_empty_sort_key", (yield c.get("h1", "")))
    rec("ttl_forever", (yield c.ttl("h1", "s1")))
    rec("set_ttl", (yield c.set("h1", "s2", "v2", ttl=600)))
    rec("ttl_600", (yield c.ttl("h1", "s2")))
    rec("ttl_missing", (yield c.ttl("h1", "nope")))
    rec("exist", (yield c.exist("h1", "s1")))
    rec("exist_missing", (yield c.exist("h1", "nope")))
    rec("multi_set", (yield c.multi_set("h2", {"a": "1", "b": "2", "c": "3", "d": "4"})))
    rec("multi_get_keys", (yield c.multi_get("h2", {"a", "c", "zz"})))
    rec("multi_get_all", (yield c.multi_get("h2", None)))
    rec("multi_get_limited", (yield c.multi_get("h2", None, max_kv_count=2)))
    rec("multi_get_no_value", (yield c.multi_get("h2", {"b"}, no_value=True)))
    rec("get_sort_keys", (yield c.get_sort_keys("h2")))
    rec("sort_key_count", (yield c.sort_key_count("h2")))
    rec("sort_key_count_missing", (yield c.sort_key_count("nobody")))
    rec("multi_del", (yield c.multi_del("h2", {"a", "b"})))
    rec("sort_key_count_after", (yield c.sort_key_count("h2")))
    rec("remove", (yield c.remove("h1", "s1")))
    rec("get_removed", (yield c.get("h1", "s1")))
    rec("multi_set_ttl", (yield c.multi_set("h3", {"x": "1"}, ttl=300)))
    rec("ttl_multi_set", (yield c.ttl("h3", "x")))
    opts = MultiGetOptions()
    rec("multi_get_opt", (yield c.multi_get_opt("h2", "a", "z", opts)))
    rev = MultiGetOptions()
    rev.reverse = True
    rec("multi_get_opt_reverse", (yield c.multi_get_opt("h2", "a", "z", rev, max_kv_count=1)))
    rec("multi_set_scan", (yield c.multi_set("h4", {f"k{i:02d}": f"v{i}" for i in range(25)})))
    small = ScanOptions()
    small.batch_size = 4  # several batches: get_scanner, then scan after scan
    scanner = c.get_scanner("h4", "k03", "k20", small)
    got = []
    while True:
        item = yield scanner.get_next()
        if item is None:
            break
        got.append([plain(item[0][1]), plain(item[1])])
    scanner.close()
    out.append(["get_scanner", 0, got])
    seen = 0
    scanners = c.get_unordered_scanners(3, small)
    for s in scanners:
        while True:
            item = yield s.get_next()
            if item is None:
                break
            seen += 1
        s.close()
    out.append(["get_unordered_scanners", len(scanners), seen])


@defer.inlineCallbacks
def misrouted(c, out):
    # argv[4]: a hash key whose partition pypegasus3 computes differently from Pegasus
    code, value = yield c.set(sys.argv[4], "s", "v", timeout=1500)
    out.append(["set_misrouted", getattr(code, "value", code), plain(value)])


def partitions(c):
    """pidx -> the primary's host:port as the client holds it from its last meta query ("" for none)."""
    return {
        str(pidx): "{}:{}".format(*addr.to_host_port()) if addr.address else ""
        for pidx, addr in sorted(c.table.partition_dict.items())
    }


@defer.inlineCallbacks
def until_ok(call, deadline):
    """The call's result once it answers ERR_OK (or the last one when the deadline passes), and
    how many answers before it were not OK (a refusal makes the client query its configuration)."""
    refused = 0
    while True:
        result = yield call()
        code = result[0] if isinstance(result, tuple) else result
        if getattr(code, "value", code) == 0 or reactor.seconds() > deadline:
            defer.returnValue((result, refused))
        refused += 1
        yield task.deferLater(reactor, 0.2, lambda: None)


@defer.inlineCallbacks
def moves(c, out):
    # argv[4]: how many keys; each phase writes and reads them all, retrying refusals for up to
    # argv[5] seconds (30 by default); between the phases the driver prints a line and waits for one on stdin (the test
    # moves partitions meanwhile)
    n = int(sys.argv[4])
    for phase in ("before", "after"):
        deadline = reactor.seconds() + (float(sys.argv[5]) if len(sys.argv) > 5 else 30)
        codes, refused = [], 0
        for i in range(n):
            hk, v = f"hk{i}", f"{phase}{i}"
            r1, k1 = yield until_ok(lambda hk=hk, v=v: c.set(hk, "s", v), deadline)
            r2, k2 = yield until_ok(lambda hk=hk: c.get(hk, "s"), deadline)
            refused += k1 + k2
            put = r1[0] if isinstance(r1, tuple) else r1
            codes.append([getattr(put, "value", put), getattr(r2[0], "value", r2[0]), plain(r2[1]) == v])
        out.append([phase, refused, [codes, partitions(c)]])
        if phase == "before":
            print(json.dumps(out), flush=True)
            yield threads.deferToThread(sys.stdin.readline)


@defer.inlineCallbacks
def main():
    out = []
    try:
        c = Pegasus([sys.argv[1]], sys.argv[2], timeout=3000)
        ok = yield c.init()
        out.append(["init", ok, None])
        yield {"everything": everything, "misrouted": misrouted, "moves": moves}[sys.argv[3]](c, out)
        c.close()
    except Exception as exc:
        out.append(["driver", "raised", repr(exc)])
    print(json.dumps(out), flush=True)
    reactor.stop()


reactor.callWhenRunning(main)
reactor.run()
