#!/usr/bin/env bash
# Re-measure the artefacts that need a GPU, on a machine with one (JAX with CUDA, flax, optax,
# orbax-checkpoint, pandas, pydantic, tqdm installed; no papermill or Jupyter needed), from a clean
# checkout. Measured on one H200: the MNIST paper preset in 43 s; ResNet50 mnist_10_epochs needs
# about 14 min (4 ResNet50s in lock step at 13-14 steps/s for SGD, then 3 for Adam):
#
#   QATLIB_GIT_COMMIT=$(git rev-parse HEAD) bash scripts/gpu_artefacts.sh [OUTPUT_DIR]
#
# Runs each measurement with `python -m qatlib run CHAPTER --preset NAME --no-notebook` (the same
# code the chapters execute), writes results/<chapter>/<preset>/metrics.json and copies each
# artefact and its log to OUTPUT_DIR (default: $OUT, else ./gpu-artefacts). QATLIB_GIT_COMMIT
# names the commit in the provenance when the checkout has no .git folder.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-artefacts}}
mkdir -p "$out"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
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
# Whole-batch gradients on a GPU: the paper preset's microbatch=25 keeps a CPU's caches warm but
# would leave a GPU idle between 24 small chunks (the 43 s above was measured with the whole batch).
measure mnist paper "${MNIST_LIMIT:-240}" -p microbatch 0
# 10 epochs of the full ResNet50 on full MNIST; no checkpoints on a machine that is given back.
measure resnet50 mnist_10_epochs "${RESNET_LIMIT:-1200}" -p checkpoint_every 0
