"""Read the records of an offline W&B run file (``run-*.wandb``): LevelDB log blocks of protobuf records."""

from __future__ import annotations

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
HEADER = 7  # the file starts with ":W&B" + 2-byte magic + 1-byte version; each record with crc32, len, type


def records(path: str | Path) -> list:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    out, buf, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # the rest of a block is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            break
        buf += chunk
        if kind in (1, 4):  # FULL or LAST: a whole record
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def exit_code(path: str | Path) -> int | None:
    codes = [r.exit.exit_code for r in records(path) if r.WhichOneof("record_type") == "exit"]
    return codes[-1] if codes else None
