"""Log file and directory scanning: offsets, limits, ordering, torn tails, corruption."""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import load_backend

PUT, DELETE, EMPTY = 0, 1, 4
HEADER = 28


def mutation(decree: int) -> tuple[int, int, int, list]:
    return (
        decree,
        1_600_000_000_000_000 + decree,
        1,
        [(PUT, b"hk%d" % decree, b"sk", b"value-%d" % decree, 0)],
    )


def blocks_for(backend: ModuleType, sizes: list[int], first: int = 1) -> tuple[bytes, list[int], list]:
    """Blocks of ``sizes`` mutations each; (bytes, block start offsets, mutations)."""
    data = bytearray()
    starts = []
    mutations = []
    decree = first
    for n in sizes:
        ms = [mutation(decree + i) for i in range(n)]
        decree += n
        starts.append(len(data))
        data += backend.encode_block(ms)
        mutations += ms
    return bytes(data), starts, mutations


def same_path(a: str, b: Path) -> bool:
    return Path(a).resolve() == b.resolve()


# -- scan_log_file --------------------------------------------------------------------------


def test_scan_whole_file(backend: ModuleType, tmp_path: Path) -> None:
    data, _starts, mutations = blocks_for(backend, [1, 3, 2])
    path = tmp_path / "log.1.0"
    path.write_bytes(data)
    assert backend.scan_log_file(path) == (mutations, len(data), False)
    assert backend.scan_log_file(str(path)) == (mutations, len(data), False)


