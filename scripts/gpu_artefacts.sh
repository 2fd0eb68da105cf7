#!/usr/bin/env bash
# Re-measure the artefacts that need a GPU, on a machine with one (JAX with CUDA, flax, optax,
# orbax-checkpoint, pandas, pydantic, tqdm installed; PyTorch with CUDA for the benchmark; no
# papermill or Jupyter needed), from a clean checkout:
#
#   QATLIB_GIT_COMMIT=$(git rev-parse HEAD) bash scripts/gpu_artefacts.sh [OUTPUT_DIR]
#
# Steps (GPU_STEPS, default "bench resnet50"):
# * bench: benchmarks/bench_mnist_step.py --device gpu -- qatlib and PyTorch steps/s at batch 128
#   and 600, the lock-step gain, and the MNIST `paper_gpu` preset (the authors' schedule with
#   whole-batch gradients and cuDNN convolutions) end to end, its wall time and peak memory; writes
#   mnist_step_gpu.json and the preset's artefact as mnist-paper_gpu.json (commit it as
#   results/mnist/paper_gpu/metrics.json). Measured: 35 s on one H100.
# * repeat (after bench): paper_gpu once more; prints how many of its values differ from the
#   bench step's run (0: the GPU run is deterministic).
# * seeds: the MNIST `paper_seeds` preset (5 seeds) with paper_gpu's settings (whole-batch gradients,
#   cuDNN convolutions, one process, no checkpoints; SEEDS_PRESET picks another seeded preset);
#   writes mnist-<preset>_gpu.json and prints each claim's verdict and interval beside those of
#   the committed CPU artefact results/mnist/<preset>/metrics.json, and whether the GPU's mean lies
#   inside the CPU's 95% interval (the comparison within seed noise).
# * resnet50: ResNet50 mnist_10_epochs, about 14 min on an H200 (4 ResNet50s in lock step at 13-14
#   steps/s for SGD, then 3 for Adam); no checkpoints on a machine that is given back.
#
# Each chapter measurement runs the same code the chapters execute (`python -m qatlib run CHAPTER
# --preset NAME --no-notebook`) and is copied with its log to OUTPUT_DIR (default: $OUT, else
# ./gpu-artefacts). QATLIB_GIT_COMMIT names the commit in the provenance when the checkout has no
# .git folder.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-artefacts}}
mkdir -p "$out"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# Deterministic GPU kernels: `python -m qatlib` switches them on for its runs (qatlib.cli.
# DETERMINISTIC_XLA_FLAG); exported here too so that the benchmark's own step timings run the same
# kernels as the runs that make the artefacts.
export XLA_FLAGS="--xla_gpu_deterministic_ops=true${XLA_FLAGS:+ $XLA_FLAGS}"
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
measure() {  # chapter preset time-limit [extra args]
  local chapter=$1 preset=$2 limit=$3
  shift 3
  local start=$SECONDS
  timeout "$limit" python3 -m qatlib run "$chapter" --preset "$preset" --no-notebook "$@" >"$out/$chapter-$preset.log" 2>&1
  local status=$?
  echo "$chapter/$preset: exit $status after $((SECONDS - start)) s"
  tail -c 1500 "$out/$chapter-$preset.log"
  [ -f "results/$chapter/$preset/metrics.json" ] && cp "results/$chapter/$preset/metrics.json" "$out/$chapter-$preset.json"
  return 0
}
bench() {
  local start=$SECONDS paper
  paper=$(mktemp -d)
  timeout "${BENCH_LIMIT:-420}" python3 benchmarks/bench_mnist_step.py --device gpu --steps 50 --repeats 5 \
    --paper-results "$paper" --output "$out/mnist_step_gpu.json" >"$out/bench.log" 2>&1
  echo "bench: exit $? after $((SECONDS - start)) s"
  tail -c 1500 "$out/bench.log"
  [ -f "$paper/mnist/paper_gpu/metrics.json" ] && cp "$paper/mnist/paper_gpu/metrics.json" "$out/mnist-paper_gpu.json"
  return 0
}
repeat() {  # run paper_gpu again and count the values that differ from the bench step's artefact
  local second
  second=$(mktemp -d)
  QATLIB_RESULTS_DIR=$second timeout "${MNIST_LIMIT:-240}" python3 -m qatlib run mnist --preset paper_gpu --no-notebook \
    >"$out/repeat.log" 2>&1
  echo "repeat: exit $?"
  python3 - "$out/mnist-paper_gpu.json" "$second/mnist/paper_gpu/metrics.json" <<'PY'
import sys
from qatlib.report import artefacts
differ, compared = artefacts.differing_values(*(artefacts.read_json(name) for name in sys.argv[1:]))
print(f"repeat: {len(differ)} of {compared} values differ between two runs of paper_gpu {differ[:5]}")
PY
}
seeds() {  # a seeded preset with paper_gpu's settings, its verdicts beside the committed CPU artefact's
  local preset=${SEEDS_PRESET:-paper_seeds} dir start=$SECONDS gpu_settings
  dir=$(mktemp -d)
  # paper_gpu's settings, read from the presets: the fields where it differs from paper, as -p NAME VALUE
  gpu_settings=$(python3 -c "from qatlib.experiments.mnist import PRESETS
cpu, gpu = PRESETS['paper'].model_dump(), PRESETS['paper_gpu'].model_dump()
print(' '.join(f'-p {name} {value}' for name, value in gpu.items() if cpu[name] != value))")
  # shellcheck disable=SC2086  # gpu_settings is a list of words
  QATLIB_RESULTS_DIR=$dir timeout "${SEEDS_LIMIT:-540}" python3 -m qatlib run mnist --preset "$preset" --no-notebook \
    $gpu_settings >"$out/mnist-${preset}_gpu.log" 2>&1
  echo "seeds ($preset): exit $? after $((SECONDS - start)) s"
  tail -c 1500 "$out/mnist-${preset}_gpu.log"
  [ -f "$dir/mnist/$preset/metrics.json" ] || return 0
  cp "$dir/mnist/$preset/metrics.json" "$out/mnist-${preset}_gpu.json"
  python3 - "$out/mnist-${preset}_gpu.json" "results/mnist/$preset/metrics.json" <<'PY'
import sys
from pathlib import Path
from qatlib.report import artefacts, claims
if not Path(sys.argv[2]).exists():
    sys.exit(f"seeds: no committed CPU artefact {sys.argv[2]} to compare with")
gpu, cpu = (claims.decide_all(artefacts.run_records(artefacts.read_json(name))) for name in sys.argv[1:])
def text(decision):
    v = decision.value
    return decision.verdict if v is None else f"{decision.verdict} {v.mean:.4g} [{v.low:.4g}, {v.high:.4g}]"
for mine, theirs in zip(gpu, cpu, strict=True):
    inside = None if mine.value is None or theirs.value is None else theirs.value.contains(mine.value.mean)
    print(f"seeds: {mine.claim} ({mine.optimizer}): GPU {text(mine)}; CPU {text(theirs)}; GPU mean inside the CPU interval: {inside}")
PY
}
for step in ${GPU_STEPS:-bench resnet50}; do
  case $step in
    bench) bench ;;
    repeat) repeat ;;
    seeds) seeds ;;
    resnet50) measure resnet50 mnist_10_epochs "${RESNET_LIMIT:-1200}" -p checkpoint_every 0 ;;
    *) echo "GPU_STEPS: unknown step '$step' (allowed: bench, repeat, seeds, resnet50)" >&2; exit 2 ;;
  esac
done
