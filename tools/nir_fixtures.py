"""NIR graphs as the libraries write them: fixtures for netspec's NIR reader, and the libraries reading netspec's graphs.

Run in a throw-away environment that has the libraries (never netspec's own: no torch there), e.g.::

    python3 -m venv /work/torch-env
    /work/torch-env/bin/pip install torch==2.13.0
    /work/torch-env/bin/pip install "numpy<2.4" nir==1.0.8 snntorch norse sinabs spyx jax jaxlib "torch==2.13.0"
    /work/torch-env/bin/python tools/nir_fixtures.py --netspec .venv/bin/python

``fixtures`` (the default step) builds small networks in snnTorch, Norse, Sinabs (``from_model``, its own ANN->SNN
conversion) and Spyx, writes each with the library's own NIR writer to ``tests/nir_fixtures/<name>.nir`` and
simulates it with the library itself on fixed inputs: ``<name>.npz`` holds the inputs (``x``, NIR's channels-first
layout, float32), the output spike counts per sample and output neuron (``counts``: the library run in float64 on the
float32 parameters, except snnTorch and sinabs, whose spike functions return float32; ``counts32``: its default float32 run) and
the steps. ``index.json`` says, per fixture, the library
and version, the convention and the tolerance the test holds netspec to, and why. ``tests/test_nir_libraries.py``
reads them without torch.

``mnist`` trains a small CNN (ReLU, sum pooling) on MNIST for a few epochs, normalizes it with sinabs'
``normalize_weights`` and converts it with ``sinabs.from_model`` (its defaults); it records sinabs' own accuracy on
the 1,000 images of ``data/mnist-1k`` and writes the graph as the fixture ``sinabs_mnist`` (counts of the first 30
images).

``back`` reads every fixture into a spec with netspec (``--netspec``: netspec's Python), writes it again with ``netspec
nir`` and gives that graph to every library's own reader: per library and fixture, whether it reads it and how often
its predictions (the output neuron with most spikes) agree with netspec's on the fixture's inputs.

The conventions each library follows are stated, with the files they were read from, in netspec/nir/convention.py.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "nir_fixtures"
STEPS = 60
SAMPLES = 12


def _inputs(shape, seed, n=SAMPLES):
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, *shape)).astype(np.float32)


def _version(module) -> str:
    return f"{module.__name__} {getattr(module, '__version__', '?')}"


# -- snnTorch --------------------------------------------------------------------------------------------
def snntorch_nets():
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    def leaky(shape, beta, reset, output=False):
        # snnTorch's export needs beta and the threshold per neuron (NIR's type check reads their shapes)
        return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape), init_hidden=True, output=output,
                         reset_mechanism=reset)

    def run(net, x, dtype):
        import snntorch.utils as su

        dtype = torch.float32  # snnTorch's spike functions return float32 ((mem > theta).float()): no float64 run
        counts = []
        with torch.no_grad():
            for sample in torch.as_tensor(x, dtype=dtype):
                su.reset(net)
                total = 0
                for _ in range(STEPS):
                    spk, _mem = net(sample[None])
                    total = total + spk[0]
                counts.append(total.numpy())
        return np.asarray(counts).astype(np.int64)

    out = []
    torch.manual_seed(1)
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 24), leaky((24,), 0.9, "zero"), torch.nn.Linear(24, 10),
                              leaky((10,), 0.8, "zero", output=True))
    with torch.no_grad():
        mlp[0].weight.mul_(2.0)
        mlp[2].weight.mul_(3.0)
    out.append(("snntorch_mlp_zero", mlp, (16,), export_to_nir, run,
                {"convention": "snntorch", "reset": "zero", "tolerance": "exact",
                 "why": "Leaky(reset_mechanism='zero') steps as netspec's lif with reset zero"}))
    torch.manual_seed(2)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), leaky((4, 8, 8), 0.95, "subtract"), torch.nn.AvgPool2d(2),
                              leaky((4, 4, 4), 0.9, "subtract"), torch.nn.Flatten(), torch.nn.Linear(64, 10),
                              leaky((10,), 0.9, "subtract", output=True))
    with torch.no_grad():
        cnn[0].weight.mul_(2.0)
        cnn[5].weight.mul_(4.0)
    out.append(("snntorch_cnn_subtract", cnn, (1, 8, 8), export_to_nir, run,
                {"convention": "snntorch", "reset": None, "tolerance": "predictions",
                 "why": "snnTorch's Leaky subtracts the threshold after the decay, netspec before it"}))
    return out


# -- Norse -----------------------------------------------------------------------------------------------
def norse_nets():
    import norse.torch as norse
    import torch
    from norse.torch.functional.iaf import IAFParameters
    from norse.torch.functional.lif_box import LIFBoxParameters
    from norse.torch.utils.export_nir import to_nir

    def run(net, x, dtype):
        counts = []
        with torch.no_grad():
            net = net.to(dtype)
            for sample in torch.as_tensor(x, dtype=dtype):
                state, total = None, 0
                for _ in range(STEPS):
                    z, state = net(sample[None], state)
                    total = total + z[0]
                counts.append(total.numpy())
        return np.asarray(counts).astype(np.int64)

    torch.manual_seed(3)
    net = norse.SequentialState(
        torch.nn.Linear(16, 24),
        norse.LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.full((24,), 100.0), v_th=torch.ones(24), v_leak=torch.zeros(24),
                                          v_reset=torch.zeros(24))),
        torch.nn.Linear(24, 10),
        norse.IAFCell(IAFParameters(v_th=torch.ones(10), v_reset=torch.zeros(10))),
    )
    with torch.no_grad():
        net[0].weight.mul_(8.0)
        net[2].weight.mul_(1.5)

    def export(model, sample, ignore_dims=None):
        return to_nir(model, sample)

    return [("norse_mlp", net, (16,), export, run,
             {"convention": "norse", "reset": None, "tolerance": "exact",
              "why": "IAFCell and LIFBoxCell (forward Euler, reset to v_reset) step as netspec's if/lif"})]


# -- Sinabs ----------------------------------------------------------------------------------------------
def _sinabs_ann(seed):
    import sinabs.layers as sl
    import torch

    torch.manual_seed(seed)
    ann = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), sl.SumPool2d(2), torch.nn.Conv2d(4, 8, 3),
                              torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(32, 10), torch.nn.ReLU())
    with torch.no_grad():
        ann[0].weight.mul_(1.5)
        ann[3].weight.mul_(1.0)
        ann[6].weight.mul_(2.0)
    return ann


def _sinabs_run(net, x, dtype):
    import torch

    dtype = torch.float32  # sinabs' spike functions return float32 ((v >= theta).float()): no float64 run
    counts = []
    with torch.no_grad():
        net = net.to(dtype)
        for sample in torch.as_tensor(x, dtype=dtype):
            net.reset_states()
            out = net(sample[None].repeat(STEPS, *([1] * sample.dim())))
            counts.append(out.sum(0).numpy())
    return np.rint(np.asarray(counts)).astype(np.int64)


def _sinabs_export(net, sample, ignore_dims=None):
    from sinabs.nir import to_nir

    graph = to_nir(net.spiking_model, sample)
    graph.infer_types()  # sinabs leaves Conv2d.input_shape unset; nir.write needs it
    return graph


def sinabs_nets():
    import sinabs
    from sinabs.activation import SingleSpike

    single = sinabs.from_model(_sinabs_ann(4), input_shape=(1, 10, 10), batch_size=1, spike_fn=SingleSpike, min_v_mem=None)
    default = sinabs.from_model(_sinabs_ann(4), input_shape=(1, 10, 10), batch_size=1)
    return [("sinabs_cnn_single", single, (1, 10, 10), _sinabs_export, _sinabs_run,
             {"convention": "sinabs", "reset": None, "tolerance": "exact",
              "why": "from_model(spike_fn=SingleSpike, min_v_mem=None): IAF with reset by subtraction, fires at v >= theta"}),
            ("sinabs_cnn_default", default, (1, 10, 10), _sinabs_export, _sinabs_run,
             {"convention": "sinabs", "reset": None, "tolerance": "predictions",
              "why": "from_model's defaults: MultiSpike (several spikes a step) and min_v_mem = -1, which netspec has not"})]


# -- Spyx ------------------------------------------------------------------------------------------------
def spyx_nets():
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import spyx
    import spyx.nn as snn
    from flax import nnx
    from spyx.nir import to_nir

    rngs = nnx.Rngs(5)
    net = snn.Sequential(nnx.Linear(16, 24, rngs=rngs, param_dtype=jnp.float32), snn.IF((24,)),
                         nnx.Linear(24, 10, rngs=rngs, param_dtype=jnp.float32), snn.IF((10,)))
    net.layers[0].kernel[...] = net.layers[0].kernel[...] * 2.5
    net.layers[0].bias[...] = jnp.full((24,), 0.05, jnp.float32)
    net.layers[2].kernel[...] = net.layers[2].kernel[...] * 2.0

    def run(model, x, dtype):
        data = jnp.asarray(np.repeat(np.asarray(x, dtype=np.float64 if dtype == "float64" else np.float32)[None], STEPS, 0))
        out, _ = snn.run(model, data)
        return np.asarray(out).sum(0).astype(np.int64)

    def export(model, sample, ignore_dims=None):
        return to_nir(model, {"input": np.array([16])}, {"output": np.array([10])}, dt=1)

    return [("spyx_mlp", net, (16,), export, run,
             {"convention": "spyx", "reset": None, "tolerance": "shift",
              "why": "Spyx's IF fires from the previous step's membrane: netspec (one-step-per-layer) is one step earlier",
              "library_version": _version(spyx)})]


LIBRARIES = {"snntorch": snntorch_nets, "norse": norse_nets, "sinabs": sinabs_nets, "spyx": spyx_nets}


def _dtypes(name):
    if name.startswith("spyx"):
        return "float64", "float32"
    import torch

    return torch.float64, torch.float32


def make_fixtures(libraries, out: Path) -> dict:
    import nir

    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for lib in libraries:
        module = __import__(lib)
        for seed, (name, net, shape, export, run, info) in enumerate(LIBRARIES[lib]()):
            x = _inputs(shape, 100 + len(name) + seed)
            if lib == "spyx":
                graph = export(net, None)
            else:
                import torch

                graph = export(net, torch.as_tensor(x[:1]), ignore_dims=[0])
            nir.write(out / f"{name}.nir", graph)
            f64, f32 = _dtypes(name)
            counts = run(net, x, f64)
            counts32 = run(net, x, f32)
            np.savez_compressed(out / f"{name}.npz", x=x, counts=counts, counts32=counts32, steps=STEPS)
            index[name] = {**info, "library": info.pop("library_version", _version(module)), "steps": STEPS,
                           "samples": int(len(x)), "nir": nir.__version__}
            print(f"{name}: {index[name]['library']}, output spikes per sample {counts.sum(1).tolist()}, "
                  f"float32 run equal to float64: {np.array_equal(counts, counts32)}")
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=1) + "\n")
    return index


# -- MNIST: sinabs' own conversion of a trained CNN ------------------------------------------------------------
def _mnist(folder: Path, kind: str):
    import gzip

    def idx(path):
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        dims = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)

    prefix = "train" if kind == "train" else "t10k"
    images = next(p for p in folder.iterdir() if p.name.startswith(f"{prefix}-images"))
    labels = next(p for p in folder.iterdir() if p.name.startswith(f"{prefix}-labels"))
    return idx(images), idx(labels)


def make_mnist(train_folder: Path, test_folder: Path, out: Path, steps: int = 100) -> dict:
    import nir
    import sinabs
    import sinabs.layers as sl
    import torch
    from sinabs.utils import normalize_weights

    xtr, ytr = _mnist(train_folder, "train")
    xte, yte = _mnist(test_folder, "test")
    xtr = torch.tensor(xtr[:20000, None] / 255.0, dtype=torch.float32)
    ytr = torch.tensor(ytr[:20000].astype(np.int64))
    x = (xte[:, None] / 255.0).astype(np.float32)
    torch.manual_seed(0)
    ann = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, bias=False), torch.nn.ReLU(), sl.SumPool2d(2),
                              torch.nn.Conv2d(8, 16, 3, bias=False), torch.nn.ReLU(), sl.SumPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(400, 10, bias=False), torch.nn.ReLU())
    opt = torch.optim.Adam(ann.parameters(), 2e-3)
    for epoch in range(3):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 100):
            b = perm[i:i + 100]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ann[:-1](xtr[b]), ytr[b])
            loss.backward()
            opt.step()
    with torch.no_grad():
        ann_acc = float((ann(torch.tensor(x)).argmax(1).numpy() == yte).mean())
        normalize_weights(ann, xtr[:500], output_layers=["1", "4", "8"], param_layers=["0", "3", "7"], percentile=99.9)
    net = sinabs.from_model(ann, input_shape=(1, 28, 28), batch_size=1)  # its defaults: MultiSpike, min_v_mem -1
    counts = []
    with torch.no_grad():
        for sample in torch.tensor(x):
            net.reset_states()
            counts.append(net(sample[None].repeat(steps, 1, 1, 1)).sum(0).numpy())
    counts = np.rint(np.asarray(counts)).astype(np.int64)
    pred = counts.argmax(1)
    acc = float((pred == yte).mean())
    graph = _sinabs_export(net, torch.tensor(x[:1]))
    nir.write(out / "sinabs_mnist.nir", graph)
    n = 30
    np.savez_compressed(out / "sinabs_mnist.npz", x=x[:n], counts=counts[:n], counts32=counts[:n], steps=steps,
                        labels=yte[:n])
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index["sinabs_mnist"] = {"convention": "sinabs", "reset": None, "tolerance": "predictions",
                             "why": "a trained CNN through sinabs.from_model's defaults (MultiSpike, min_v_mem = -1)",
                             "library": _version(sinabs), "steps": steps, "samples": n, "nir": nir.__version__,
                             "ann_accuracy_mnist_1k": ann_acc, "sinabs_accuracy_mnist_1k": acc,
                             "sinabs_predictions_mnist_1k": pred.tolist()}
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=1) + "\n")
    print(f"sinabs_mnist: ANN {100 * ann_acc:.1f} %, sinabs SNN ({steps} steps) {100 * acc:.1f} % on {len(x)} images")
    return index


# -- the other way: netspec's graphs read by the libraries ---------------------------------------------------
NETSPEC_SIDE = r"""
import json, sys
from pathlib import Path
import numpy as np
from netspec.nir import ImportOptions, import_graph, write_graph
from netspec.spec import load_spec, parse_quantity
from netspec.nir.convention import CONVENTIONS
from netspec.brian import BuildOptions, build, simulate
fixtures, work = Path(sys.argv[1]), Path(sys.argv[2])
index = json.loads((fixtures / "index.json").read_text())
out = {}
for name, info in index.items():
    data = np.load(fixtures / f"{name}.npz")
    x = data["x"].astype(np.float64)
    x = x.transpose(0, 2, 3, 1) if x.ndim == 4 else x
    # the library's own step as netspec's dt, so that the graph netspec writes has the library's units
    dt = parse_quantity(CONVENTIONS[info["convention"]].dt).value
    spec_path, notes = import_graph(fixtures / f"{name}.nir", work / f"{name}.yaml",
                                    ImportOptions(convention=info["convention"], reset=info["reset"],
                                                  duration=f"{int(data['steps']) * dt * 1e3:g} ms"))
    spec = load_spec(spec_path)
    res = simulate(build(spec, work / f"build-{name}", BuildOptions(samples_per_run=len(x))), x)
    # netspec's own graph of the imported spec: netspec writes the simulated network (threshold 1, r = kappa/dt)
    written = write_graph(spec, work / f"{name}.netspec.nir")
    out[name] = {"counts": res.counts.tolist(), "notes": notes, "written_notes": written.notes}
