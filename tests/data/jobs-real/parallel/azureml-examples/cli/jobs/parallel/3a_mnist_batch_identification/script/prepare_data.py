"""Ours (not the example's code): writes small grey PNG images of "digits" (standard
library only): image N of digit D is 8x8 pixels of value D * 25."""

import argparse
import os
import struct
import zlib


def png(value, size=8):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes([value] * size) for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


parser = argparse.ArgumentParser()
parser.add_argument("--output_folder", required=True)
args = parser.parse_args()
os.makedirs(args.output_folder, exist_ok=True)
for index in range(12):
    digit = index % 10
    with open(os.path.join(args.output_folder, f"{index:03d}_{digit}.png"), "wb") as out:
        out.write(png(digit * 25))
print("wrote 12 images to", args.output_folder)
