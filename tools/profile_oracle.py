"""Where the matching step's time goes: the compiled (or eager) oracle under ``torch.profiler``, top operators.

Issue 16 found with this that a third of the compiled ResNet-18 step was one generated kernel concatenating the
11M-entry dummy update; the distances are now summed tensor by tensor (docs/results/README, issue 16).

    GIFD_THREADS=1 python tools/profile_oracle.py [--model resnet18] [--compile on|off] [--calls 5] [--kernels]
                                                  [--quote NAME] [--compile-phases] [--graph-flops]
                                                  [--thread-scaling]

``--kernels`` names every inductor-generated C++ kernel in the table (``cpp.enable_kernel_profile``) instead of
one "CompiledFxGraph" row. Prints seconds per call (after the compile) and the table sorted by self time; with
``--quote NAME`` also the seconds, the convolutions' share of the self time (aten convolution operators) and the
largest generated kernel's share, as a quote block.

``--compile-phases`` instead compiles once into an empty inductor cache (a temporary directory) and prints where
the cold compile's seconds go, from ``torch._dynamo.utils.compile_times``: Dynamo's bytecode tracing, AOTAutograd
and inductor together, and within them inductor lowering the graph, scheduling and generating the C++ kernels,
and waiting for the compiler workers (``async_compile.wait``: the ``g++`` jobs start when the generated module
loads, after code generation), with the number of kernels built; with ``--quote NAME`` also as a quote block.
Inductor keeps its precompiled header in the system temporary directory, not in its cache: run with
``TMPDIR=$(mktemp -d)`` for a compile on a machine that never compiled before.

``--thread-scaling`` profiles the step twice, in two fresh processes at one and at two torch threads (inductor
specialises its kernels on the thread count), and prints each operator's self time per call at both and how much
the second thread bought it (1-thread time / 2-thread time): the inductor-generated kernels summed as one row, the
aten operators by name; with ``--quote NAME`` also as a quote block. Run it on a quiet machine.

``--graph-flops`` times nothing: it counts the FLOPs of one eager oracle call (``FlopCounterMode``, what
``bench`` reports) and of the graph the compiler receives (AOTAutograd's traced step after dead-code
elimination, each node by ``torch.utils.flop_counter``'s formulas), with the convolutions in each. Eager
PyTorch's convolution double backward also computes a weight gradient nobody asked for; the traced graph drops it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gifd_lite.attacks.oracle import MatchingOracle  # noqa: E402
from gifd_lite.bench import _bench_case  # noqa: E402
from gifd_lite.runtime import set_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--compile", default="on", choices=["on", "off"])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--kernels", action="store_true")
    parser.add_argument("--quote", metavar="NAME", help="also print a quote block keyed by NAME (docs/results/*.md)")
    parser.add_argument("--compile-phases", action="store_true", help="where a cold compile's time goes")
    parser.add_argument("--graph-flops", action="store_true", help="FLOPs of the eager and the compiled step")
    parser.add_argument("--thread-scaling", action="store_true", help="each operator's time at one and two threads")
    parser.add_argument("--by-op-json", metavar="PATH", help=argparse.SUPPRESS)   # --thread-scaling's child runs
    args = parser.parse_args()
    if args.thread_scaling:
        thread_scaling(args.model, args.compile, args.calls, args.rows, args.quote)
        return
    set_threads()
    if args.compile_phases:
        compile_phases(args.model, args.quote)
        return
    if args.graph_flops:
        print_graph_flops(args.model, args.quote)
        return
    if args.kernels:
        import torch._inductor.config as inductor

        inductor.cpp.enable_kernel_profile = True
    model, _, y, target, shape = _bench_case(args.model, 1, torch.device("cpu"))
    oracle = MatchingOracle(model, target, y, compile=args.compile)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    for _ in range(2):          # the compile, then one warm call
        oracle(x)
    t0 = time.perf_counter()
    for _ in range(args.calls):
        oracle(x)
    seconds = (time.perf_counter() - t0) / args.calls
    print(f"{args.model}, compile {args.compile}, {torch.get_num_threads()} thread(s): {seconds:.4f} s per call")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.calls):
            oracle(x)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if args.by_op_json:
        import json

        by_op = {"threads": torch.get_num_threads(), "step": seconds}
        for e in events:                      # seconds per call; generated kernels summed into one row
            key = "generated kernels" if e.key.startswith("graph_") else e.key
            if not key.startswith("## Call CompiledFxGraph"):
                by_op[key] = by_op.get(key, 0.0) + e.self_cpu_time_total / 1e6 / args.calls
        Path(args.by_op_json).write_text(json.dumps(by_op))
    if args.quote:
        total = sum(e.self_cpu_time_total for e in events)
        convolutions = sum(e.self_cpu_time_total for e in events if "conv" in e.key and e.key.startswith("aten::"))
        generated = max((e.self_cpu_time_total for e in events if e.key.startswith("graph_")), default=0)
        print("```quote", f"{args.quote} seconds: {seconds:.6f}",
              f"{args.quote} convolution share: {convolutions / total:.4f}",
              f"{args.quote} largest generated kernel share: {generated / total:.4f}", "```", sep="\n")


def thread_scaling(model_name: str, compile: str, calls: int, rows: int, quote: str | None) -> dict:
    """{1: {operator: seconds per call}, 2: {...}}, each from its own process, and the table printed."""
    import json
    import os
    import subprocess
    import tempfile

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            path = Path(tmp) / f"{threads}.json"
            env = dict(os.environ, GIFD_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
            subprocess.run([sys.executable, __file__, "--model", model_name, "--compile", compile, "--calls",
                            str(calls), "--kernels", "--by-op-json", str(path)],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            runs[threads] = json.loads(path.read_text())
            if runs[threads].pop("threads") != threads:
                raise SystemExit(f"profile_oracle: the {threads}-thread run ran at another thread count")
    one, two = runs[1], runs[2]
    operators = (set(one) | set(two)) - {"step"}          # an operator seen in one run only counts 0 in the other
    shown = ["step"] + sorted(operators, key=lambda k: -two.get(k, 0.0))[:rows]
    print(f"{model_name}, compile {compile}: self time per call (ms) at 1 and 2 threads, and 1-thread / 2-thread")
    lines = []
    for key in shown:
        a, b = one.get(key, 0.0), two.get(key, 0.0)
        ratio = a / b if a > 0 and b > 0 else float("nan")       # nan: absent from one of the runs
        print(f"{key[:48]:48s} {a * 1e3:9.2f} {b * 1e3:9.2f} {ratio:6.2f}x")
        name = key.removeprefix("aten::")
        lines += [f"{quote} {name} 1 thread ms: {a * 1e3:.3f}", f"{quote} {name} 2 threads ms: {b * 1e3:.3f}",
                  f"{quote} {name} speedup: {ratio:.3f}"]
    fallback = [sum(v for k, v in run.items() if "slow_conv" in k) for run in (one, two)]   # PyTorch's unblocked
    if fallback[1] > 0:
        print(f"{'unblocked convolutions (slow_conv*), summed':48s} {fallback[0] * 1e3:9.2f} {fallback[1] * 1e3:9.2f} "
              f"{fallback[0] / fallback[1]:6.2f}x, {fallback[1] / two['step']:.0%} of the unprofiled 2-thread step's time")
        lines += [f"{quote} unblocked convolutions 1 thread ms: {fallback[0] * 1e3:.3f}",
                  f"{quote} unblocked convolutions 2 threads ms: {fallback[1] * 1e3:.3f}",
                  f"{quote} unblocked convolutions speedup: {fallback[0] / fallback[1]:.3f}",
                  f"{quote} unblocked convolutions 2 threads share: {fallback[1] / two['step']:.4f}"]
    if quote:
        print("```quote", *lines, "```", sep="\n")
    return runs


# the phases of one cold compile, each a timer of torch._dynamo.utils.compile_times (seconds, summed over calls)
PHASES = {"first call": None, "dynamo tracing": "bytecode_tracing",
          "AOTAutograd and inductor": "create_aot_dispatcher_function", "lowering": "GraphLowering.run",
          "kernel code generation": "GraphLowering.codegen", "waiting for the C++ compiler": "async_compile.wait"}


def compile_phases(model_name: str, quote: str | None) -> None:
    import os
    import tempfile
    from unittest import mock

    from torch._dynamo.utils import compile_times

    with tempfile.TemporaryDirectory(prefix="gifd_inductor_") as cache, \
            mock.patch.dict(os.environ, {"TORCHINDUCTOR_CACHE_DIR": cache}):   # read when inductor first compiles
        model, _, y, target, shape = _bench_case(model_name, 1, torch.device("cpu"))
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        t0 = time.perf_counter()
        MatchingOracle(model, target, y, compile="on")(x)
        first = time.perf_counter() - t0
        kernels = sum(1 for _ in Path(cache).rglob("*.so"))
    names, values = compile_times(repr="csv", aggregate=True)
    timers = dict(zip(names, values))
    # a timer that never ran is absent (``async_compile.wait`` only with parallel compiler workers), not zero
    seconds = {phase: first if key is None else float(timers[key]) for phase, key in PHASES.items()
               if key is None or key in timers}
    print(f"{model_name}, {torch.get_num_threads()} thread(s), {kernels} C++ kernels built")
    for phase in PHASES:
        print(f"{phase:32s} " + (f"{seconds[phase]:7.1f} s" if phase in seconds else "  absent"))
    if quote:
        print("```quote", *(f"{quote} {phase} seconds: {value:.1f}" for phase, value in seconds.items()),
              f"{quote} kernels: {kernels}", "```", sep="\n")


def graph_flops(model_name: str) -> dict:
    """{"eager" | "compiled graph": {operator: (calls, FLOPs)}} of one oracle call and of the compiler's graph of
    the same step (traced by AOTAutograd, dead code eliminated; nothing is compiled to C++)."""
    from torch._dynamo.backends.common import aot_autograd
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    model, _, y, target, shape = _bench_case(model_name, 1, torch.device("cpu"))
    oracle = MatchingOracle(model, target, y, compile="off")
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    counts = {"eager": {}, "compiled graph": {}}

    def add(kind: str, packet, flops: int) -> None:
        calls, total = counts[kind].get(str(packet), (0, 0))
        counts[kind][str(packet)] = (calls + 1, total + flops)

    class EagerOpCounter(TorchDispatchMode):          # FlopCounterMode's formulas, applied op by op
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func._overloadpacket in flop_registry:
                add("eager", func._overloadpacket,
                    flop_registry[func._overloadpacket](*args, **(kwargs or {}), out_val=out))
            return out

    with EagerOpCounter():
        oracle(x)

    def traced_value(a):                              # a graph node's example value (a fake tensor)
        return a.meta["val"] if isinstance(a, torch.fx.Node) else a

    def count_graph(gm, example_inputs):
        gm.graph.eliminate_dead_code()
        for node in gm.graph.nodes:
            packet = getattr(node.target, "_overloadpacket", None)
            if node.op == "call_function" and packet in flop_registry:
                args = torch.fx.node.map_arg(node.args, traced_value)
                kwargs = torch.fx.node.map_arg(node.kwargs, traced_value)
                add("compiled graph", packet, flop_registry[packet](*args, **kwargs, out_val=node.meta["val"]))
        return gm

    torch.compile(oracle._step_for(torch.channels_last), backend=aot_autograd(fw_compiler=count_graph),
                  dynamic=False)(x, y)
    return counts


def print_graph_flops(model_name: str, quote: str | None) -> None:
    counts = graph_flops(model_name)
    print(f"{model_name}, batch 1: GFLOP per step, and calls, by operator")
    for kind, ops in counts.items():
        print(f"{kind:15s} {sum(f for _, f in ops.values()) / 1e9:6.2f} GFLOP  " +
              ", ".join(f"{op} {f / 1e9:.2f} ({n} calls)" for op, (n, f) in sorted(ops.items())))
    if quote:
        lines = []
        for kind, ops in counts.items():
            lines += [f"{quote} {kind} gflop: {sum(f for _, f in ops.values()) / 1e9:.4f}"]
            lines += [f"{quote} {kind} {op.removeprefix('aten.')} calls: {n}" for op, (n, _) in sorted(ops.items())
                      if "conv" in op]
        print("```quote", *lines, "```", sep="\n")

if __name__ == "__main__":
    main()
