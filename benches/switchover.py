"""A switchover between two served clusters under a steady stream of writes (issue #21 §2).

    python benches/switchover.py [--rate 1000] [--writers 8] [--partitions 8] [--seconds 2] [--rounds 3]
    python benches/switchover.py --zk [--nodes 3] [--zk-no-fsync] ...   # east: a multi-node cluster

Clusters ``east`` and ``west`` are child processes (``pegasus-fast serve`` with a Pegasus port,
on 127.0.0.1). Table ``t`` (``--partitions``) duplicates east -> west. Writer threads in this
process (``--writers``, each waiting for its write's fsync) write distinct keys through
``pf.connect`` at ``--rate`` sets a second in all. A write refused with ``TableMovedError`` is sent
again to the primary the error names; one refused with ``FollowerTableError`` (the new primary
not writable yet) is retried 2 ms later. After ``--seconds`` of writing, ``dup.switchover()`` runs;
the writers go on for ``--seconds`` more. Each round switches the other way (east -> west ->
east ...).

With ``--zk``, ``east`` is one cluster of ``--nodes`` ``serve --zk`` processes on a ZooKeeper the
bench starts (tests/zkserver.py) and stops, reached as ``zk://``: its switchover is run by its
meta leader, and the switch back is taken over by it (docs/switchover.md).

Printed per round: the report's ``write_unavailable_ms`` (fence up -> new primary writable, on
the server), ``catch_up_ms``, ``rpo_mutations``; the longest window a writer saw from its first
refused write to its next acknowledged one; acknowledged writes missing on the new primary
(every one is read back); and how long after the switchover returned a write on the new
primary is readable on the old source (it follows). Bars: unavailability < 200 ms, 0 missing,
the old source follows within 1 s.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pegasus_fast as pf

BAR_UNAVAILABLE_MS = 200.0
BAR_FOLLOW_S = 1.0
#: a writer refused by a new primary not yet writable tries again after this long
RETRY_SECONDS = 0.002


def serve(root: Path, name: str, *extra: str, cluster: str = "") -> tuple[subprocess.Popen[bytes], str]:
    """``pegasus-fast serve`` of the cluster ``cluster`` (default ``name``) in ``root/name``."""
    ready = root / f"{name}.ready"
    argv = [
        sys.executable, "-m", "pegasus_fast", "--cluster", str(root / name), "--name", cluster or name, "serve",
        "--listen", "127.0.0.1:0", "--pegasus-listen", "127.0.0.1:0", "--ready-file", str(ready), *extra,
    ]  # fmt: skip
    err = open(root / f"{name}.err", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not serve: {(root / f'{name}.err').read_text()[-2000:]}")
        time.sleep(0.01)
    return proc, ready.read_text().strip()


class Writer(threading.Thread):
    def __init__(self, wid: int, url: str, period: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.wid = wid
        self.url = url
        self.period = period
        self.stop = stop
        self.acked: list[str] = []
        self.longest_refused = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        c = pf.connect(self.url)
        t = c.table("t")
        i = 0
        refused_since: float | None = None
        next_at = time.monotonic()
        try:
            while not self.stop.is_set():
                key = f"w{self.wid}-{i}"
                try:
                    t.set(key, "s", key)
                except pf.TableMovedError as exc:
                    refused_since = refused_since or time.monotonic()
                    c.close()
                    self.url = exc.primary
                    c = pf.connect(self.url)
                    t = c.table("t")
                    continue
                except pf.FollowerTableError:
                    # the new primary has not taken over yet: try again in a moment
                    refused_since = refused_since or time.monotonic()
                    time.sleep(RETRY_SECONDS)
                    continue
                now = time.monotonic()
                if refused_since is not None:
                    self.longest_refused = max(self.longest_refused, now - refused_since)
                    refused_since = None
                self.acked.append(key)
                i += 1
                next_at = max(next_at + self.period, now - self.period)
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            c.close()


def missing_on(url: str, keys: list[str]) -> int:
    with pf.connect(url) as c:
        t = c.table("t")
        n = 0
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            got = t.batch_get([(k, "s") for k in chunk])
            n += sum(1 for k, v in zip(chunk, got) if v != k.encode())
        return n


def one_round(src: str, dst: str, dupid: int, args: argparse.Namespace, rnd: int) -> dict[str, Any]:
    stop = threading.Event()
    period = args.writers / args.rate
    writers = [Writer(w + rnd * 1000, src, period, stop) for w in range(args.writers)]
    for w in writers:
        w.start()
    time.sleep(args.seconds)
    with pf.connect(src) as c:
        report = c.duplication(dupid).switchover(timeout=30)
    done = time.monotonic()
    # the old source follows: a write on the new primary, read back on the old source
    with pf.connect(dst) as nc, pf.connect(src) as oc:
        marker = f"marker-{rnd}"
        nc.table("t").set(marker, "s", "here")
        ot = oc.table("t")
        while True:
            try:
                if ot.get(marker, "s") == b"here":
                    break
            except pf.PartitionUnavailableError:
                pass  # adopted by the reverse duplication, not yet started
            if time.monotonic() - done > 30:
                break
            time.sleep(0.001)
        follow_s = time.monotonic() - done
    time.sleep(args.seconds)
    stop.set()
    for w in writers:
        w.join(30)
        if w.error is not None:
            raise SystemExit(f"writer {w.wid} failed: {w.error!r}")
    acked = [k for w in writers for k in w.acked]
    return {
        "report": report,
        "acked": len(acked),
        "missing": missing_on(dst, acked),
        "longest_refused_ms": max(w.longest_refused for w in writers) * 1000,
        "follow_s": follow_s,
    }


def start_nodes(root: Path, n: int, procs: list[subprocess.Popen[bytes]], fsync: bool) -> tuple[Any, str]:
    """A ZooKeeper and ``n`` nodes of the cluster ``east`` on it (each started process is put in
    ``procs`` at once, so that it is stopped whatever happens next); returns it and the URL.
    ``fsync=False``: ZooKeeper does not fsync its transaction log (its JVM's system property)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from zkserver import ZooKeeperServer  # the tests' ZooKeeper

    zk = ZooKeeperServer(str(root / "zk"))
    if not fsync:
        os.environ["JAVA_TOOL_OPTIONS"] = "-Dzookeeper.forceSync=no"
    quiet = logging.getLogger("kazoo")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its "connection refused" while the server starts up
    try:
        spec = f"{zk.start()}/east"
        for i in range(1, n + 1):
            p, _url = serve(root, f"east-n{i}", "--zk", spec, "--node-id", f"n{i}", cluster="east")
            procs.append(p)
        url = f"zk://{spec}"
        deadline = time.monotonic() + 60
        with pf.connect(url) as c:
            while True:  # one node leads (a table is made by the leader)
                try:
                    c.info()
                    break
                except pf.NotLeaderError:
                    if time.monotonic() > deadline:
                        raise SystemExit("no node of east leads") from None
                    time.sleep(0.05)
    except BaseException:
        zk.stop()
        raise
    finally:
        quiet.setLevel(level)
    return zk, url


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--zk", action="store_true", help="east: a multi-node cluster on ZooKeeper")
    ap.add_argument("--nodes", type=int, default=3, help="with --zk: east's nodes")
    ap.add_argument(
        "--zk-no-fsync",
        action="store_true",
        help="with --zk: ZooKeeper's forceSync=no, a proxy for its log on a disk of its own",
    )
    args = ap.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    zk: Any = None
    with tempfile.TemporaryDirectory(prefix="switchover-bench-") as tmp:
        root = Path(tmp)
        try:
            if args.zk:
                zk, east_url = start_nodes(root, args.nodes, procs, not args.zk_no_fsync)
            else:
                east, east_url = serve(root, "east")
                procs.append(east)
            west, west_url = serve(root, "west")
            procs.append(west)
            with pf.connect(east_url) as c:
                # with --zk, one copy of each partition (the figures of the README's table)
                c.create_table(
                    "t", partition_count=args.partitions, **({"replica_count": 1} if args.zk else {})
                )
                dup = c.add_duplication("t", west_url)
                dup.wait_for(pf.DupStatus.LOG, timeout=60)
                dupid = dup.dupid
            print(
                f"east {east_url}{f' ({args.nodes} nodes)' if args.zk else ''}"
                f"{', ZooKeeper forceSync=no' if args.zk and args.zk_no_fsync else ''}, west {west_url}; "
                f"load average {os.getloadavg()[0]:.1f}; "
                f"backend {pf.backend()}; {args.partitions} partitions; {args.writers} writers at "
                f"{args.rate:.0f} writes/s; {args.seconds}s before and after each switchover"
            )
            src, dst = east_url, west_url
            ok = True
            for rnd in range(args.rounds):
                r = one_round(src, dst, dupid, args, rnd)
                rep = r["report"]
                print(
                    f"round {rnd + 1} ({'east->west' if src == east_url else 'west->east'}): "
                    f"write_unavailable {rep.write_unavailable_ms:.1f} ms (catch-up {rep.catch_up_ms:.1f} ms), "
                    f"longest refused window seen by a writer {r['longest_refused_ms']:.1f} ms, "
                    f"rpo_mutations {rep.rpo_mutations}, acknowledged {r['acked']}, missing on the new "
                    f"primary {r['missing']}, old source follows after {r['follow_s'] * 1000:.1f} ms"
                )
                ok &= (
                    rep.write_unavailable_ms < BAR_UNAVAILABLE_MS
                    and r["longest_refused_ms"] < BAR_UNAVAILABLE_MS
                    and r["missing"] == 0
                    and rep.rpo_mutations == 0
                    and r["follow_s"] < BAR_FOLLOW_S
                )
                src, dst, dupid = dst, src, rep.new_dupid
            print(
                f"bars: unavailability < {BAR_UNAVAILABLE_MS:.0f} ms, 0 missing, follows < {BAR_FOLLOW_S}s: "
                + ("met" if ok else "NOT met")
            )
            return 0 if ok else 1
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            if zk is not None:
                zk.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