(work / "netspec.json").write_text(json.dumps(out))
"""


def _library_reads(lib: str, graph_path: Path, x: np.ndarray, steps: int) -> np.ndarray:
    """Output spike counts per sample when ``lib``'s own reader loads the graph and its simulator runs it."""
    import nir

    graph = nir.read(graph_path)
    if lib == "spyx":
        import jax.numpy as jnp
        from spyx.nir import from_nir

        x = x.transpose(0, 2, 3, 1) if x.ndim == 4 else x  # spyx runs channels-last
        data = jnp.asarray(np.repeat(x.astype(np.float32)[None], steps, 0))
        _model, outputs = from_nir(graph, data, dt=1)
        return np.asarray(outputs).sum(0)
    import torch

    if lib == "snntorch":
        from snntorch.import_nir import import_from_nir

        net = import_from_nir(graph)
    elif lib == "norse":
        from norse.torch.utils.import_nir import from_nir

        net = from_nir(graph)
    else:
        from sinabs.nir import from_nir

        net = from_nir(graph, batch_size=1)
    counts = []
    with torch.no_grad():
        for sample in torch.as_tensor(x):
            if lib == "sinabs":
                for m in net.modules():
                    if hasattr(m, "reset_states"):
                        m.reset_states()
                out = net(sample[None].repeat(steps, *([1] * sample.dim())))
                out = out[0] if isinstance(out, tuple) else out
                counts.append(out.sum(0).numpy())
                continue
            state, total = None, 0
            for _ in range(steps):
                res = net(sample[None], state)
                z, state = res if isinstance(res, tuple) else (res, None)
                # snnTorch's and Norse's readers apply NIR's Flatten(start_dim=0) to the batch dimension too:
                # with one sample at a time the output is the sample's, without its batch axis
                total = total + (z[0] if z.dim() == 2 else z)
            counts.append(np.asarray(total))
    return np.asarray(counts)


