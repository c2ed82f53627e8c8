"""Manifest hashing speed, as ratios against baselines measured in the same run.

Writes a 1 GiB safetensors checkpoint in several files, warms the page cache, then
times (median of --repeat runs):
  baseline    single-threaded hashlib sha256 over the same bytes, file after file;
  weightgate  the manifest's hashing (sha256 per file, in parallel) plus signing the statement;
  model-signing  its key-based signing of the same folder (if installed; pip install '.[bench]').
Prints ratios (lower is faster). Goals: weightgate/baseline <= 0.6, weightgate/model-signing <= 1.0.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_checkpoint(folder: Path, total_mib: int, files: int) -> list[Path]:
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    per_file = total_mib * (1 << 20) // files
    paths = []
    for i in range(files):
        n = per_file // 4 // 8
        tensors = {f"layer{i}.t{j}": rng.standard_normal(n, dtype=np.float32) for j in range(8)}
        p = folder / f"model-{i + 1:05d}-of-{files:05d}.safetensors"
        save_file(tensors, str(p))
        paths.append(p)
    return paths


def baseline(paths: list[Path]) -> None:
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
        h.hexdigest()


def weightgate_manifest(paths: list[Path], key) -> None:  # noqa: ANN001
    from governance.signing import sign_envelope, statement
    from update_pipeline.hashing import sha256_files

    digests = sha256_files(paths)
    sign_envelope(statement({p.name: d for p, d in digests.items()}, "Bench/v1", {}), key, "bench")


def model_signing_sign(folder: Path, key_pem: Path, sig: Path) -> None:
    from model_signing import signing

    signing.Config().use_elliptic_key_signer(private_key=key_pem).sign(folder, sig)


def timed(fn, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=1024, help="checkpoint size in MiB (default 1024)")
    ap.add_argument("--files", type=int, default=4, help="number of safetensors files (default 4)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ckpt"
        folder.mkdir()
        paths = make_checkpoint(folder, args.mib, args.files)
        size = sum(p.stat().st_size for p in paths)
        baseline(paths)  # warm the page cache
        key = Ed25519PrivateKey.generate()
        t_base = timed(lambda: baseline(paths), args.repeat)
        t_wg = timed(lambda: weightgate_manifest(paths, key), args.repeat)
        print(f"checkpoint: {size / (1 << 30):.2f} GiB in {len(paths)} files; median of {args.repeat} runs")
        print(f"weightgate manifest / single-thread sha256 = {t_wg / t_base:.2f}  (goal <= 0.60)")
        try:
            import model_signing  # noqa: F401
        except ImportError as exc:
            print(f"model-signing not available ({exc}); pip install '.[bench]' to compare")
            return
        ec_key = ec.generate_private_key(ec.SECP256R1())
        pem = Path(tmp) / "ec.pem"
        pem.write_bytes(ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        sig = Path(tmp) / "model.sig"
        t_ms = timed(lambda: model_signing_sign(folder, pem, sig), args.repeat)
        print(f"weightgate manifest / model-signing key-based sign = {t_wg / t_ms:.2f}  (goal <= 1.00)")
        print(f"model-signing / single-thread sha256 = {t_ms / t_base:.2f}")


if __name__ == "__main__":
    main()
