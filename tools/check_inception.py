"""Issue 22's InceptionV3 case, end to end: ``keras.applications.InceptionV3(weights=None, input_shape=(75, 75, 3))``
exported (calibrated on a few random inputs), validated and built (runtime). It must either build or be refused by
``validate`` naming the layer; this prints which, with the time of each stage. It is a check, not a test (some
30 s of TensorFlow and building on one core).

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python tools/check_inception.py [--samples 4] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4, help="random calibration inputs (default 4)")
    ap.add_argument("--keep", type=Path, help="folder to write the model, spec and build into (default: a temporary one)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from netspec.brian import BuildOptions, build
    from netspec.errors import NetspecError
    from netspec.export import export_model
    from netspec.spec import check_file

    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        model = keras.applications.InceptionV3(weights=None, input_shape=(75, 75, 3))
        model.save(out / "inception.keras")
        x = np.random.default_rng(0).uniform(0, 1, (args.samples, 75, 75, 3)).astype(np.float32)
        np.savez(out / "cal.npz", x=x)
        t1 = time.perf_counter()
        print(f"model: {len(model.layers)} Keras layers, {model.count_params():,} parameters ({t1 - t0:.1f} s)")
        try:
            spec_path = export_model(out / "inception.keras", out / "inception.yaml", out / "cal.npz", progress=False)
        except NetspecError as exc:
            print(f"export refused: {exc}")
            return 1
        t2 = time.perf_counter()
        print(f"export: {spec_path} ({t2 - t1:.1f} s)")
        spec, diagnostics = check_file(spec_path)
        t3 = time.perf_counter()
        if spec is None:
            print(f"validate refused ({t3 - t2:.1f} s): {diagnostics[0].text()}")
            return 0 if diagnostics[0].where.startswith("layer '") else 1
        print(f"validate: valid, {len(spec.layers)} layers, {spec.neuron_count():,} neurons ({t3 - t2:.1f} s)")
        try:
            built = build(spec, out / "build", BuildOptions())
        except NetspecError as exc:
            print(f"build REFUSED a spec validate accepted: {exc}")
            return 1
        t4 = time.perf_counter()
        print(f"build: {built.folder} ({sum(built.populations.values()):,} neurons, "
              f"{sum(built.synapses.values()):,} synapses, {t4 - t3:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