def test_scan_empty_file(backend: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "log.1.0"
    path.write_bytes(b"")
    assert backend.scan_log_file(path) == ([], 0, False)


def test_scan_from_offset(backend: ModuleType, tmp_path: Path) -> None:
    data, starts, mutations = blocks_for(backend, [1, 3, 2])
    path = tmp_path / "log.1.0"
    path.write_bytes(data)
    assert backend.scan_log_file(path, starts[1]) == (mutations[1:], len(data), False)
    assert backend.scan_log_file(path, starts[2]) == (mutations[4:], len(data), False)
    assert backend.scan_log_file(path, len(data)) == ([], len(data), False)


def test_scan_offset_past_end(backend: ModuleType, tmp_path: Path) -> None:
    data, _starts, _m = blocks_for(backend, [1])
    path = tmp_path / "log.1.0"
    path.write_bytes(data)
    with pytest.raises(ValueError):
        backend.scan_log_file(path, len(data) + 1)


def test_scan_offset_inside_a_block_is_corruption(backend: ModuleType, tmp_path: Path) -> None:
    data, starts, _m = blocks_for(backend, [1, 1, 1])
    path = tmp_path / "log.1.0"
    path.write_bytes(data)
    with pytest.raises(pf.WalCorruptionError) as ei:
        backend.scan_log_file(path, starts[1] + 1)
    assert ei.value.offset == starts[1] + 1


def test_scan_start_decree(backend: ModuleType, tmp_path: Path) -> None:
    data, _starts, mutations = blocks_for(backend, [1, 3, 2])  # decrees 1 | 2 3 4 | 5 6
    path = tmp_path / "log.1.0"
    path.write_bytes(data)
    for start in range(8):
        got, end, torn = backend.scan_log_file(path, 0, start)
        assert got == [m for m in mutations if m[0] >= start]
        assert (end, torn) == (len(data), False)


def test_scan_max_bytes_stops_at_block_boundaries(backend: ModuleType, tmp_path: Path) -> None:
    data, starts, mutations = blocks_for(backend, [1, 3, 2])
    path = tmp_path / "log.1.0"
    path.write_bytes(data)
    b0 = starts[1]
    # at least one whole block, then whole blocks until max_bytes is reached
    assert backend.scan_log_file(path, 0, 0, 1) == (mutations[:1], b0, False)
    assert backend.scan_log_file(path, 0, 0, b0) == (mutations[:1], b0, False)
    assert backend.scan_log_file(path, 0, 0, b0 + 1) == (mutations[:4], starts[2], False)
    assert backend.scan_log_file(path, 0, 0, len(data) * 2) == (mutations, len(data), False)
    assert backend.scan_log_file(path, starts[1], 0, 1) == (mutations[1:4], starts[2], False)
    # start_decree filters what comes back, not how far the scan goes
    assert backend.scan_log_file(path, 0, 3, b0 + 1) == (mutations[2:4], starts[2], False)


# -- scan_log_dir -----------------------------------------------------------------------------


def test_scan_dir_orders_by_numeric_index(backend: ModuleType, tmp_path: Path) -> None:
    offset = 0
    decree = 1
    expected = []
    infos = []
    for index in (8, 9, 10, 11):
        data, _s, ms = blocks_for(backend, [2, 1], first=decree)
        decree += 3
        name = f"log.{index}.{offset}"
        (tmp_path / name).write_bytes(data)
        offset += len(data)
        expected += ms
        infos.append((name, ms[0][0], ms[-1][0], len(data), len(data)))
    (tmp_path / "not-a-log").write_bytes(b"junk")
    (tmp_path / "log.12.x").write_bytes(b"junk")
    got, got_infos = backend.scan_log_dir(tmp_path)
    assert got == expected
    assert got_infos == infos
    got, got_infos = backend.scan_log_dir(str(tmp_path), 6)
    assert got == [m for m in expected if m[0] >= 6]
    # the infos describe whole files whatever start_decree filters
    assert got_infos == infos


def test_scan_dir_empty_and_empty_files(backend: ModuleType, tmp_path: Path) -> None:
    assert backend.scan_log_dir(tmp_path) == ([], [])
    data, _s, ms = blocks_for(backend, [1])
    (tmp_path / "log.1.0").write_bytes(data)
    (tmp_path / f"log.2.{len(data)}").write_bytes(b"")
    got, infos = backend.scan_log_dir(tmp_path)
    assert got == ms
    assert infos == [("log.1.0", 1, 1, len(data), len(data)), (f"log.2.{len(data)}", 0, 0, 0, 0)]


def test_replay_log_dir_batches(backend: ModuleType, tmp_path: Path) -> None:
    data, _s, ms = blocks_for(backend, [3, 4, 3])
    (tmp_path / "log.1.0").write_bytes(data)
    batches, infos = backend.replay_log_dir(tmp_path, 2, 4)
    tail = ms[1:]
    assert batches == [
        (tail[i : i + 4][-1][0], sorted(dict(backend.mutation_writes(tail[i : i + 4])).items()))
        for i in range(0, len(tail), 4)
    ]
    assert infos == [("log.1.0", 1, 10, len(data), len(data))]
    assert backend.replay_log_dir(tmp_path, 11) == ([], infos)
    with pytest.raises(ValueError):
        backend.replay_log_dir(tmp_path, 1, 0)


# -- torn tails ---------------------------------------------------------------------------------


def test_torn_tail_at_every_byte_of_last_block(backend: ModuleType, tmp_path: Path) -> None:
    data, starts, mutations = blocks_for(backend, [2, 1, 2])
    last = starts[-1]
    keep = mutations[:3]
    path = tmp_path / "log.1.0"
    for cut in range(last + 1, len(data)):
        path.write_bytes(data[:cut])
        assert backend.scan_log_file(path) == (keep, last, True), cut
        got, infos = backend.scan_log_dir(tmp_path)
        assert got == keep, cut
        assert infos == [("log.1.0", 1, 3, last, cut)], cut
    path.write_bytes(data[:last])
    assert backend.scan_log_file(path) == (keep, last, False)


@pytest.mark.parametrize("zeros", [1, 27, 28, 29, 4096])
def test_zero_filled_tail_is_torn(backend: ModuleType, tmp_path: Path, zeros: int) -> None:
    data, _s, mutations = blocks_for(backend, [1, 2])
    path = tmp_path / "log.1.0"
    path.write_bytes(data + b"\x00" * zeros)
    assert backend.scan_log_file(path) == (mutations, len(data), True)
    assert backend.scan_log_dir(tmp_path)[1] == [("log.1.0", 1, 3, len(data), len(data) + zeros)]


def test_bad_payload_crc_of_last_block_is_torn(backend: ModuleType, tmp_path: Path) -> None:
    data, starts, mutations = blocks_for(backend, [1, 2])
    for pos in range(starts[1] + HEADER, len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        path = tmp_path / "log.1.0"
        path.write_bytes(bytes(bad))
        assert backend.scan_log_file(path) == (mutations[:1], starts[1], True), pos


def test_torn_tail_in_older_file_is_corruption(backend: ModuleType, tmp_path: Path) -> None:
    data, starts, _ms = blocks_for(backend, [1, 1])
    older = tmp_path / "log.1.0"
    older.write_bytes(data[:-3])
    more, _s, _m = blocks_for(backend, [1], first=3)
    (tmp_path / f"log.2.{len(data) - 3}").write_bytes(more)
    for call in (lambda: backend.scan_log_dir(tmp_path), lambda: backend.replay_log_dir(tmp_path, 1)):
        with pytest.raises(pf.WalCorruptionError) as ei:
            call()
        assert same_path(ei.value.path, older)
        assert ei.value.offset == starts[1]
    # a zero-filled tail is torn too, so in an older file it is corruption as well
    older.write_bytes(data + b"\x00" * 64)
    with pytest.raises(pf.WalCorruptionError) as ei:
        backend.scan_log_dir(tmp_path)
    assert same_path(ei.value.path, older)
    assert ei.value.offset == len(data)


# -- corruption ----------------------------------------------------------------------------------


def _expect_corruption(backend: ModuleType, tmp_path: Path, data: bytes, offset: int) -> None:
    path = tmp_path / "log.1.0"
    path.write_bytes(data)
    with pytest.raises(pf.WalCorruptionError) as ei:
        backend.scan_log_file(path)
    assert same_path(ei.value.path, path)
    assert ei.value.offset == offset
    with pytest.raises(pf.WalCorruptionError) as ei:
        backend.scan_log_dir(tmp_path)
    assert same_path(ei.value.path, path)
    assert ei.value.offset == offset


def test_flipped_bit_in_earlier_payload(backend: ModuleType, tmp_path: Path) -> None:
    data, starts, _ms = blocks_for(backend, [1, 2, 1])
    for pos in range(starts[1] + HEADER, starts[2]):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        _expect_corruption(backend, tmp_path, bytes(bad), starts[1])


@pytest.mark.parametrize("bit", [0x01, 0x80])
def test_flipped_bit_in_earlier_header(backend: ModuleType, tmp_path: Path, bit: int) -> None:
    data, starts, _ms = blocks_for(backend, [1, 2, 1])
    for pos in range(starts[1], starts[1] + HEADER):
        bad = bytearray(data)
        bad[pos] ^= bit
        _expect_corruption(backend, tmp_path, bytes(bad), starts[1])


def test_flipped_bit_in_first_block_header(backend: ModuleType, tmp_path: Path) -> None:
    data, _starts, _ms = blocks_for(backend, [1, 1])
    bad = bytearray(data)
    bad[10] ^= 0x04
    _expect_corruption(backend, tmp_path, bytes(bad), 0)


def _reheader(payload: bytes, first: int, count: int, payload_len: int | None = None) -> bytes:
    crc = load_backend("python").crc32c
    n = len(payload) if payload_len is None else payload_len
    header = struct.pack("<4sIQII", b"PFW1", n, first, count, crc(payload))
    return header + struct.pack("<I", crc(header)) + payload


def test_checksummed_but_malformed_blocks_are_corruption(backend: ModuleType, tmp_path: Path) -> None:
    good, _s, _m = blocks_for(backend, [1])
    one = backend.encode_block([mutation(2)])
    payload = one[HEADER:]
    # even as the last block of the file: the checksums hold, so it is not a torn write
    _expect_corruption(backend, tmp_path, good + _reheader(payload, 2, 2), len(good))
    _expect_corruption(backend, tmp_path, good + _reheader(payload, 2, 0), len(good))
    _expect_corruption(backend, tmp_path, good + _reheader(payload + b"\x00", 2, 1), len(good))
    _expect_corruption(backend, tmp_path, good + _reheader(payload[:-1], 2, 1), len(good))
    unknown_op = payload[:21] + b"\x63" + payload[22:]
    _expect_corruption(backend, tmp_path, good + _reheader(unknown_op, 2, 1), len(good))
    # payload_len over 1 GiB with a valid header checksum
    _expect_corruption(backend, tmp_path, good + _reheader(payload, 2, 1, (1 << 30) + 1), len(good))


def test_replay_batches_are_the_net_effect_in_key_order(backend: ModuleType, tmp_path: Path) -> None:
    # the same key written, deleted and rewritten inside one batch: only the last write remains
    muts = [
        (1, 10, 1, [(0, b"h", b"b", b"v1", 0)]),
        (2, 11, 1, [(0, b"a", b"z", b"first", 0), (1, b"h", b"b")]),
        (3, 12, 1, [(0, b"h", b"b", b"v3", 0), (2, b"a", [(b"z", b"second"), (b"y", b"w")], 0)]),
    ]
    (tmp_path / "log.1.0").write_bytes(b"".join(backend.encode_block([m]) for m in muts))
    (batch,), _ = backend.replay_log_dir(tmp_path, 1, 10)
    decree, writes = batch
    keys = [k for k, _ in writes]
    assert decree == 3 and keys == sorted(keys) and len(keys) == len(set(keys))
    net = dict(writes)
    assert net[b"\x00\x01hb"][12:] == b"v3"
    assert net[b"\x00\x01az"][12:] == b"second"
    assert net[b"\x00"] == (3).to_bytes(8, "little")
    # applying the net writes gives what applying every write in order gives
    assert net == dict(backend.mutation_writes(muts))


def test_replay_log_file_is_one_file_of_replay_log_dir(backend: ModuleType, tmp_path: Path) -> None:
    data, _s, ms = blocks_for(backend, [3, 4, 3])
    (tmp_path / "log.1.0").write_bytes(data)
    batches, info, torn = backend.replay_log_file(tmp_path / "log.1.0", 2, 4)
    assert (batches, [info]) == backend.replay_log_dir(tmp_path, 2, 4)
    assert not torn
    (tmp_path / "log.1.0").write_bytes(data[:-5])
    batches, info, torn = backend.replay_log_file(tmp_path / "log.1.0", 1, 4)
    assert torn and info[3] < info[4] == len(data) - 5
    with pytest.raises(ValueError):
        backend.replay_log_file(tmp_path / "log.1.0", 1, 0)


def test_read_log_blocks_reads_one_snapshot_of_a_growing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shipper reads the WAL while writes append to it: the blocks returned are those of
    the bytes read, never an error because the file grew meanwhile. The pure twin once
    scanned the file a second time and met blocks past its buffer (a struct.error); Rust
    reads once by construction, so only the twin needs the writer simulated here."""
    import os

    import pegasus_fast._pure.logscan as pure_logscan

    pure = load_backend("python")
    data, _starts, _ms = blocks_for(pure, [2, 3])
    more, _s, _m = blocks_for(pure, [4], first=6)
    p = tmp_path / "log.1.0"
    p.write_bytes(data)
    real_fstat = os.fstat

    def fstat_then_append(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        with open(p, "ab") as f:  # a writer appends right after the reader took the size
            f.write(more)
        monkeypatch.setattr(pure_logscan.os, "fstat", real_fstat)
        return st

    monkeypatch.setattr(pure_logscan.os, "fstat", fstat_then_append)
    blocks, first, last, _ts, end, torn, _skipped = pure.read_log_blocks(p, 0, 1, 0, 10**9, 0)
    assert (blocks, first, last, end, torn) == (data, 1, 5, len(data), False)