def read_back(netspec_python: str, out: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([netspec_python, "-c", NETSPEC_SIDE, str(out), str(work)], check=True, cwd=ROOT)
        ours = json.loads((work / "netspec.json").read_text())
        table: dict = {}
        for name, got in ours.items():
            data = np.load(out / f"{name}.npz")
            steps = int(data["steps"])
            mine = np.asarray(got["counts"]).argmax(1)
            lib_own = data["counts"].argmax(1)
            table[name] = {"netspec_vs_library_predictions": float((mine == lib_own).mean())}
            for lib in LIBRARIES:
                try:
                    counts = _library_reads(lib, work / f"{name}.netspec.nir", data["x"], steps)
                    agree = float((counts.argmax(1) == mine).mean())
                    table[name][lib] = {"reads": True, "agree_with_netspec": agree, "spikes": int(counts.sum())}
                except Exception as exc:  # a library's reader refusing a graph: record what it says
                    table[name][lib] = {"reads": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
                print(name, lib, table[name][lib])
        (out / "read_back.json").write_text(json.dumps(table, indent=1) + "\n")
        return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("steps", nargs="*", default=["fixtures"], choices=["fixtures", "mnist", "back"])
    p.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated, of " + ", ".join(LIBRARIES))
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--mnist-train", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--mnist-test", default=str(ROOT / "data" / "mnist-1k"))
    p.add_argument("--netspec", default=str(ROOT / ".venv" / "bin" / "python"), help="netspec's Python, for 'back'")
    args = p.parse_args(argv)
    out = Path(args.out)
    for step in args.steps:
        if step == "fixtures":
            make_fixtures([lib for lib in args.libraries.split(",") if lib], out)
        elif step == "mnist":
            make_mnist(Path(args.mnist_train), Path(args.mnist_test), out)
        else:
            read_back(args.netspec, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
