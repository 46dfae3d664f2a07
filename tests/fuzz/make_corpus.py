#!/usr/bin/env python3
"""make_corpus.py: writes the seed corpora in tests/fuzz/corpus/<name>/ (small valid and invalid inputs for
each harness; the generated files are committed, so run.sh does not need Python). Run from anywhere:
python3 tests/fuzz/make_corpus.py"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(harness, name, data):
    """Writes one seed, or both forms of one (a pair: name.raw and name.composed)."""
    folder = os.path.join(HERE, "corpus", harness)
    os.makedirs(folder, exist_ok=True)
    forms = [(name, data)] if isinstance(data, bytes) else [(name + ".raw", data[0]), (name + ".composed", data[1])]
    for file_name, content in forms:
        with open(os.path.join(folder, file_name), "wb") as f:
            f.write(content)


def npy(dictionary, data, major=1):
    """Both input forms of fuzz_npy: the file (mode byte 0) and "dict NUL data" (the harness adds the prefix)."""
    text = dictionary.encode()
    pre = 10 if major == 1 else 12
    header_len = (pre + len(text) + 1 + 63) // 64 * 64 - pre
    header = text + b" " * (header_len - len(text) - 1) + b"\n"
    size = struct.pack("<H" if major == 1 else "<I", header_len)
    raw = b"\x93NUMPY" + bytes([major, 0]) + size + header + data
    return b"\x00" + raw, bytes([1 | (major - 1) << 1]) + text + b"\0" + data


def npy_corpus():
    f8 = struct.pack("<6d", 1, -2.5, 3e-300, 4e300, 0.5, 6)
    put("npy", "f8_2x3", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", f8))
    put("npy", "f4_4", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", struct.pack("<4f", 1, 2, 3, 4)))
    put("npy", "scalar", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", struct.pack("<d", -7.5)))
    put("npy", "empty", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", b""))
    put("npy", "v2", npy('{"descr": "<f8", "shape": (2, 1), "fortran_order": False}', f8[:16], major=2))
    put("npy", "v3", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1), }", f8[:8], major=3))
    put("npy", "nan", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", struct.pack("<2d", 1, float("nan"))))
    put("npy", "truncated", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", f8[:20]))
    put("npy", "fortran", npy("{'descr': '<f8', 'fortran_order': True, 'shape': (3, 2), }", f8))
    put("npy", "bigendian", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", b"\0\0\0\0"))
    put("npy", "labels_i4", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", struct.pack("<3i", 2, 0, 7)))
    put("npy", "labels_i8_neg", npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", struct.pack("<2q", 1, -4)))
    put("npy", "targets_2x5", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }", struct.pack("<10f", *range(10))))
    put("npy", "huge_shape", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000000), }", f8))


def safetensors(header, data):
    """Both input forms of fuzz_safetensors: the file (mode byte 0) and "header NUL data" (the harness adds the
    length)."""
    text = json.dumps(header, separators=(",", ":")).encode() if not isinstance(header, bytes) else header
    text += b" " * (-len(text) % 8)
    return b"\x00" + struct.pack("<Q", len(text)) + text + data, b"\x01" + text + b"\0" + data


def safetensors_corpus():
    data = struct.pack("<4f", 1, 2, 3, 4) + struct.pack("<2e", 0.5, -2) + struct.pack("<q", 7) + b"\x01\x02"
    put("safetensors", "mixed", safetensors({
        "__metadata__": {"format": "pt", "arch": "cnn"},
        "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "h": {"dtype": "F16", "shape": [2], "data_offsets": [16, 20]},
        "n": {"dtype": "I64", "shape": [], "data_offsets": [20, 28]},
        "b": {"dtype": "BF16", "shape": [1], "data_offsets": [28, 30]},
        "e": {"dtype": "F64", "shape": [0, 3], "data_offsets": [30, 30]},
    }, data))
    put("safetensors", "empty", safetensors({}, b""))
    put("safetensors", "unicode", safetensors(
        b'{"e\\u00e9\\ud83d\\ude00":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', b"ab"))
    put("safetensors", "overlap", safetensors({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }, data[:12]))
    put("safetensors", "duplicate", safetensors(
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        data[:8]))
    put("safetensors", "past_end", safetensors({"a": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]}}, data[:16]))
    put("safetensors", "huge_header.raw", b"\x00" + struct.pack("<Q", 2**64 - 8) + b"{}")
    put("safetensors", "huge_shape", safetensors(
        {"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}, data[:16]))


def cifar_record(label, seed):
    return bytes([label]) + bytes((seed * 31 + i * 7) & 255 for i in range(3072))


def cifar10_corpus():
    # Byte 0: bit 0 training set, bit 1 files in cifar-10-batches-bin/, bit 2 leave one file out (bits 3-5).
    put("cifar10", "test_one.bin", b"\x00" + cifar_record(3, 1))
    put("cifar10", "test_two_sub.bin", b"\x02" + cifar_record(0, 2) + cifar_record(9, 3))
    put("cifar10", "test_bad_label.bin", b"\x00" + cifar_record(10, 4))
    put("cifar10", "test_truncated.bin", b"\x00" + cifar_record(1, 5)[:1000])
    put("cifar10", "test_missing.bin", b"\x04" + cifar_record(1, 6))
    put("cifar10", "train_five.bin", b"\x01\x01\x01\x01\x01" + b"".join(cifar_record(k, k) for k in range(5)))
    put("cifar10", "train_sub_stray.bin", b"\x03\x01\xfd\x00\x00" + b"".join(cifar_record(k, k) for k in range(2)))
    put("cifar10", "train_missing.bin", b"\x15\x00\x00\x00\x00" + cifar_record(2, 2))


def args_corpus():
    seeds = {
        "ok": ["--data", "d", "--epochs", "5", "--lr", "0.5", "--out", "o.json", "--seed", "7", "--verbose"],
        "inline": ["--data=d", "--lr=1e-3", "--seed=18446744073709551615", "--precision", "f64"],
        "help": ["--data", "d", "--help"],
        "missing_required": ["--epochs", "3"],
        "bad_number": ["--data", "d", "--epochs", "3x", "--lr", "nan"],
        "flag_value": ["--verbose=1", "--data", ""],
        "unknown": ["--data", "d", "-x", "stray"],
        "no_value": ["--data"],
    }
    for name, argv in seeds.items():
        put("args", name, b"\0".join(a.encode() for a in argv))


def json_corpus():
    seeds = {
        "result": json.dumps({"command": "exact", "n": 5100, "trace": 13.321121571939148, "ok": True, "none": None,
                              "eigenvalues": [-2.5, 0.0, 1e-300, 3.25e10], "history": [{"epoch": 1, "loss": 2.3}]},
                             indent=2).encode(),
        "escapes": b'["q\\" b\\\\ s\\/ \\b\\f\\n\\r\\t", "\\u00e9\\u20ac\\ud83d\\ude00", "\xc3\xa9"]',
        "numbers": b"[0, -0, 9223372036854775807, -9223372036854775808, 9223372036854775808, 1.5e-3, 1E+2, -7e-400]",
        "deep": b"[" * 32 + b"]" * 32,
        "too_deep": b"[" * 33 + b"]" * 33,
        "duplicate": b'{"a": 1, "b": {"a": 2}, "a": 3}',
        "trailing_comma": b'{"a": [1, 2,]}',
        "lone_surrogate": b'"\\ud800x"',
        "bad_utf8": b'"\xc0\xaf"',
    }
    for name, data in seeds.items():
        put("json", name, data)


if __name__ == "__main__":
    json_corpus()
    npy_corpus()
    safetensors_corpus()
    cifar10_corpus()
    args_corpus()
